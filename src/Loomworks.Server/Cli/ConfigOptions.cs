using System.CommandLine;
using Loomworks.Configuration;

namespace Loomworks.Server.Cli;

/// <summary>
/// One command-line option per configuration key (<c>--http-port</c> and <c>--http_port</c> alike), plus Odoo's
/// other spellings, all recursive so they work before or after the command name.
/// </summary>
public sealed class ConfigOptions
{
    private readonly List<(ConfigKey Key, Option<string?> Option)> _options = [];

    public ConfigOptions(RootCommand root)
    {
        ConfigFile = new Option<string?>("--config", "-c") { Description = "Configuration file", Recursive = true };
        root.Options.Add(ConfigFile);
        foreach (var key in ConfigKeys.All)
        {
            var name = "--" + key.Name.Replace('_', '-');
            var aliases = new List<string>();
            if (key.Name.Contains('_', StringComparison.Ordinal))
            {
                aliases.Add("--" + key.Name);
            }
            aliases.AddRange(ConfigKeys.FlagAliases.GetValueOrDefault(key.Name, []).Select(a => (a.Length == 1 ? "-" : "--") + a));
            var option = new Option<string?>(name, [.. aliases])
            {
                Description = key.Description,
                Recursive = true,
                HelpName = key.Kind switch
                {
                    ConfigValueKind.WholeNumber => "number",
                    ConfigValueKind.Switch => "True|False",
                    ConfigValueKind.Regex => "regex",
                    ConfigValueKind.LogLevel => "level",
                    _ => "value",
                },
                // A boolean flag given alone (--proxy-mode) means True, as in Odoo.
                Arity = key.Kind == ConfigValueKind.Switch ? ArgumentArity.ZeroOrOne : ArgumentArity.ExactlyOne,
            };
            root.Options.Add(option);
            _options.Add((key, option));
        }
    }

    public Option<string?> ConfigFile { get; }

    /// <summary>Reads the file, the environment and these flags into settings; a bad value throws <see cref="ConfigException"/>.</summary>
    public LoomworksSettings Load(ParseResult parseResult) =>
        ConfigLoader.Load(parseResult.GetValue(ConfigFile), ConfigLoader.CurrentEnvironment(), Flags(parseResult));

    /// <summary>
    /// The configuration keys given on the command line, by the spelling used (without dashes), for messages that quote it.
    /// </summary>
    public Dictionary<string, string> Flags(ParseResult parseResult)
    {
        var flags = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (key, option) in _options)
        {
            var result = parseResult.GetResult(option);
            if (result is null || result.Implicit)
            {
                continue;
            }
            var spelling = (result.IdentifierToken?.Value ?? key.Name).TrimStart('-');
            flags[spelling] = result.Tokens.Count == 0 ? "True" : result.Tokens[0].Value;
        }
        return flags;
    }
}
