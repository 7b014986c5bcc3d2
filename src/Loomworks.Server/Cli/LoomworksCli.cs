using System.CommandLine;
using Loomworks.Configuration;

namespace Loomworks.Server.Cli;

/// <summary>The <c>loomworks</c> command line: the server by default, and one subcommand per task.</summary>
public static class LoomworksCli
{
    public const int ConfigErrorExitCode = 2;
    public const int StartupErrorExitCode = 1;

    public static RootCommand Create()
    {
        var root = new RootCommand(
            "Loomworks: a multi-tenant ERP host that speaks Odoo's external API. With no command it runs the server.");
        var config = new ConfigOptions(root);

        var server = ServerCommand.Create(config);
        root.Subcommands.Add(server);
        root.Action = server.Action;
        root.Subcommands.Add(VersionCommand.Create());
        root.Subcommands.Add(DoctorCommand.Create(config));
        root.Subcommands.Add(ConfigCommand.Create(config));
        root.Subcommands.Add(TenantCommand.Create(config));
        root.Subcommands.Add(DbCommand.Create(config));
        root.Subcommands.Add(UndoCommand.Create(config));
        root.Subcommands.Add(OpsCommand.Create(config));
        root.Subcommands.Add(RewindCommand.Create(config));
        root.Subcommands.Add(BackupCommand.Create(config));
        root.Subcommands.Add(SnapshotCommand.Create(config));
        root.Subcommands.Add(RestoreCommand.Create(config));
        RootHelp.Install(root);
        return root;
    }

    /// <summary>Loads the configuration, printing warnings; null (after printing why) when it cannot be used.</summary>
    public static LoomworksSettings? LoadSettings(ConfigOptions config, ParseResult parseResult)
    {
        try
        {
            var settings = config.Load(parseResult);
            foreach (var warning in settings.Warnings)
            {
                Console.Error.WriteLine($"warning: {warning}");
            }
            return settings;
        }
        catch (ConfigException e)
        {
            Console.Error.WriteLine($"loomworks: configuration error:{Environment.NewLine}{e.Message}");
            return null;
        }
    }
}
