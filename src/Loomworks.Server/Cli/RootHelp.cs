using System.CommandLine;
using System.CommandLine.Help;
using System.CommandLine.Invocation;

namespace Loomworks.Server.Cli;

/// <summary>
/// `loomworks --help` lists the commands first and says where the configuration options are described, instead of
/// putting some sixty options before the thirteen commands; each command's own help keeps the full list.
/// </summary>
internal sealed class RootHelp(SynchronousCommandLineAction standard) : SynchronousCommandLineAction
{
    public override bool ClearsParseErrors => true;

    public static void Install(RootCommand root)
    {
        if (root.Options.OfType<HelpOption>().FirstOrDefault() is { Action: SynchronousCommandLineAction standard } help)
        {
            help.Action = new RootHelp(standard);
        }
    }

    public override int Invoke(ParseResult parseResult)
    {
        if (parseResult.CommandResult.Command is not RootCommand root)
        {
            return standard.Invoke(parseResult);
        }
        var output = parseResult.InvocationConfiguration.Output;
        output.WriteLine("Description:");
        output.WriteLine($"  {root.Description}");
        output.WriteLine();
        output.WriteLine("Usage:");
        output.WriteLine("  loomworks [command] [options]");
        output.WriteLine();
        output.WriteLine("Commands:");
        var commands = root.Subcommands.Where(c => !c.Hidden).ToList();
        var width = commands.Max(c => c.Name.Length) + 2;
        foreach (var command in commands)
        {
            output.WriteLine($"  {command.Name.PadRight(width)}{command.Description}");
        }
        output.WriteLine();
        output.WriteLine("""
            Options:
              -c, --config <file>  Configuration file (else $LOOMWORKS_RC, /etc/loomworks/loomworks.conf, ~/.loomworksrc)
              -?, -h, --help       Show help and usage information
              --version            Show version information

            Configuration options: every key of the configuration file is also an option of every command (--data-dir,
            --http-port, --db-host, ...) and an environment variable LOOMWORKS_<KEY>. `loomworks server --help` lists them
            all with their meaning; `loomworks config --help` writes them to a configuration file.
            `loomworks COMMAND --help` describes a command.
            """);
        return 0;
    }
}
