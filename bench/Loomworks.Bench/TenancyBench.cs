using Loomworks.Operations;
using Loomworks.Records;
using System.Globalization;
using Loomworks.Postgres;
using Loomworks.Server.Hosting;
using Loomworks.Tenancy;
using Loomworks.Tenancy.Routing;
using Npgsql;

namespace Loomworks.Bench;

/// <summary>
/// What the tenancy scenarios share: a durable embedded cluster of their own under a scratch folder, a migrated
/// management database, the data source registry and a provisioner wired as the server wires them. Disposing it
/// stops the cluster and removes the folder, and with it every database the scenario made.
/// </summary>
public sealed class TenancyBench : IAsyncDisposable
{
    public const string ManagementName = "loomworks_mgmt";
    public const string TemplateName = "loomworks_template";
    public const string BaseDomain = "bench.test";
    public const string TenantHeader = "X-Loomworks-Tenant";

    /// <summary>The server's default db_maxconn, so the registry evicts as it would in production.</summary>
    public const int MaxConnections = 64;

    private readonly ThrowawayCluster _cluster;

    private TenancyBench(ThrowawayCluster cluster, TenantDataSources dataSources, ManagementDatabase management, TenancyOptions options)
    {
        _cluster = cluster;
        DataSources = dataSources;
        Management = management;
        Options = options;
        Provisioner = new TenantProvisioner(management, dataSources, new ErpTenantSetup(), options);
    }

    public TenantDataSources DataSources { get; }
    public ManagementDatabase Management { get; }
    public TenancyOptions Options { get; }
    public TenantProvisioner Provisioner { get; }

    public static async Task<TenancyBench> StartAsync(CancellationToken ct)
    {
        var cluster = await ThrowawayCluster.StartAsync(dir => new EmbeddedClusterOptions
        {
            DataDir = dir, Port = Scratch.FreePort(), Durable = true,
        }, ct);
        try
        {
            await DatabaseAdmin.EnsureDatabaseAsync(cluster.Endpoint, ManagementName, ct);
            var dataSources = new TenantDataSources(cluster.Endpoint, MaxConnections);
            var management = new ManagementDatabase(dataSources.For(ManagementName), ManagementMigrations.All);
            await management.MigrateAsync(ct);
            var options = new TenancyOptions(ManagementName, TemplateName, cluster.Folder, TenantHeader, BaseDomain,
                DbFilter: null, DbNames: [], StrictIsolation: false, AuditCrossTenant: true);
            var bench = new TenancyBench(cluster, dataSources, management, options);
            // Steady state: the template exists at the latest tenant schema before anything is timed.
            await bench.Provisioner.EnsureTemplateAsync(ct);
            return bench;
        }
        catch
        {
            await cluster.DisposeAsync();
            throw;
        }
    }

    /// <summary>A request with the administrator's password in clear: provisioning hashes it (600,000 PBKDF2 rounds).</summary>
    public static TenantRequest Request(string subdomain) =>
        new($"Tenant {subdomain}", subdomain, "admin", "bench-password-" + subdomain);

    /// <summary>A request whose administrator password comes hashed, as a control plane would send it.</summary>
    public static TenantRequest HashedRequest(string subdomain, string passwordHash) =>
        new($"Tenant {subdomain}", subdomain, "admin", AdminPassword: null, AdminPasswordHash: passwordHash);

    public TenantRouter Router(out TenantCache cache)
    {
        cache = new TenantCache(new TenantStore(Management), Options);
        return new TenantRouter(cache, Options);
    }

    /// <summary>The baseline: the same statement the provisioner issues, on a connection of our own, and nothing else.</summary>
    public static async Task<double> BareCreateAsync(NpgsqlConnection server, string database, CancellationToken ct)
    {
        await using var command = new NpgsqlCommand(
            $"CREATE DATABASE {DatabaseAdmin.QuoteIdentifier(database)} TEMPLATE {DatabaseAdmin.QuoteIdentifier(TemplateName)}", server);
        return await BenchRunner.TimeAsync(() => command.ExecuteNonQueryAsync(ct));
    }

    public static async Task DropAsync(NpgsqlConnection server, string database, CancellationToken ct)
    {
        await using var command = new NpgsqlCommand($"DROP DATABASE IF EXISTS {DatabaseAdmin.QuoteIdentifier(database)}", server);
        await command.ExecuteNonQueryAsync(ct);
    }

    /// <summary>A connection to the server database outside the registry, so the baseline shares no pool with ours.</summary>
    public async Task<NpgsqlConnection> OpenServerConnectionAsync(CancellationToken ct)
    {
        var connection = new NpgsqlConnection(_cluster.Endpoint.ConnectionString("postgres", "loomworks-bench") + ";Pooling=false");
        await connection.OpenAsync(ct);
        return connection;
    }

    public async Task<long> DatabaseSizeAsync(string database, CancellationToken ct)
    {
        await using var command = Management.DataSource.CreateCommand("SELECT pg_database_size($1)");
        command.Parameters.AddWithValue(database);
        return (long)(await command.ExecuteScalarAsync(ct))!;
    }

    /// <summary>The process's resident set (VmRSS of /proc/self/status) in bytes.</summary>
    public static long ResidentBytes()
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
            {
                var kib = line["VmRSS:".Length..].Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries)[0];
                return long.Parse(kib, CultureInfo.InvariantCulture) * 1024;
            }
        }
        throw new InvalidOperationException("/proc/self/status has no VmRSS line");
    }

    public static double Percentile(IReadOnlyList<double> values, double p)
    {
        var sorted = values.Order().ToArray();
        if (sorted.Length == 0)
        {
            return double.NaN;
        }
        // Nearest rank: the smallest value with at least p of the samples at or below it.
        var rank = (int)Math.Ceiling(p * sorted.Length);
        return sorted[Math.Clamp(rank - 1, 0, sorted.Length - 1)];
    }

    public static string Mib(long bytes) => (bytes / 1024.0 / 1024.0).ToString("F1", CultureInfo.InvariantCulture) + " MiB";

    public async ValueTask DisposeAsync()
    {
        Provisioner.Dispose();
        await DataSources.DisposeAsync();
        await _cluster.DisposeAsync();
    }
}
