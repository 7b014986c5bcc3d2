using Loomworks.Configuration;

namespace Loomworks.Tenancy;

/// <summary>What tenancy reads from the configuration, resolved once.</summary>
public sealed record TenancyOptions(
    string ManagementDatabase,
    string TemplateDatabase,
    string DataDir,
    string? TenantHeader,
    string? BaseDomain,
    string? DbFilter,
    IReadOnlyList<string> DbNames,
    bool StrictIsolation,
    bool AuditCrossTenant)
{
    /// <summary>Seed value: a cached tenant lookup is trusted this long unless a NOTIFY evicts it first.</summary>
    public TimeSpan CacheTtl { get; init; } = TimeSpan.FromSeconds(300);

    /// <summary>Unknown names are remembered briefly so a flood of bad hosts does not reach the database.</summary>
    public TimeSpan NegativeCacheTtl { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Whether the first start creates the demo tenant (loomworks_demo_tenant).</summary>
    public bool DemoTenant { get; init; }

    public static TenancyOptions From(LoomworksSettings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        var management = settings.ManagementDatabase;
        return new TenancyOptions(
            management,
            management == "loomworks_mgmt" ? "loomworks_template" : management + "_tpl",
            settings.DataDir,
            settings.Get(ConfigKeys.TenantHeader) is { Length: > 0 } header ? header : null,
            settings.Get(ConfigKeys.BaseDomain) is { Length: > 0 } domain ? domain.Trim('.').ToLowerInvariant() : null,
            settings.Get(ConfigKeys.DbFilter) is { Length: > 0 } filter ? filter : null,
            (settings.Get(ConfigKeys.DbName) ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries),
            settings.GetBool(ConfigKeys.StrictIsolation),
            settings.GetBool(ConfigKeys.AuditCrossTenant))
        {
            DemoTenant = settings.GetBool(ConfigKeys.DemoTenant),
        };
    }

    public string FilestoreOf(string databaseName) => Path.Combine(DataDir, "filestore", databaseName);
}
