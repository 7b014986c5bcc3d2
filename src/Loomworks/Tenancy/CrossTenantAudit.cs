using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Loomworks.Tenancy;

/// <summary>What the caller must do with a credential used on a request: go on, or refuse with the message.</summary>
public sealed record CrossTenantDecision(bool Refused, string? Message)
{
    public static readonly CrossTenantDecision Allowed = new(false, null);
}

/// <summary>Who presented which credential where, for <see cref="CrossTenantAudit.CheckAsync"/>.</summary>
public sealed record CredentialUse(
    string CredentialDatabase,
    string RoutedDatabase,
    string CredentialKind,
    string? Login = null,
    string? ClientAddress = null,
    string? Path = null);

/// <summary>
/// Isolation of credentials: a session or API key belongs to one tenant database. Used on a request routed to
/// another tenant it is recorded in <c>loomworks_audit_cross_tenant</c> (loomworks_audit_cross_tenant) and refused
/// (loomworks_strict_isolation).
/// </summary>
public sealed class CrossTenantAudit(ManagementDatabase management, TenancyOptions options, ILogger<CrossTenantAudit>? logger = null)
{
    private readonly ILogger _logger = logger ?? (ILogger)NullLogger.Instance;

    public async Task<CrossTenantDecision> CheckAsync(CredentialUse use, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(use);
        if (string.Equals(use.CredentialDatabase, use.RoutedDatabase, StringComparison.Ordinal))
        {
            return CrossTenantDecision.Allowed;
        }
        var refuse = options.StrictIsolation;
        _logger.LogWarning("{Kind} of database {CredentialDatabase} used on a request routed to {RoutedDatabase} ({Outcome})",
            use.CredentialKind, use.CredentialDatabase, use.RoutedDatabase, refuse ? "refused" : "allowed");
        if (options.AuditCrossTenant)
        {
            await using var command = management.DataSource.CreateCommand("""
                INSERT INTO loomworks_audit_cross_tenant
                    (credential_database, routed_database, credential_kind, login, client_address, path, refused)
                VALUES ($1, $2, $3, $4, $5, $6, $7)
                """);
            command.Parameters.AddWithValue(use.CredentialDatabase);
            command.Parameters.AddWithValue(use.RoutedDatabase);
            command.Parameters.AddWithValue(use.CredentialKind);
            command.Parameters.AddWithValue(NpgsqlTypes.NpgsqlDbType.Text, (object?)Cut(use.Login) ?? DBNull.Value);
            command.Parameters.AddWithValue(NpgsqlTypes.NpgsqlDbType.Text, (object?)Cut(use.ClientAddress) ?? DBNull.Value);
            command.Parameters.AddWithValue(NpgsqlTypes.NpgsqlDbType.Text, (object?)Cut(use.Path) ?? DBNull.Value);
            command.Parameters.AddWithValue(refuse);
            await command.ExecuteNonQueryAsync(ct);
        }
        return refuse
            ? new CrossTenantDecision(true,
                $"this {use.CredentialKind} belongs to another tenant's database and cannot be used on '{use.RoutedDatabase}'")
            : CrossTenantDecision.Allowed;
    }

    private static string? Cut(string? value) => value is { Length: > 500 } ? value[..500] : value;
}
