using Microsoft.Extensions.Logging;

namespace Loomworks.Configuration;

/// <summary>Odoo's spellings of booleans and log levels.</summary>
public static class ConfigValues
{
    private static readonly Dictionary<string, LogLevel> LogLevels = new(StringComparer.OrdinalIgnoreCase)
    {
        ["debug_sql"] = LogLevel.Trace,
        ["debug_rpc_answer"] = LogLevel.Trace,
        ["debug_rpc"] = LogLevel.Debug,
        ["debug"] = LogLevel.Debug,
        ["info"] = LogLevel.Information,
        ["warn"] = LogLevel.Warning,
        ["warning"] = LogLevel.Warning,
        ["error"] = LogLevel.Error,
        ["critical"] = LogLevel.Critical,
        ["notset"] = LogLevel.Information,
    };

    public static IEnumerable<string> LogLevelNames => LogLevels.Keys;

    public static bool TryParseBoolean(string value, out bool result)
    {
        switch (value.Trim().ToUpperInvariant())
        {
            case "TRUE" or "1" or "YES" or "ON":
                result = true;
                return true;
            case "FALSE" or "0" or "NO" or "OFF":
                result = false;
                return true;
            default:
                result = false;
                return false;
        }
    }

    public static bool TryParseLogLevel(string value, out LogLevel level) => LogLevels.TryGetValue(value.Trim(), out level);

    /// <summary>Odoo writes unset text keys as False (or None): both mean "no value".</summary>
    public static bool MeansUnset(string value) => value is "False" or "None" or "";
}
