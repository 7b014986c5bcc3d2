using System.Globalization;
using System.Text.RegularExpressions;
using Loomworks.Configuration;
using Loomworks.Postgres;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace Loomworks.Snapshots;

/// <summary>One finding about pgBackRest for an external server: what is wrong and the exact setting that fixes it.</summary>
public sealed record PgBackRestFinding(string Name, bool Passed, string Detail, string? Fix = null);

/// <summary>The settings of an external server that decide whether its WAL reaches pgBackRest.</summary>
public sealed record ServerArchiving(
    bool Superuser,
    string? DataDirectory,
    string WalLevel,
    string ArchiveMode,
    string ArchiveCommand,
    int ArchiveTimeoutSeconds,
    string SocketDirectories,
    int MajorVersion);

/// <summary>
/// pgBackRest for an operator's own PostgreSQL server (db_host): checks the keys that name it, checks the server's
/// archiving settings, sets archive_command and archive_timeout where Loomworks may (a superuser connection, a reload),
/// and otherwise says exactly which setting to change. It never restarts the operator's server.
/// </summary>
public static partial class ExternalServer
{
    // archive_command values that archive nothing, which Loomworks may replace without losing an operator's archive.
    private static readonly string[] PlaceholderArchiveCommands = ["", "(disabled)", "/bin/true", "true", ":"];

    /// <summary>The pgBackRest options for the configured mode and, when a key is malformed, why (naming the key).</summary>
    public static (PgBackRestOptions Options, string? Problem) Options(LoomworksSettings settings, PostgresEndpoint endpoint)
    {
        var retention = settings.GetInt(ConfigKeys.SnapshotRetentionDays);
        var stanza = settings.Get(ConfigKeys.PgBackRestStanza) ?? PostgresServer.PgBackRestStanza;
        var dataDir = Blank(settings.Get(ConfigKeys.PgDataDir));
        var config = Blank(settings.Get(ConfigKeys.PgBackRestConfig));
        // pgBackRest connects only through a unix socket: db_host is one when it is a path, else the set-up asks the server.
        var socketDir = endpoint.Host.StartsWith('/') ? endpoint.Host : "";
        var options = new PgBackRestOptions(settings.DataDir, settings.BackupRepository, "", socketDir, endpoint.Port, retention)
        {
            Mode = PgBackRestMode.None,
            Stanza = stanza,
            PgUser = endpoint.Username,
        };
        if (!StanzaPattern().IsMatch(stanza))
        {
            return (options,
                $"loomworks_pgbackrest_stanza '{stanza}' is not a stanza name (letters, digits, '.', '_' and '-', at most 64)");
        }
        if (dataDir is not null && config is not null)
        {
            return (options, "loomworks_pg_data_dir and loomworks_pgbackrest_config are both set: set loomworks_pg_data_dir " +
                "for a server on this machine that Loomworks sets up, or loomworks_pgbackrest_config for your own pgBackRest set-up, "
                + "not both");
        }
        if (config is not null)
        {
            options = options with { Mode = PgBackRestMode.OperatorConfig, OperatorConfig = config };
            return (options, CheckConfigFile(config, stanza));
        }
        if (dataDir is not null)
        {
            options = options with { Mode = PgBackRestMode.LocalServer, PgData = dataDir.TrimEnd('/') is { Length: > 0 } d ? d : "/" };
            return (options, CheckDataDir(dataDir));
        }
        return (options, "snapshots and point-in-time restore need pgBackRest for the PostgreSQL server at db_host: set " +
            "loomworks_pg_data_dir to its data directory when it runs on this machine, or loomworks_pgbackrest_config to " +
            "a pgBackRest configuration of your own (see 'loomworks doctor')");
    }

    /// <summary>Whether <paramref name="dataDir"/> is an absolute path to a PostgreSQL data directory; the problem otherwise.</summary>
    public static string? CheckDataDir(string dataDir)
    {
        if (!Path.IsPathFullyQualified(dataDir))
        {
            return $"loomworks_pg_data_dir must be an absolute path, not '{dataDir}'";
        }
        if (File.Exists(dataDir))
        {
            return $"loomworks_pg_data_dir {dataDir} is a file, not a PostgreSQL data directory";
        }
        if (!Directory.Exists(dataDir))
        {
            return $"loomworks_pg_data_dir {dataDir} does not exist (or this user cannot see it)";
        }
        if (!File.Exists(Path.Combine(dataDir, "PG_VERSION")) || !File.Exists(Path.Combine(dataDir, "global", "pg_control")))
        {
            return $"loomworks_pg_data_dir {dataDir} is not a PostgreSQL data directory (no PG_VERSION and global/pg_control); " +
                "set it to the server's data_directory (SHOW data_directory)";
        }
        return null;
    }

    /// <summary>Whether <paramref name="config"/> is a readable pgBackRest configuration with the stanza's section.</summary>
    public static string? CheckConfigFile(string config, string stanza)
    {
        if (!Path.IsPathFullyQualified(config))
        {
            return $"loomworks_pgbackrest_config must be an absolute path, not '{config}'";
        }
        if (Directory.Exists(config))
        {
            return $"loomworks_pgbackrest_config {config} is a directory, not a pgBackRest configuration file";
        }
        if (!File.Exists(config))
        {
            return $"loomworks_pgbackrest_config {config} does not exist";
        }
        string text;
        try
        {
            text = File.ReadAllText(config);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return $"loomworks_pgbackrest_config {config} cannot be read: {e.Message}";
        }
        if (text.Contains('\0', StringComparison.Ordinal))
        {
            return $"loomworks_pgbackrest_config {config} is not a pgBackRest configuration (binary content)";
        }
        var section = $"[{stanza}]";
        if (!text.Split('\n').Any(line => line.Trim() == section))
        {
            return $"loomworks_pgbackrest_config {config} has no {section} section: set loomworks_pgbackrest_stanza to the " +
                "stanza it defines";
        }
        return null;
    }

    /// <summary>Checks that pgBackRest, run as PostgreSQL's OS user, can read <paramref name="path"/>.</summary>
    public static async Task<string?> CheckServerUserReadsAsync(string key, string path, CancellationToken cancellationToken)
    {
        var result = await CommandRunner.RunAsync("/usr/bin/test", ["-r", path], CommandRunner.ServerUser,
            TimeSpan.FromSeconds(10), cancellationToken);
        return result.Succeeded
            ? null
            : $"{key} {path} cannot be read by the '{CommandRunner.ServerUser ?? Environment.UserName}' OS user, which runs " +
              "pgBackRest: give it read access (chown or chmod)";
    }

    /// <summary>Reads the server's archiving settings; settings the role may not see are null or empty.</summary>
    public static async Task<ServerArchiving> InspectAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        // pg_settings leaves out what the role may not read (data_directory without pg_read_all_settings) and the
        // settings SHOW ALL hides (is_superuser).
        await using var command = new NpgsqlCommand("""
            SELECT 'is_superuser', current_setting('is_superuser')
            UNION ALL SELECT 'server_version_num', current_setting('server_version_num')
            UNION ALL SELECT name, setting FROM pg_settings
            WHERE name IN ('data_directory', 'wal_level', 'archive_mode', 'archive_command', 'archive_timeout', 'unix_socket_directories')
            """, connection);
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                values[reader.GetString(0)] = reader.IsDBNull(1) ? "" : reader.GetString(1);
            }
        }
        string Value(string name) => values.GetValueOrDefault(name, "");
        return new ServerArchiving(
            Value("is_superuser") == "on",
            values.GetValueOrDefault("data_directory"),
            Value("wal_level"),
            Value("archive_mode"),
            Value("archive_command"),
            int.TryParse(Value("archive_timeout"), NumberStyles.Integer, CultureInfo.InvariantCulture, out var t) ? t : 0,
            Value("unix_socket_directories"),
            int.TryParse(Value("server_version_num"), NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) ? v / 10000 : 0);
    }

    /// <summary>
    /// What the server's settings mean for pgBackRest, each with the exact fix. Failures Loomworks fixes itself at
    /// start (archive_command, archive_timeout as a superuser, local mode) say so in their detail.
    /// </summary>
    public static List<PgBackRestFinding> Findings(PgBackRestOptions options, ServerArchiving server, int archiveTimeout)
    {
        var findings = new List<PgBackRestFinding>();
        findings.Add(server.WalLevel is "replica" or "logical"
            ? new("wal_level", true, server.WalLevel)
            : new("wal_level", false, $"wal_level is {server.WalLevel}; pgBackRest needs replica",
                "ALTER SYSTEM SET wal_level = replica; then restart PostgreSQL"));
        var pushes = options.Mode == PgBackRestMode.LocalServer
            ? "Loomworks then sets archive_command itself"
            : $"and archive_command = '{ArchiveCommandHint(options)}'";
        findings.Add(server.ArchiveMode is "on" or "always"
            ? new("archive_mode", true, server.ArchiveMode)
            : new("archive_mode", false, $"archive_mode is {server.ArchiveMode}: the server archives no WAL, so there is " +
                "nothing to restore from; it takes effect only after a restart, which Loomworks never does to your server",
                $"ALTER SYSTEM SET archive_mode = on; then restart PostgreSQL ({pushes})"));
        if (options.Mode == PgBackRestMode.LocalServer)
        {
            if (server.DataDirectory is { Length: > 0 } actual
                && !string.Equals(Normalise(actual), Normalise(options.PgData), StringComparison.Ordinal))
            {
                findings.Add(new("data_directory", false,
                    $"the server at db_host runs from {actual}, not from loomworks_pg_data_dir {options.PgData}",
                    $"set loomworks_pg_data_dir = {actual}"));
            }
            var wanted = options.ArchiveCommand;
            var setCommand = $"ALTER SYSTEM SET archive_command = {DatabaseAdmin.QuoteLiteral(wanted)}; SELECT pg_reload_conf();";
            if (server.ArchiveCommand == wanted)
            {
                findings.Add(new("archive_command", true, "pushes WAL to pgBackRest stanza " + options.Stanza));
            }
            else if (PlaceholderArchiveCommands.Contains(server.ArchiveCommand.Trim()))
            {
                findings.Add(new("archive_command", false, $"archive_command is '{server.ArchiveCommand}': no WAL reaches pgBackRest" +
                    (server.Superuser ? "; Loomworks sets it at its next start" : "; Loomworks cannot set it (db_user is not a superuser)"),
                    setCommand));
            }
            else
            {
                findings.Add(new("archive_command", false,
                    $"archive_command is already '{server.ArchiveCommand}'; Loomworks does not replace an archive of yours",
                    $"{setCommand} (or keep yours and set loomworks_pgbackrest_config to a pgBackRest set-up of your own)"));
            }
            findings.Add(server.ArchiveTimeoutSeconds > 0
                ? new("archive_timeout", true, $"{server.ArchiveTimeoutSeconds} s")
                : new("archive_timeout", false, "archive_timeout is 0: a quiet tenant's last changes wait for a full WAL segment" +
                    (server.Superuser ? "; Loomworks sets it at its next start" : "; Loomworks cannot set it (db_user is not a superuser)"),
                    $"ALTER SYSTEM SET archive_timeout = {archiveTimeout}; SELECT pg_reload_conf();"));
        }
        else
        {
            var mentions = server.ArchiveCommand.Contains("archive-push", StringComparison.Ordinal)
                && Regex.IsMatch(server.ArchiveCommand, $@"--stanza[= ]{Regex.Escape(options.Stanza)}(\s|$)", RegexOptions.None,
                    TimeSpan.FromSeconds(1));
            findings.Add(mentions
                ? new("archive_command", true, "pushes WAL to pgBackRest stanza " + options.Stanza)
                : new("archive_command", false,
                    $"archive_command is '{server.ArchiveCommand}': it does not push WAL to stanza {options.Stanza}",
                    $"on the server: archive_command = '{ArchiveCommandHint(options)}', then SELECT pg_reload_conf();"));
            findings.Add(server.ArchiveTimeoutSeconds > 0
                ? new("archive_timeout", true, $"{server.ArchiveTimeoutSeconds} s")
                : new("archive_timeout", false, "archive_timeout is 0: a quiet tenant's last changes wait for a full WAL segment",
                    $"ALTER SYSTEM SET archive_timeout = {archiveTimeout}; SELECT pg_reload_conf();"));
        }
        return findings;
    }

    /// <summary>
    /// Sets up pgBackRest for a server on this machine: checks everything first and changes nothing when something
    /// needs the operator; then writes the configuration, sets archive_command and archive_timeout (ALTER SYSTEM and a
    /// reload), runs stanza-create and a first full backup. Every step can run again after a crash.
    /// </summary>
    public static async Task SetUpLocalAsync(PgBackRest backRest, PooledDatabase admin, PostgresBinaries? binaries,
        int archiveTimeout, ILogger logger, CancellationToken cancellationToken)
    {
        var options = backRest.Options;
        if (await CheckServerUserReadsAsync("loomworks_pg_data_dir", Path.Combine(options.PgData, "PG_VERSION"), cancellationToken)
            is { } unreadable)
        {
            throw new PgBackRestException(unreadable);
        }
        ServerArchiving server;
        await using (var connection = await admin.OpenConnectionAsync(cancellationToken))
        {
            server = await InspectAsync(connection, cancellationToken);
        }
        var failed = Findings(options, server, archiveTimeout).Where(f => !f.Passed).ToList();
        if (await VersionProblemAsync(binaries, server, cancellationToken) is { } version)
        {
            failed.Add(version);
        }
        var fixable = server.Superuser ? new[] { "archive_command", "archive_timeout" } : [];
        var blocking = failed.Where(f => !(fixable.Contains(f.Name) && IsPlaceholderOrTimeout(f, server))).ToList();
        if (blocking.Count > 0)
        {
            throw new PgBackRestException("pgBackRest cannot be set up for the server at db_host: " +
                string.Join("; ", blocking.Select(f => $"{f.Detail} (fix: {f.Fix})")));
        }
        var socketDir = options.SocketDir.Length > 0 ? options.SocketDir : FirstSocketDir(server.SocketDirectories)
            ?? throw new PgBackRestException("the server at db_host has no unix socket (unix_socket_directories is " +
                $"'{server.SocketDirectories}'); pgBackRest connects only through one: set unix_socket_directories on the server " +
                "(restart) or set db_host to its socket directory");
        backRest.UseSocketDir(socketDir);
        backRest.WriteConfiguration();
        CrashPoint.Reached("snapshots:pgbackrest-configured");
        var changes = new List<string>();
        if (failed.Any(f => f.Name == "archive_command"))
        {
            changes.Add($"ALTER SYSTEM SET archive_command = {DatabaseAdmin.QuoteLiteral(options.ArchiveCommand)}");
        }
        if (failed.Any(f => f.Name == "archive_timeout"))
        {
            changes.Add($"ALTER SYSTEM SET archive_timeout = {archiveTimeout.ToString(CultureInfo.InvariantCulture)}");
        }
        if (changes.Count > 0)
        {
            logger.LogInformation("Setting {Settings} on the PostgreSQL server at db_host and reloading it", string.Join(", ", changes));
            await using var connection = await admin.OpenConnectionAsync(cancellationToken);
            foreach (var sql in changes)
            {
                // ALTER SYSTEM takes no parameters: the value is a literal built from our own paths.
                await using var command = new NpgsqlCommand(sql, connection);
                await command.ExecuteNonQueryAsync(cancellationToken);
                CrashPoint.Reached(sql.Contains("archive_command", StringComparison.Ordinal)
                    ? "snapshots:archive-command-set" : "snapshots:archive-timeout-set");
            }
            await using (var reload = new NpgsqlCommand("SELECT pg_reload_conf()", connection))
            {
                await reload.ExecuteNonQueryAsync(cancellationToken);
            }
            await WaitForArchiveCommandAsync(admin, options.ArchiveCommand, cancellationToken);
        }
        await backRest.EnsureSetUpAsync(cancellationToken);
    }

    /// <summary>
    /// Uses an operator's pgBackRest configuration as is: the server must already archive into its stanza, the stanza
    /// must exist; Loomworks changes nothing on the server and takes a first full backup only when there is none.
    /// </summary>
    public static async Task SetUpOperatorAsync(PgBackRest backRest, PooledDatabase admin, PostgresBinaries? binaries,
        int archiveTimeout, CancellationToken cancellationToken)
    {
        var options = backRest.Options;
        if (await CheckServerUserReadsAsync("loomworks_pgbackrest_config", options.ConfigPath, cancellationToken) is { } unreadable)
        {
            throw new PgBackRestException(unreadable);
        }
        ServerArchiving server;
        await using (var connection = await admin.OpenConnectionAsync(cancellationToken))
        {
            server = await InspectAsync(connection, cancellationToken);
        }
        // A zero archive_timeout only delays archiving; everything else would leave snapshots that never become ready.
        var blocking = Findings(options, server, archiveTimeout).Where(f => !f.Passed && f.Name != "archive_timeout").ToList();
        if (await VersionProblemAsync(binaries, server, cancellationToken) is { } version)
        {
            blocking.Add(version);
        }
        if (blocking.Count > 0)
        {
            throw new PgBackRestException($"pgBackRest stanza '{options.Stanza}' of {options.ConfigPath} cannot be used: " +
                string.Join("; ", blocking.Select(f => $"{f.Detail} (fix: {f.Fix})")));
        }
        await backRest.EnsureOperatorStanzaAsync(cancellationToken);
    }

    /// <summary>Every finding for <c>loomworks doctor</c>: keys, readability, the server's settings and the stanza.</summary>
    public static async Task<List<PgBackRestFinding>> DiagnoseAsync(LoomworksSettings settings, PostgresEndpoint endpoint,
        NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        var (options, problem) = Options(settings, endpoint);
        if (problem is not null)
        {
            var fix = options.Mode == PgBackRestMode.None ? await SuggestDataDirAsync(connection, cancellationToken) : null;
            return [new("setup", false, problem, fix)];
        }
        var findings = new List<PgBackRestFinding>();
        var (key, path) = options.Mode == PgBackRestMode.LocalServer
            ? ("loomworks_pg_data_dir", Path.Combine(options.PgData, "PG_VERSION"))
            : ("loomworks_pgbackrest_config", options.ConfigPath);
        if (PgBackRest.IsInstalled && await CheckServerUserReadsAsync(key, path, cancellationToken) is { } unreadable)
        {
            findings.Add(new("access", false, unreadable, "chown or chmod so that user may read it"));
        }
        var server = await InspectAsync(connection, cancellationToken);
        findings.AddRange(Findings(options, server, settings.GetInt(ConfigKeys.ArchiveTimeout)));
        PostgresBinaries? binaries = null;
        try
        {
            binaries = PostgresBinaries.Locate(settings.Get(ConfigKeys.PgBinDir));
        }
        catch (InvalidOperationException e)
        {
            findings.Add(new("restore programs", false, e.Message, $"apt-get install {PostgresBinaries.DebianPackage}"));
        }
        if (await VersionProblemAsync(binaries, server, cancellationToken) is { } version)
        {
            findings.Add(version);
        }
        if (!PgBackRest.IsInstalled)
        {
            return findings;
        }
        using var backRest = new PgBackRest(options, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);
        if (options.Mode == PgBackRestMode.LocalServer)
        {
            findings.Add(backRest.IsConfigured
                ? new("stanza", true, $"'{options.Stanza}' in {options.RepositoryPath}")
                : new("stanza", false, $"no stanza '{options.Stanza}' in {options.RepositoryPath} yet",
                    "start loomworks once the checks above pass: it runs stanza-create and a first full backup"));
        }
        else
        {
            try
            {
                var (code, message) = await backRest.StanzaStatusAsync(cancellationToken);
                findings.Add(code == 0
                    ? new("stanza", true, $"'{options.Stanza}' of {options.ConfigPath}: ok")
                    : new("stanza", false, $"'{options.Stanza}' of {options.ConfigPath}: {message}", code == 2
                        ? "start loomworks (it takes a first full backup) or run a backup of the stanza"
                        : $"pgbackrest --config={options.ConfigPath} --stanza={options.Stanza} stanza-create"));
            }
            catch (PgBackRestException e)
            {
                findings.Add(new("stanza", false, e.Message, $"check {options.ConfigPath} with: pgbackrest --config={options.ConfigPath} " +
                    $"--stanza={options.Stanza} check"));
            }
        }
        return findings;
    }

    private static async Task<string?> SuggestDataDirAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        try
        {
            var server = await InspectAsync(connection, cancellationToken);
            return server.DataDirectory is { Length: > 0 } dir && Directory.Exists(dir)
                ? $"set loomworks_pg_data_dir = {dir} (the server runs on this machine)"
                : "set loomworks_pg_data_dir to the server's data directory when it runs on this machine, or " +
                  "loomworks_pgbackrest_config to a pgBackRest configuration of your own";
        }
        catch (NpgsqlException)
        {
            return null;
        }
    }

    /// <summary>The scratch copy of a restore runs this machine's PostgreSQL programs: they must be the server's major version.</summary>
    private static async Task<PgBackRestFinding?> VersionProblemAsync(PostgresBinaries? binaries, ServerArchiving server,
        CancellationToken cancellationToken)
    {
        if (binaries is null || server.MajorVersion == 0)
        {
            return null;
        }
        var result = await CommandRunner.RunAsync(binaries["postgres"], ["--version"], timeout: TimeSpan.FromSeconds(10),
            cancellationToken: cancellationToken);
        var match = VersionPattern().Match(result.Output);
        if (!match.Success || int.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture) == server.MajorVersion)
        {
            return null;
        }
        return new("restore programs", false,
            $"restores start a scratch copy with PostgreSQL {match.Groups[1].Value} from {binaries.Directory}, but the server is " +
            $"PostgreSQL {server.MajorVersion}",
            $"apt-get install postgresql-{server.MajorVersion} and set "
            + $"loomworks_pg_bindir = /usr/lib/postgresql/{server.MajorVersion}/bin");
    }

    private static bool IsPlaceholderOrTimeout(PgBackRestFinding finding, ServerArchiving server) =>
        finding.Name == "archive_timeout" || PlaceholderArchiveCommands.Contains(server.ArchiveCommand.Trim());

    private static async Task WaitForArchiveCommandAsync(PooledDatabase admin, string wanted, CancellationToken cancellationToken)
    {
        // pg_reload_conf() only signals the postmaster: new sessions see the value once it has reread the files.
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (true)
        {
            await using var connection = await admin.OpenConnectionAsync(cancellationToken);
            await using var command = new NpgsqlCommand("SELECT current_setting('archive_command')", connection);
            if ((string?)await command.ExecuteScalarAsync(cancellationToken) == wanted)
            {
                return;
            }
            if (DateTime.UtcNow > deadline)
            {
                throw new PgBackRestException("archive_command was set with ALTER SYSTEM but the server did not take it after " +
                    "pg_reload_conf(); check the server's log (an archive_command in postgresql.conf set after the include of " +
                    "postgresql.auto.conf does not win)");
            }
            await Task.Delay(100, cancellationToken);
        }
    }

    private static string? FirstSocketDir(string directories) =>
        directories.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .FirstOrDefault(d => d.StartsWith('/'));

    private static string ArchiveCommandHint(PgBackRestOptions options) =>
        options.Mode == PgBackRestMode.LocalServer
            ? options.ArchiveCommand
            : $"pgbackrest --stanza={options.Stanza} archive-push %p";

    private static string Normalise(string path) => path.TrimEnd('/') is { Length: > 0 } p ? p : "/";

    private static string? Blank(string? value) => string.IsNullOrWhiteSpace(value) ? null : value.Trim();

    [GeneratedRegex(@"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
    private static partial Regex StanzaPattern();

    [GeneratedRegex(@"PostgreSQL\)\s+(\d+)")]
    private static partial Regex VersionPattern();
}
