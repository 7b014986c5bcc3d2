using Loomworks.Configuration;
using Loomworks.Postgres;
using Loomworks.Server.Hosting;
using Loomworks.Tenancy;

namespace Loomworks.Server.Cli;

/// <summary>
/// The library's services for one command, resolved from the same <see cref="LoomworksCore"/> registrations as the web
/// host's, without Kestrel and without running anything in the background.
/// </summary>
internal static class CliServices
{
    /// <summary>A container over <paramref name="postgres"/> whose services log through <paramref name="loggers"/>.</summary>
    public static ServiceProvider Build(LoomworksSettings settings, PostgresServer postgres, ILoggerFactory loggers)
    {
        var services = new ServiceCollection();
        // The command's own logger factory goes first: AddLogging only adds one when none is registered.
        services.AddSingleton(loggers);
        services.AddLogging();
        services.AddLoomworksCore(settings, postgres);
        return services.BuildServiceProvider();
    }

    /// <summary>As <see cref="Build"/>, with the management database created when missing and migrated.</summary>
    public static async Task<ServiceProvider> OpenManagementAsync(LoomworksSettings settings, PostgresServer postgres,
        ILoggerFactory loggers, CancellationToken cancellationToken)
    {
        await DatabaseAdmin.EnsureDatabaseAsync(postgres.Endpoint, settings.ManagementDatabase, cancellationToken);
        var services = Build(settings, postgres, loggers);
        try
        {
            await services.GetRequiredService<ManagementDatabase>().MigrateAsync(cancellationToken);
            return services;
        }
        catch
        {
            await services.DisposeAsync();
            throw;
        }
    }
}
