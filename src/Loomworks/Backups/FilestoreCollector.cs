using Loomworks.Configuration;
using Loomworks.Filestore;
using Loomworks.Postgres;
using Loomworks.Records;
using Loomworks.Tenancy;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace Loomworks.Backups;

/// <summary>
/// Odoo's filestore garbage collection, once an hour for every active tenant: files no ir_attachment row references go,
/// but only once they are older than loomworks_snapshot_retention_days, so a database restored to any point of the
/// snapshot window still finds every file its rows name.
/// </summary>
public sealed class FilestoreCollector(
    TenantStore tenants, TenantDataSources dataSources, FileStore files, DatabaseManagerOptions options,
    ILogger<FilestoreCollector> logger)
    : HourlyTenantJob(tenants, logger, TimeSpan.FromMinutes(2))
{
    protected override string Purpose => "Filestore collection";

    protected override bool IsTenantFailure(Exception e) => e is NpgsqlException or IOException or UnauthorizedAccessException;

    /// <summary>One pass over the active tenants; returns the bytes freed.</summary>
    public Task<long> CollectAllAsync(CancellationToken cancellationToken) => RunAllAsync(cancellationToken);

    protected override async Task<long> RunForTenantAsync(Tenant tenant, CancellationToken cancellationToken)
    {
        var olderThan = DateTimeOffset.UtcNow - options.FileRetention;
        var freed = await Attachments.CollectAsync(dataSources.For(tenant.DatabaseName), files, tenant.DatabaseName, olderThan,
            cancellationToken);
        if (freed > 0)
        {
            logger.LogInformation("Collected {Bytes} bytes of unreferenced files from {Tenant}", freed, tenant.Subdomain);
        }
        return freed;
    }
}
