using Loomworks.Postgres;
using Npgsql;

namespace Loomworks.Tenancy;

/// <summary>
/// The management database (loomworks_mgmt): the registry of tenants, snapshots, jobs and settings. Its
/// <paramref name="migrations"/> are those the host collects from the features that own its tables.
/// </summary>
public sealed class ManagementDatabase(PooledDatabase dataSource, IReadOnlyList<Migration> migrations)
{
    public PooledDatabase DataSource { get; } = dataSource;

    public IReadOnlyList<Migration> Migrations { get; } = migrations;

    /// <summary>A connection budget and the management database in it.</summary>
    public static (TenantDataSources DataSources, ManagementDatabase Management) Open(PostgresEndpoint endpoint, string name,
        IReadOnlyList<Migration> migrations, int maxConnections = 64)
    {
        var dataSources = new TenantDataSources(endpoint, maxConnections);
        return (dataSources, new ManagementDatabase(dataSources.For(name), migrations));
    }

    /// <summary>Brings the schema to the latest version; safe when several instances start at once.</summary>
    public async Task MigrateAsync(CancellationToken cancellationToken)
    {
        await using var connection = await DataSource.OpenConnectionAsync(cancellationToken);
        await SchemaMigrator.ApplyAsync(connection, Migrations, cancellationToken);
    }

    /// <summary>A value of loomworks_settings, or null when the key has none.</summary>
    public async Task<string?> ReadSettingAsync(string key, CancellationToken cancellationToken)
    {
        await using var command = DataSource.CreateCommand("SELECT value FROM loomworks_settings WHERE key = $1");
        command.Parameters.AddWithValue(key);
        return await command.ExecuteScalarAsync(cancellationToken) as string;
    }

    /// <summary>Sets a value of loomworks_settings, replacing the one it had.</summary>
    public async Task WriteSettingAsync(string key, string value, CancellationToken cancellationToken)
    {
        await using var command = DataSource.CreateCommand("""
            INSERT INTO loomworks_settings (key, value) VALUES ($1, $2)
            ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = now()
            """);
        command.Parameters.AddWithValue(key);
        command.Parameters.AddWithValue(value);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>True when the management database answers a query within <paramref name="timeout"/>.</summary>
    public async Task<bool> IsReachableAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        try
        {
            await using var command = DataSource.CreateCommand("SELECT 1");
            await command.ExecuteScalarAsync(deadline.Token);
            return true;
        }
        catch (Exception e) when (e is NpgsqlException or OperationCanceledException or TimeoutException
            && !cancellationToken.IsCancellationRequested)
        {
            return false;
        }
    }
}
