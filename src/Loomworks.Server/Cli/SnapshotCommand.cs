using System.CommandLine;
using Loomworks.Configuration;
using Loomworks.Postgres;
using Loomworks.Server.Hosting;
using Loomworks.Snapshots;
using Loomworks.Tenancy;
using Npgsql;

namespace Loomworks.Server.Cli;

/// <summary><c>loomworks snapshot create|list|delete</c>: snapshots of one tenant, taken and read directly in PostgreSQL.</summary>
public static class SnapshotCommand
{
    public static Command Create(ConfigOptions config)
    {
        var command = new Command("snapshot", "Create, list or delete snapshots of a tenant (point-in-time restore targets).");

        var tenant = new Argument<string>("tenant") { Description = "The tenant's subdomain" };
        var name = new Option<string?>("--name") { Description = "A name for the snapshot" };
        var create = new Command("create", "Take a snapshot now and wait until its WAL is archived.") { tenant, name };
        create.SetAction((parseResult, cancellationToken) => SnapshotsCli.RunAsync(config, parseResult, async feature =>
        {
            var snapshot = await feature.Snapshots.CreateAsync(parseResult.GetValue(tenant)!, parseResult.GetValue(name),
                SnapshotTypes.Manual, cancellationToken);
            snapshot = await feature.Snapshots.WaitReadyAsync(snapshot, TimeSpan.FromSeconds(60), cancellationToken);
            Console.WriteLine($"snapshot {snapshot.Id} '{snapshot.Name}' {snapshot.State} at {snapshot.WalPosition} ({snapshot.WalFile})");
            return snapshot.State == "ready" ? 0 : 1;
        }, cancellationToken));
        command.Subcommands.Add(create);

        var listTenant = new Argument<string>("tenant") { Description = "The tenant's subdomain" };
        var list = new Command("list", "List a tenant's snapshots.") { listTenant };
        list.SetAction((parseResult, cancellationToken) => SnapshotsCli.RunAsync(config, parseResult, async feature =>
        {
            Console.WriteLine($"{"id",8}  {"created (UTC)",-19}  {"state",-8}  {"type",-6}  {"wal position",-14}  name");
            foreach (var s in await feature.Snapshots.ListAsync(parseResult.GetValue(listTenant)!, cancellationToken))
            {
                Console.WriteLine($"{s.Id,8}  {s.CreatedAt.UtcDateTime,-19:yyyy-MM-dd HH:mm:ss}  {s.State,-8}  {s.SnapshotType,-6}  {s.WalPosition,-14}  {s.Name}");
            }
            return 0;
        }, cancellationToken));
        command.Subcommands.Add(list);

        var deleteTenant = new Argument<string>("tenant") { Description = "The tenant's subdomain" };
        var id = new Argument<long>("id") { Description = "The snapshot's id" };
        var delete = new Command("delete", "Delete a snapshot.") { deleteTenant, id };
        delete.SetAction((parseResult, cancellationToken) => SnapshotsCli.RunAsync(config, parseResult, async feature =>
        {
            await feature.Snapshots.DeleteAsync(parseResult.GetValue(deleteTenant)!, parseResult.GetValue(id), cancellationToken);
            Console.WriteLine($"snapshot {parseResult.GetValue(id)} deleted");
            return 0;
        }, cancellationToken));
        command.Subcommands.Add(delete);
        return command;
    }
}

/// <summary>What the snapshot, restore and backup commands share: the server opened, the feature set up, errors printed.</summary>
internal static class SnapshotsCli
{
    public static async Task<int> RunAsync(ConfigOptions config, ParseResult parseResult, Func<SnapshotsFeature, Task<int>> action,
        CancellationToken cancellationToken)
    {
        if (LoomworksCli.LoadSettings(config, parseResult) is not { } settings)
        {
            return LoomworksCli.ConfigErrorExitCode;
        }
        using var loggers = LoggerFactory.Create(logging => logging.AddLoomworksLogging(settings));
        var logger = loggers.CreateLogger("Loomworks.Snapshots");
        try
        {
            await using var postgres = await PostgresServer.OpenAsync(settings, logger, cancellationToken);
            await DatabaseAdmin.EnsureDatabaseAsync(postgres.Endpoint, settings.ManagementDatabase, cancellationToken);
            var (dataSources, management) = ManagementDatabase.Open(postgres.Endpoint, settings.ManagementDatabase,
                Hosting.ManagementMigrations.All);
            await using var _ = dataSources;
            await management.MigrateAsync(cancellationToken);
            var feature = SnapshotsFeature.Create(settings, postgres, dataSources, management, new TenantStore(management), loggers);
            using var backRest = feature.BackRest;
            feature.Restore.Schema = new Loomworks.Operations.ErpTenantSetup();
            await feature.StartAsync(postgres.Embedded is not null, logger, cancellationToken);
            return await action(feature);
        }
        catch (SnapshotException e)
        {
            await Console.Error.WriteLineAsync($"loomworks: {e.Message}");
            return 1;
        }
        catch (Exception e) when (e is PgBackRestException or InvalidOperationException or NpgsqlException)
        {
            await Console.Error.WriteLineAsync($"loomworks: {e.Message}");
            return LoomworksCli.StartupErrorExitCode;
        }
    }
}
