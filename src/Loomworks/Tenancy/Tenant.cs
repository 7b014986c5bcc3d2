namespace Loomworks.Tenancy;

/// <summary>The states of a tenant: draft → provisioning → active ⇄ suspended → archived, and restoring during a restore.</summary>
public static class TenantStates
{
    public const string Draft = "draft";
    public const string Provisioning = "provisioning";
    public const string Active = "active";
    public const string Suspended = "suspended";
    public const string Archived = "archived";
    public const string Restoring = "restoring";

    public static readonly IReadOnlyList<string> All = [Draft, Provisioning, Active, Suspended, Archived, Restoring];
}

/// <summary>A tenant as the management database records it (the seed's fields).</summary>
public sealed record Tenant(
    long Id,
    string Name,
    string Subdomain,
    string DatabaseName,
    string State,
    string Tier,
    int MaxUsers,
    int MaxStorageGb,
    int MaxAiOperationsDaily,
    DateTimeOffset? SubscriptionExpires,
    string DatabaseServer,
    DateTimeOffset CreatedAt,
    DateTimeOffset UpdatedAt);
