using System.Text.RegularExpressions;
using Loomworks.Security;

namespace Loomworks.Tenancy;

/// <summary>A tenant request or change that breaks a rule; the message names the field and the problem.</summary>
public sealed class TenantValidationException(string message, bool conflict = false) : Exception(message)
{
    /// <summary>The request clashes with an existing tenant or database (HTTP 409) rather than being malformed.</summary>
    public bool Conflict { get; } = conflict;
}

/// <summary>The tenant was not found, or is in a state that does not allow the operation.</summary>
public sealed class TenantStateException(string message, bool notFound = false) : Exception(message)
{
    public bool NotFound { get; } = notFound;
}

/// <summary>
/// What a new tenant needs: the seed's fields, the first administrator and the limits. The administrator's password
/// comes either in clear (<see cref="AdminPassword"/>) or already hashed (<see cref="AdminPasswordHash"/>, passlib
/// pbkdf2-sha512 as Odoo stores it), so that a control plane need never send the password itself.
/// </summary>
public sealed record TenantRequest(
    string Name,
    string Subdomain,
    string AdminLogin,
    string? AdminPassword,
    string Tier = "standard",
    int MaxUsers = 10,
    int MaxStorageGb = 10,
    int MaxAiOperationsDaily = 1000,
    DateTimeOffset? SubscriptionExpires = null,
    string? AdminPasswordHash = null);

/// <summary>Changes to a tenant's limits; null leaves a value as it is.</summary>
public sealed record TenantLimitsChange(
    int? MaxUsers = null,
    int? MaxStorageGb = null,
    int? MaxAiOperationsDaily = null,
    string? Tier = null,
    DateTimeOffset? SubscriptionExpires = null,
    bool ClearSubscriptionExpires = false,
    string? Name = null);

/// <summary>The seed's subdomain rule, the reserved names and the bounds of every tenant field.</summary>
public static partial class TenantRules
{
    public const int MaxNameLength = 200;
    public const int MaxLoginLength = 200;
    public const int MaxPasswordLength = 1000;
    public const int MaxLimit = 1_000_000;

    /// <summary>Names that would collide with the platform's own hosts or PostgreSQL's own databases.</summary>
    public static readonly IReadOnlySet<string> Reserved = new HashSet<string>(StringComparer.Ordinal)
    {
        "www", "api", "admin", "postgres", "template0", "template1", "loomworks_mgmt", "loomworks-mgmt",
        "loomworks_template", "loomworks", "mail", "smtp", "ftp", "static", "assets", "cdn", "status", "health",
        "web", "app", "root", "public", "localhost", "database", "manager", "default",
    };

    [GeneratedRegex("^[a-z][a-z0-9-]{2,62}$")]
    private static partial Regex SubdomainPattern();

    [GeneratedRegex("^[a-z0-9_-]{1,40}$")]
    private static partial Regex TierPattern();

    /// <summary>Why <paramref name="subdomain"/> cannot name a tenant, or null when it can.</summary>
    public static string? SubdomainProblem(string? subdomain)
    {
        if (string.IsNullOrEmpty(subdomain))
        {
            return "subdomain is required";
        }
        if (subdomain.Length > 63)
        {
            return $"subdomain is {subdomain.Length} characters long; at most 63 are allowed";
        }
        if (!SubdomainPattern().IsMatch(subdomain))
        {
            return $"subdomain '{Printable(subdomain)}' must match ^[a-z][a-z0-9-]{{2,62}}$ " +
                "(3–63 lower-case letters, digits and hyphens, starting with a letter)";
        }
        if (subdomain.EndsWith('-'))
        {
            return $"subdomain '{subdomain}' must not end with a hyphen";
        }
        return Reserved.Contains(subdomain) ? $"subdomain '{subdomain}' is reserved" : null;
    }

    /// <summary>Throws <see cref="TenantValidationException"/> naming the first problem of a request.</summary>
    public static void Validate(TenantRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        Fail(SubdomainProblem(request.Subdomain));
        Fail(NameProblem(request.Name));
        Fail(TextProblem("admin_login", request.AdminLogin, MaxLoginLength));
        Fail(AdminPasswordProblem(request));
        Fail(TierProblem(request.Tier));
        Fail(LimitProblem("max_users", request.MaxUsers));
        Fail(LimitProblem("max_storage_gb", request.MaxStorageGb));
        Fail(LimitProblem("max_ai_operations_daily", request.MaxAiOperationsDaily));
    }

    private static string? AdminPasswordProblem(TenantRequest request) => (request.AdminPassword, request.AdminPasswordHash) switch
    {
        (not null, not null) => "give admin_password or admin_password_hash, not both",
        (null, { } hash) => Passwords.HashProblem("admin_password_hash", hash),
        _ => TextProblem("admin_password", request.AdminPassword, MaxPasswordLength),
    };

    public static void Validate(TenantLimitsChange change)
    {
        ArgumentNullException.ThrowIfNull(change);
        if (change.MaxUsers is { } users) Fail(LimitProblem("max_users", users));
        if (change.MaxStorageGb is { } storage) Fail(LimitProblem("max_storage_gb", storage));
        if (change.MaxAiOperationsDaily is { } ai) Fail(LimitProblem("max_ai_operations_daily", ai));
        if (change.Tier is not null) Fail(TierProblem(change.Tier));
        if (change.Name is not null) Fail(NameProblem(change.Name));
    }

    public static string? NameProblem(string? name) => TextProblem("name", name, MaxNameLength);

    public static string? TierProblem(string? tier) =>
        tier is not null && TierPattern().IsMatch(tier)
            ? null
            : $"tier '{Printable(tier ?? "")}' must be 1–40 lower-case letters, digits, '_' or '-'";

    public static string? LimitProblem(string field, long value) =>
        value < 0 ? $"{field} must not be negative (got {value})"
        : value > MaxLimit ? $"{field} must be at most {MaxLimit} (got {value})"
        : null;

    private static string? TextProblem(string field, string? value, int maxLength) =>
        string.IsNullOrWhiteSpace(value) ? $"{field} is required"
        : value.Length > maxLength ? $"{field} is {value.Length} characters long; at most {maxLength} are allowed"
        : value.Any(c => char.IsControl(c)) ? $"{field} must not contain control characters"
        : null;

    private static void Fail(string? problem)
    {
        if (problem is not null)
        {
            throw new TenantValidationException(problem);
        }
    }

    /// <summary>Echoes input in a message without letting it run on or carry control characters.</summary>
    public static string Printable(string value)
    {
        var cut = value.Length > 70 ? value[..70] + "…" : value;
        return new string(cut.Select(c => char.IsControl(c) ? '?' : c).ToArray());
    }
}
