using System.CommandLine;
using Loomworks.Backups;
using Loomworks.Configuration;
using Loomworks.Filestore;
using Loomworks.Postgres;
using Loomworks.Tenancy;
using Npgsql;

namespace Loomworks.Server.Cli;

/// <summary>
/// <c>loomworks db backup|restore|duplicate|drop|rename|list</c>: the database manager for an operator on the machine.
/// The operator already holds the configuration (and its database credentials), so no master password is asked.
/// </summary>
public static class DbCommand
{
    public static Command Create(ConfigOptions config)
    {
        var command = new Command("db", "Back up, restore, duplicate, drop, rename and list tenant databases.");

        var backupName = new Argument<string>("name") { Description = "Database to back up" };
        var output = new Option<string?>("--output", "-o") { Description = "File to write (default <name>_<time>.zip or .dump); - for standard output" };
        var format = new Option<string>("--format") { Description = "zip (dump.sql + filestore + manifest) or dump (pg_dump custom format)", DefaultValueFactory = _ => "zip" };
        format.AcceptOnlyFromAmong("zip", "dump");
        var backup = new Command("backup", "Stream a backup to a file or standard output.") { backupName, output, format };
        backup.SetAction((p, ct) => RunAsync(config, p, async m =>
        {
            var name = p.GetValue(backupName)!;
            var kind = p.GetValue(format) == "dump" ? BackupFormat.Dump : BackupFormat.Zip;
            var target = p.GetValue(output)
                ?? $"{name}_{DateTime.UtcNow:yyyy-MM-dd_HH-mm-ss}.{(kind == BackupFormat.Zip ? "zip" : "dump")}";
            if (target == "-")
            {
                await using var stdout = Console.OpenStandardOutput();
                await m.DumpAsync(name, stdout, kind, cancellationToken: ct);
                return;
            }
            await m.DumpToFileAsync(name, Path.GetFullPath(target), kind, ct);
            Console.Error.WriteLine($"wrote {target}");
        }, ct));

        var restoreName = new Argument<string>("name") { Description = "New database (and tenant subdomain)" };
        var file = new Argument<string>("file") { Description = "Backup file (zip or custom-format dump); - for standard input" };
        var copy = new Option<bool>("--copy") { Description = "Give the restored database a new uuid (it is a copy)" };
        var neutralize = new Option<bool>("--neutralize") { Description = "Switch off outgoing mail and scheduled jobs" };
        var restore = new Command("restore", "Restore a backup as a new tenant database.") { restoreName, file, copy, neutralize };
        restore.SetAction((p, ct) => RunAsync(config, p, async m =>
        {
            var path = p.GetValue(file)!;
            if (path == "-")
            {
                await using var stdin = Console.OpenStandardInput();
                await m.RestoreAsync(p.GetValue(restoreName)!, stdin, p.GetValue(copy), p.GetValue(neutralize), ct);
            }
            else
            {
                if (!File.Exists(path))
                {
                    throw new DatabaseManagerException(DatabaseManagerError.NotFound, $"{path} does not exist");
                }
                await m.RestoreFileAsync(p.GetValue(restoreName)!, Path.GetFullPath(path), p.GetValue(copy), p.GetValue(neutralize), ct);
            }
            Console.WriteLine($"restored {p.GetValue(restoreName)}");
        }, ct));

        var source = new Argument<string>("source") { Description = "Database to copy" };
        var target = new Argument<string>("new_name") { Description = "New database" };
        var duplicate = new Command("duplicate", "Copy a database (template copy, files by hard links, new uuid).") { source, target, neutralize };
        duplicate.SetAction((p, ct) => RunAsync(config, p, async m =>
        {
            await m.DuplicateAsync(p.GetValue(source)!, p.GetValue(target)!, p.GetValue(neutralize), ct);
            Console.WriteLine($"duplicated {p.GetValue(source)} to {p.GetValue(target)}");
        }, ct));

        var dropName = new Argument<string>("name") { Description = "Database to drop, with its files" };
        var drop = new Command("drop", "Drop a database, its files and its tenant.") { dropName };
        drop.SetAction((p, ct) => RunAsync(config, p, async m =>
        {
            if (!await m.DropAsync(p.GetValue(dropName)!, ct))
            {
                throw new DatabaseManagerException(DatabaseManagerError.NotFound, $"database '{p.GetValue(dropName)}' does not exist");
            }
            Console.WriteLine($"dropped {p.GetValue(dropName)}");
        }, ct));

        var oldName = new Argument<string>("name") { Description = "Database to rename" };
        var newName = new Argument<string>("new_name") { Description = "Its new name (and subdomain)" };
        var rename = new Command("rename", "Rename a database with its files and tenant.") { oldName, newName };
        rename.SetAction((p, ct) => RunAsync(config, p, async m =>
        {
            await m.RenameAsync(p.GetValue(oldName)!, p.GetValue(newName)!, ct);
            Console.WriteLine($"renamed {p.GetValue(oldName)} to {p.GetValue(newName)}");
        }, ct));

        var list = new Command("list", "List the tenant databases that are served.");
        list.SetAction((p, ct) => RunAsync(config, p, async m =>
        {
            foreach (var name in await m.ListAsync(ct))
            {
                Console.WriteLine(name);
            }
        }, ct));

        command.Subcommands.Add(backup);
        command.Subcommands.Add(restore);
        command.Subcommands.Add(duplicate);
        command.Subcommands.Add(drop);
        command.Subcommands.Add(rename);
        command.Subcommands.Add(list);
        return command;
    }

    private static async Task<int> RunAsync(ConfigOptions config, ParseResult parseResult, Func<DatabaseManager, Task> action,
        CancellationToken cancellationToken)
    {
        if (LoomworksCli.LoadSettings(config, parseResult) is not { } settings)
        {
            return LoomworksCli.ConfigErrorExitCode;
        }
        using var loggerFactory = LoggerFactory.Create(logging => logging.AddSimpleConsole(o => o.SingleLine = true)
            .SetMinimumLevel(LogLevel.Warning).AddFilter((_, _) => true));
        try
        {
            await using var postgres = await PostgresServer.OpenAsync(settings, loggerFactory.CreateLogger("Loomworks"), cancellationToken);
            await DatabaseAdmin.EnsureDatabaseAsync(postgres.Endpoint, settings.ManagementDatabase, cancellationToken);
            var (dataSources, management) = ManagementDatabase.Open(postgres.Endpoint, settings.ManagementDatabase,
                Hosting.ManagementMigrations.All);
            await using var _ = dataSources;
            await management.MigrateAsync(cancellationToken);
            var schema = new Loomworks.Operations.ErpTenantSetup();
            var manager = new DatabaseManager(dataSources, management, new FileStore(settings.DataDir),
                new TenantRegistration(management, new TenantLifecycle(management, dataSources, TenancyOptions.From(settings), schema)),
                new PgTools(postgres.Endpoint, PostgresBinaries.Locate(settings.Get(ConfigKeys.PgBinDir)).Directory),
                DatabaseManagerOptions.From(settings, schema), loggerFactory.CreateLogger<DatabaseManager>());
            await manager.RecoverAsync(cancellationToken);
            await action(manager);
            return 0;
        }
        catch (DatabaseManagerException e)
        {
            await Console.Error.WriteLineAsync($"loomworks db: {e.Message}");
            return e.Error == DatabaseManagerError.Failed ? LoomworksCli.StartupErrorExitCode : LoomworksCli.ConfigErrorExitCode;
        }
        catch (Exception e) when (e is InvalidOperationException or NpgsqlException or IOException)
        {
            await Console.Error.WriteLineAsync($"loomworks db: {e.Message}");
            return LoomworksCli.StartupErrorExitCode;
        }
    }
}
