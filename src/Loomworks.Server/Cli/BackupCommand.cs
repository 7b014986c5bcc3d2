using System.CommandLine;

namespace Loomworks.Server.Cli;

/// <summary><c>loomworks backup run|info</c>: pgBackRest backups of the whole PostgreSQL server.</summary>
public static class BackupCommand
{
    public static Command Create(ConfigOptions config)
    {
        var command = new Command("backup", "Run a pgBackRest backup or show the backups (the base of every point-in-time restore).");
        var type = new Option<string>("--type") { Description = "full, diff or incr", DefaultValueFactory = _ => "incr" };
        type.AcceptOnlyFromAmong("full", "diff", "incr");
        var run = new Command("run", "Take a backup now; frequent backups shorten restores.") { type };
        run.SetAction((parseResult, cancellationToken) => SnapshotsCli.RunAsync(config, parseResult, async feature =>
        {
            var set = await feature.Snapshots.BackupAsync(parseResult.GetValue(type)!, cancellationToken);
            Console.WriteLine($"backup {set.Label} ({set.Type}) done: {set.SizeBytes >> 20} MB, {set.RepositorySizeBytes >> 20} MB stored");
            return 0;
        }, cancellationToken));
        command.Subcommands.Add(run);

        var info = new Command("info", "Show the backups and the WAL archive (pgbackrest info).");
        info.SetAction((parseResult, cancellationToken) => SnapshotsCli.RunAsync(config, parseResult, async feature =>
        {
            Console.Write(await feature.BackRest.InfoTextAsync(cancellationToken));
            return 0;
        }, cancellationToken));
        command.Subcommands.Add(info);
        return command;
    }
}
