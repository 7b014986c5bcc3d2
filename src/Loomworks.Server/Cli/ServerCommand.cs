using System.CommandLine;
using Loomworks.Configuration;
using Loomworks.Postgres;
using Loomworks.Server.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Npgsql;

namespace Loomworks.Server.Cli;

public static class ServerCommand
{
    public static Command Create(ConfigOptions config)
    {
        var command = new Command("server",
            "Run the HTTP server (the default command); SIGTERM or Ctrl-C stops it and its embedded PostgreSQL. Its first " +
            "start creates the embedded cluster in data_dir and records it (loomworks_state_dir); no other command creates one.");
        var initCluster = new Option<bool>("--init-cluster")
        {
            Description = "Create a new, empty embedded cluster even though the marker records one that data_dir no longer " +
                "holds, or record the cluster data_dir holds as the one to serve. Only after checking that the old one is gone for good.",
        };
        command.Options.Add(initCluster);
        command.SetAction(async (parseResult, cancellationToken) =>
            LoomworksCli.LoadSettings(config, parseResult) is { } settings
                ? await RunAsync(settings,
                    parseResult.GetValue(initCluster) ? ClusterCreation.Deliberate : ClusterCreation.FirstStart, cancellationToken)
                : LoomworksCli.ConfigErrorExitCode);
        return command;
    }

    public static async Task<int> RunAsync(LoomworksSettings settings, ClusterCreation creation, CancellationToken cancellationToken)
    {
        using var loggerFactory = LoggerFactory.Create(logging => logging.AddLoomworksLogging(settings));
        var logger = loggerFactory.CreateLogger("Loomworks.Server");
        PostgresServer postgres;
        try
        {
            postgres = await PostgresServer.OpenAsync(settings, logger, creation, cancellationToken);
        }
        catch (InvalidOperationException e)
        {
            await Console.Error.WriteLineAsync($"loomworks: {e.Message}");
            return LoomworksCli.StartupErrorExitCode;
        }
        await using (postgres)
        {
            try
            {
                await DatabaseAdmin.EnsureDatabaseAsync(postgres.Endpoint, settings.ManagementDatabase, cancellationToken);
            }
            catch (Exception e) when (e is NpgsqlException or System.Net.Sockets.SocketException)
            {
                await Console.Error.WriteLineAsync(
                    $"loomworks: cannot reach PostgreSQL at {postgres.Endpoint.Host}:{postgres.Endpoint.Port}: {e.Message}");
                return LoomworksCli.StartupErrorExitCode;
            }

            await using var app = LoomworksWebApp.Build(settings, postgres);
            await app.Services.GetRequiredService<Loomworks.Tenancy.ManagementDatabase>().MigrateAsync(cancellationToken);
            await app.Services.GetRequiredService<Loomworks.Server.Tenancy.TenancyStartup>().RunAsync(cancellationToken);
            await app.Services.GetRequiredService<Loomworks.Snapshots.SnapshotsFeature>()
                .StartAsync(postgres.Embedded is not null, logger, cancellationToken);
            try
            {
                await app.StartAsync(cancellationToken);
            }
            catch (IOException e) when (e.InnerException is Microsoft.AspNetCore.Connections.AddressInUseException)
            {
                await Console.Error.WriteLineAsync(
                    $"loomworks: http_port {settings.HttpPort} is already in use; " +
                    "stop the program using it or set http_port (--http-port)");
                return LoomworksCli.StartupErrorExitCode;
            }
            logger.LogInformation("Loomworks {Version} is serving {Urls} (health: /web/health)", LoomworksVersion.Full,
                string.Join(", ", ServedUrls(app)));
            await app.WaitForShutdownAsync(CancellationToken.None);
        }
        return 0;
    }

    /// <summary>Where a person can reach the server: a wildcard bind is shown as 127.0.0.1.</summary>
    private static IEnumerable<string> ServedUrls(WebApplication app) =>
        (app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses ?? [])
            .Select(a => a.Replace("[::]", "127.0.0.1", StringComparison.Ordinal)
                .Replace("0.0.0.0", "127.0.0.1", StringComparison.Ordinal));
}
