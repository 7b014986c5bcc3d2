using System.Collections;
using System.Text;

namespace Loomworks.Configuration;

/// <summary>
/// Builds <see cref="LoomworksSettings"/> from built-in defaults, then the file, then the environment, then the
/// command line, each overriding the one before.
/// </summary>
public static class ConfigLoader
{
    public const string SystemConfigFile = "/etc/loomworks/loomworks.conf";
    public const string ConfigFileVariable = "LOOMWORKS_RC";

    /// <summary>Files larger than this are refused rather than read: a configuration file is a few kilobytes.</summary>
    private const long MaxFileBytes = 1024 * 1024;

    public static LoomworksSettings Load(string? configFlag, IReadOnlyDictionary<string, string> environment,
        IReadOnlyDictionary<string, string> flags, bool lookForDefaultFile = true)
    {
        var values = ConfigKeys.All.ToDictionary(k => k.Name, k => (k.Default, ConfigSource.Default), StringComparer.Ordinal);
        var errors = new List<string>();
        var warnings = new List<string>();

        var file = ResolveFile(configFlag, environment, lookForDefaultFile);
        if (file is not null)
        {
            ReadFile(file, values, errors, warnings);
        }

        foreach (var key in ConfigKeys.All)
        {
            var name = environment.ContainsKey(key.EnvironmentVariable) ? key.EnvironmentVariable
                : key.ContainerVariable is { } container && environment.ContainsKey(container) ? container
                : null;
            if (name is not null)
            {
                Set(values, errors, key, environment[name], ConfigSource.Environment, $"environment variable {name}");
            }
        }

        foreach (var (flag, value) in flags)
        {
            var spelled = (flag.Length == 1 ? "-" : "--") + flag;
            var key = ConfigKeys.Find(flag);
            if (key is null)
            {
                errors.Add($"unknown option {spelled}");
                continue;
            }
            Set(values, errors, key, value, ConfigSource.CommandLine, $"option {spelled}");
        }

        if (errors.Count > 0)
        {
            throw new ConfigException(string.Join(Environment.NewLine, errors));
        }
        return new LoomworksSettings(values, file, warnings);
    }

    private static string? ResolveFile(string? configFlag, IReadOnlyDictionary<string, string> environment, bool lookForDefault)
    {
        if (!string.IsNullOrEmpty(configFlag))
        {
            return File.Exists(configFlag)
                ? Path.GetFullPath(configFlag)
                : throw new ConfigException($"configuration file {configFlag} (from -c/--config) does not exist");
        }
        if (!lookForDefault)
        {
            return null;
        }
        if (environment.TryGetValue(ConfigFileVariable, out var fromEnvironment) && fromEnvironment.Length > 0)
        {
            return File.Exists(fromEnvironment)
                ? Path.GetFullPath(fromEnvironment)
                : throw new ConfigException($"configuration file {fromEnvironment} (from {ConfigFileVariable}) does not exist");
        }
        if (File.Exists(SystemConfigFile))
        {
            return SystemConfigFile;
        }
        var userFile = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".loomworksrc");
        return File.Exists(userFile) ? userFile : null;
    }

    /// <summary>Reads the [options] section of an INI file as Odoo does; other sections belong to others and are skipped.</summary>
    private static void ReadFile(string file, Dictionary<string, (string?, ConfigSource)> values, List<string> errors,
        List<string> warnings)
    {
        string[] lines;
        try
        {
            if (new FileInfo(file).Length > MaxFileBytes)
            {
                errors.Add($"{file}: larger than {MaxFileBytes / 1024} KiB; this is not a configuration file");
                return;
            }
            lines = File.ReadAllLines(file, new UTF8Encoding(false, throwOnInvalidBytes: true));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or DecoderFallbackException)
        {
            errors.Add($"{file}: cannot be read: {e.Message}");
            return;
        }

        string? section = null;
        var seen = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var i = 0; i < lines.Length; i++)
        {
            var where = $"{file}:{i + 1}";
            var line = lines[i].Trim();
            if (line.Length == 0 || line[0] is '#' or ';')
            {
                continue;
            }
            if (line[0] == '[')
            {
                if (line[^1] != ']')
                {
                    errors.Add($"{where}: section header '{Shorten(line)}' is missing its closing ']'");
                    continue;
                }
                section = line[1..^1].Trim();
                continue;
            }
            var separator = line.IndexOfAny(['=', ':']);
            if (separator <= 0)
            {
                errors.Add($"{where}: expected 'key = value', found '{Shorten(line)}'");
                continue;
            }
            if (section is null)
            {
                errors.Add($"{where}: '{Shorten(line)}' comes before any section; put it under [options]");
                continue;
            }
            if (section != "options")
            {
                continue;
            }
            var name = line[..separator].Trim();
            var value = line[(separator + 1)..].Trim();
            if (seen.TryGetValue(name, out var firstLine))
            {
                errors.Add($"{where}: key '{name}' is already set on line {firstLine}");
                continue;
            }
            seen[name] = i + 1;
            var key = ConfigKeys.Find(name);
            if (key is null || key.Name != name)
            {
                warnings.Add($"{where}: unknown key '{Shorten(name)}' is ignored");
                continue;
            }
            Set(values, errors, key, value, ConfigSource.File, where);
        }
    }

    private static void Set(Dictionary<string, (string?, ConfigSource)> values, List<string> errors, ConfigKey key,
        string value, ConfigSource source, string where)
    {
        if (value.Length > 4096)
        {
            errors.Add($"{where}: the value of {key.Name} is longer than 4096 characters");
            return;
        }
        if (value.Any(c => char.IsControl(c) && c != '\t'))
        {
            errors.Add($"{where}: the value of {key.Name} contains control characters");
            return;
        }
        // "False" is how Odoo writes an unset key; for booleans it is a real value.
        if (key.Kind != ConfigValueKind.Switch && ConfigValues.MeansUnset(value))
        {
            values[key.Name] = (null, source);
            return;
        }
        if (key.Validate(value) is { } problem)
        {
            errors.Add($"{where}: invalid value for {key.Name}: {problem}");
            return;
        }
        values[key.Name] = (value, source);
    }

    private static string Shorten(string text) => text.Length <= 60 ? text : text[..57] + "...";

    public static Dictionary<string, string> CurrentEnvironment()
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (DictionaryEntry entry in Environment.GetEnvironmentVariables())
        {
            result[(string)entry.Key] = (string?)entry.Value ?? "";
        }
        return result;
    }
}
