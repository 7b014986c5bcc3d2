using System.Globalization;
using Microsoft.Extensions.Logging;

namespace Loomworks.Configuration;

/// <summary>Where a configuration value came from; later sources override earlier ones.</summary>
public enum ConfigSource
{
    Default,
    File,
    Environment,
    CommandLine,
}

/// <summary>The resolved configuration: every key's value and where it came from, with typed accessors.</summary>
public sealed class LoomworksSettings
{
    private readonly Dictionary<string, (string? Value, ConfigSource Source)> _values;

    internal LoomworksSettings(Dictionary<string, (string? Value, ConfigSource Source)> values, string? configFile,
        IReadOnlyList<string> warnings)
    {
        _values = values;
        ConfigFile = configFile;
        Warnings = warnings;
    }

    /// <summary>Settings with every key at its default, for tests and tools that override a few keys.</summary>
    public static LoomworksSettings Defaults(IReadOnlyDictionary<string, string>? overrides = null) =>
        ConfigLoader.Load(null, new Dictionary<string, string>(), overrides ?? new Dictionary<string, string>(),
            lookForDefaultFile: false);

    public string? ConfigFile { get; }
    public IReadOnlyList<string> Warnings { get; }

    public string? Get(ConfigKey key) => _values[key.Name].Value;
    public ConfigSource SourceOf(ConfigKey key) => _values[key.Name].Source;

    public int GetInt(ConfigKey key) => int.Parse(Get(key)!, CultureInfo.InvariantCulture);
    public bool GetBool(ConfigKey key) => ConfigValues.TryParseBoolean(Get(key)!, out var b) && b;

    public string? DbHost => Get(ConfigKeys.DbHost);
    public bool UsesEmbeddedPostgres => string.IsNullOrEmpty(DbHost);
    public int? DbPort => Get(ConfigKeys.DbPort) is { } p ? int.Parse(p, CultureInfo.InvariantCulture) : null;
    public string? DbUser => Get(ConfigKeys.DbUser);
    public string? DbPassword => Get(ConfigKeys.DbPassword);
    public string? AdminPassword => Get(ConfigKeys.AdminPasswd);
    public int HttpPort => GetInt(ConfigKeys.HttpPort);
    public string HttpInterface => Get(ConfigKeys.HttpInterface) ?? "";
    public bool ProxyMode => GetBool(ConfigKeys.ProxyMode);
    public string ManagementDatabase => Get(ConfigKeys.MgmtDb)!;
    public int MaxConnections => GetInt(ConfigKeys.DbMaxConn);
    public TimeSpan ShutdownTimeout => TimeSpan.FromSeconds(GetInt(ConfigKeys.ShutdownTimeout));
    public bool JsonLogs => string.Equals(Get(ConfigKeys.LogFormat), "json", StringComparison.OrdinalIgnoreCase);

    public LogLevel LogLevel =>
        ConfigValues.TryParseLogLevel(Get(ConfigKeys.LogLevel)!, out var level) ? level : LogLevel.Information;

    public IReadOnlyList<string> TrustedProxies =>
        (Get(ConfigKeys.TrustedProxies) ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    /// <summary>
    /// data_dir, or the default: /var/lib/loomworks as root (PostgreSQL runs as the postgres user there and cannot
    /// enter /root), else ~/.local/share/Loomworks as Odoo does.
    /// </summary>
    public string DataDir => Get(ConfigKeys.DataDir) is { } dir
        ? Path.GetFullPath(ExpandHome(dir))
        : Environment.UserName == "root"
            ? "/var/lib/loomworks"
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".local", "share", "Loomworks");

    public string BackupRepository => Get(ConfigKeys.BackupRepo) is { } repo
        ? Path.GetFullPath(ExpandHome(repo))
        : Path.Combine(DataDir, "backup");

    /// <summary>All key/value pairs that differ from their default, for writing a configuration file.</summary>
    public IEnumerable<(ConfigKey Key, string? Value)> NonDefaults() =>
        ConfigKeys.All.Where(k => SourceOf(k) != ConfigSource.Default).Select(k => (k, Get(k)));

    private static string ExpandHome(string path) =>
        path.StartsWith("~/", StringComparison.Ordinal)
            ? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), path[2..])
            : path;
}
