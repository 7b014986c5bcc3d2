using System.Collections.Concurrent;
using Loomworks.Postgres;
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
public sealed class CrossTenantAudit(ManagementDatabase management, TenancyOptions options, ILogger<CrossTenantAudit>? logger = null,
    TimeProvider? time = null)
{
    /// <summary>The credential kind of an ignored tenant header's audit row.</summary>
    public const string IgnoredHeaderKind = "untrusted tenant header";

    /// <summary>One client's ignored headers are written down at most this often, so a flood cannot fill the audit.</summary>
    public static readonly TimeSpan IgnoredHeaderInterval = TimeSpan.FromMinutes(1);

    private const int MaxRememberedClients = 10_000;
    private readonly ILogger _logger = logger ?? (ILogger)NullLogger.Instance;
    private readonly TimeProvider _time = time ?? TimeProvider.System;
    private readonly ConcurrentDictionary<string, DateTimeOffset> _lastIgnored = new(StringComparer.Ordinal);

    /// <summary>
    /// Records a tenant header sent by a client that may not send it (the request was routed without it): a row in
    /// loomworks_audit_cross_tenant with the tenant it named as credential_database, the host as routed_database and
    /// refused = true, at most once per client and <see cref="IgnoredHeaderInterval"/>.
    /// </summary>
    public async Task IgnoredTenantHeaderAsync(string header, string named, string? client, string? host, string? path,
        CancellationToken ct)
    {
        var now = _time.GetUtcNow();
        var key = client ?? "";
        if (_lastIgnored.TryGetValue(key, out var last) && now - last < IgnoredHeaderInterval)
        {
            return;
        }
        if (_lastIgnored.Count >= MaxRememberedClients)
        {
            _lastIgnored.Clear();
        }
        _lastIgnored[key] = now;
        _logger.LogWarning("{Header} header naming {Tenant} from untrusted client {Client} ignored (not in loomworks_trusted_proxies)",
            header, TenantRules.Printable(Cut(named) ?? ""), client);
        if (options.AuditCrossTenant)
        {
            var use = new CredentialUse(TenantRules.Printable(Cut(named) ?? ""), host ?? "", IgnoredHeaderKind, null, client, path);
            await InsertAsync(use, refused: true, ct);
        }
    }

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
            await InsertAsync(use, refuse, ct);
        }
        return refuse
            ? new CrossTenantDecision(true,
                $"this {use.CredentialKind} belongs to another tenant's database and cannot be used on '{use.RoutedDatabase}'")
            : CrossTenantDecision.Allowed;
    }

    private async Task InsertAsync(CredentialUse use, bool refused, CancellationToken ct)
    {
        await using var command = management.DataSource.CreateCommand("""
            INSERT INTO loomworks_audit_cross_tenant
                (credential_database, routed_database, credential_kind, login, client_address, path, refused)
            VALUES ($1, $2, $3, $4, $5, $6, $7)
            """);
        command.Parameters.AddWithValue(Cut(use.CredentialDatabase)!);
        command.Parameters.AddWithValue(Cut(use.RoutedDatabase)!);
        command.Parameters.AddWithValue(use.CredentialKind);
        command.Parameters.AddNullable(NpgsqlTypes.NpgsqlDbType.Text, Cut(use.Login));
        command.Parameters.AddNullable(NpgsqlTypes.NpgsqlDbType.Text, Cut(use.ClientAddress));
        command.Parameters.AddNullable(NpgsqlTypes.NpgsqlDbType.Text, Cut(use.Path));
        command.Parameters.AddWithValue(refused);
        await command.ExecuteNonQueryAsync(ct);
    }

    private static string? Cut(string? value) => value is { Length: > 500 } ? value[..500] : value;
}
