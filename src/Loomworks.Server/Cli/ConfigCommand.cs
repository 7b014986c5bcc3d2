using System.CommandLine;
using Loomworks.Configuration;

namespace Loomworks.Server.Cli;

public static class ConfigCommand
{
    public static Command Create(ConfigOptions config)
    {
        var output = new Option<string?>("--output", "-o")
        {
            Description = "File to write (default: the -c file, else $LOOMWORKS_RC, else /etc/loomworks/loomworks.conf as root, " +
                "else ~/.loomworksrc)",
        };
        var all = new Option<bool>("--all") { Description = "Write every key, defaults included" };
        var generate = new Command("generate",
            "Write a configuration file from the environment and flags (mode 0600), as the container entrypoint does.")
        {
            output, all,
        };
        generate.SetAction(parseResult =>
        {
            var target = parseResult.GetValue(output) ?? parseResult.GetValue(config.ConfigFile)
                ?? NonEmpty(Environment.GetEnvironmentVariable(ConfigLoader.ConfigFileVariable))
                ?? (Environment.UserName == "root"
                    ? ConfigLoader.SystemConfigFile
                    : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".loomworksrc"));
            LoomworksSettings settings;
            try
            {
                // The file being generated is an output, never an input.
                settings = ConfigLoader.Load(null, ConfigLoader.CurrentEnvironment(), config.Flags(parseResult),
                    lookForDefaultFile: false);
            }
            catch (ConfigException e)
            {
                Console.Error.WriteLine($"loomworks: configuration error:{Environment.NewLine}{e.Message}");
                return LoomworksCli.ConfigErrorExitCode;
            }
            try
            {
                ConfigWriter.Write(target, ConfigWriter.Render(settings, parseResult.GetValue(all)));
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                Console.Error.WriteLine($"loomworks: cannot write {target}: {e.Message}");
                return LoomworksCli.StartupErrorExitCode;
            }
            Console.WriteLine($"wrote {target}");
            return 0;
        });
        return new Command("config", "Configuration files.") { generate };
    }

    private static string? NonEmpty(string? value) => string.IsNullOrEmpty(value) ? null : value;
}
