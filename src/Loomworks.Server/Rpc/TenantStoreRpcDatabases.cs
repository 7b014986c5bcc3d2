using Loomworks.Configuration;
using Loomworks.Filestore;
using Loomworks.Postgres;
using Loomworks.Records;
using Loomworks.Rpc;
using Loomworks.Tenancy;

namespace Loomworks.Server.Rpc;

/// <summary>
/// Finds RPC databases among the tenants of the management database: a name must belong to an active tenant. With no
/// name (JSON-2 without X-Odoo-Database), the only active tenant is used, as Odoo does with a single database.
/// </summary>
public sealed class TenantStoreRpcDatabases(TenantStore tenants, TenantDataSources dataSources, FileStore files, LoomworksSettings settings)
    : IRpcDatabases
{
    public async Task<RpcDatabase> OpenAsync(HttpContext http, string? db, CancellationToken ct)
    {
        if (string.IsNullOrEmpty(db))
        {
            var active = await ListAsync(ct);
            db = active.Count == 1 ? active[0] : throw OdooException.Denied("Access Denied: no database selected (send X-Odoo-Database)");
        }
        var tenant = await tenants.FindByDatabaseAsync(db, ct);
        if (tenant is null || tenant.State != TenantStates.Active)
        {
            throw OdooException.Denied($"Access Denied: database {Domain.Show(db)} not found");
        }
        return new RpcDatabase(tenant.DatabaseName, dataSources.For(tenant.DatabaseName))
        {
            Attachments = new AttachmentStorage(files, tenant.DatabaseName, settings.GetInt(ConfigKeys.AttachmentMaxMb) * 1024L * 1024),
        };
    }

    public async Task<IReadOnlyList<string>> ListAsync(CancellationToken ct) =>
        (await tenants.ListAsync(ct)).Where(t => t.State == TenantStates.Active).Select(t => t.DatabaseName).Order(StringComparer.Ordinal).ToList();
}
