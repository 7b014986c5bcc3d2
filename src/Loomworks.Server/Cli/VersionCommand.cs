using System.CommandLine;

namespace Loomworks.Server.Cli;

public static class VersionCommand
{
    public static Command Create()
    {
        var command = new Command("version", "Print the version: <loomworks version>+odoo<Odoo API level>.");
        command.SetAction(_ => Console.WriteLine(LoomworksVersion.Full));
        return command;
    }
}
