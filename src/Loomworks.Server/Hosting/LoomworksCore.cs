using Loomworks.Configuration;
using Loomworks.Postgres;
using Loomworks.Server.Ai;
using Loomworks.Server.Backups;
using Loomworks.Server.Operations;
using Loomworks.Server.Rpc;
using Loomworks.Server.Tenancy;
using Loomworks.Server.Snapshots;

namespace Loomworks.Server.Hosting;

/// <summary>
/// The one composition root of the library's services, used by the web host and by every CLI command alike. Hosted
/// services are registered too; only the web host runs them.
/// </summary>
public static class LoomworksCore
{
    public static IServiceCollection AddLoomworksCore(this IServiceCollection services, LoomworksSettings settings,
        PostgresServer postgres)
    {
        services.AddSingleton(settings);
        services.AddLoomworksPostgres(settings, postgres);
        services.AddLoomworksTenancy(settings);
        services.AddDatabaseManager(settings);
        services.AddOperations(settings);
        services.AddRpc(settings);
        services.AddWebSessions(settings);
        services.AddSnapshots(settings);
        services.AddAgents(settings);
        return services;
    }
}
