using Loomworks.Postgres;
using Npgsql;

namespace Loomworks.Tenancy;

/// <summary>The management database (loomworks_mgmt): the registry of tenants, snapshots, jobs and settings.</summary>
public sealed class ManagementDatabase(NpgsqlDataSource dataSource)
{
    public NpgsqlDataSource DataSource { get; } = dataSource;

    /// <summary>
    /// A registry of data sources with the management database (and postgres) pinned, so that LRU eviction never
    /// disposes the data source this object holds, and the management database on it.
    /// </summary>
    public static (TenantDataSources DataSources, ManagementDatabase Management) Open(PostgresEndpoint endpoint, string name,
        int maxConnections = 64)
    {
        var dataSources = new TenantDataSources(endpoint, maxConnections, [name, "postgres"]);
        return (dataSources, new ManagementDatabase(dataSources.For(name)));
    }

    /// <summary>Brings the schema to the latest version; safe when several instances start at once.</summary>
    public async Task MigrateAsync(CancellationToken cancellationToken)
    {
        await using var connection = await DataSource.OpenConnectionAsync(cancellationToken);
        await SchemaMigrator.ApplyAsync(connection, ManagementSchema.All, cancellationToken);
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
