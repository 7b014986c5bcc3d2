using System.Globalization;
using System.Text;
using System.Text.Json;
using Loomworks.Postgres;
using Microsoft.Extensions.Logging;
using NpgsqlTypes;

namespace Loomworks.Snapshots;

/// <summary>Whose pgBackRest set-up Loomworks uses for its PostgreSQL server.</summary>
public enum PgBackRestMode
{
    /// <summary>The embedded cluster: Loomworks configures everything.</summary>
    Embedded,

    /// <summary>An external server whose data directory is on this machine (loomworks_pg_data_dir): Loomworks configures it.</summary>
    LocalServer,

    /// <summary>An operator-managed pgBackRest configuration and stanza (loomworks_pgbackrest_config), used as is.</summary>
    OperatorConfig,

    /// <summary>An external server without either key: snapshots are off.</summary>
    None,
}

/// <summary>Where pgBackRest's files live for one PostgreSQL server and how long backups are kept.</summary>
public sealed record PgBackRestOptions(
    string DataDir,
    string RepositoryPath,
    string PgData,
    string SocketDir,
    int Port,
    int RetentionDays)
{
    public PgBackRestMode Mode { get; init; } = PgBackRestMode.Embedded;
    public string Stanza { get; init; } = PostgresServer.PgBackRestStanza;

    /// <summary>The role pgBackRest connects as through the server's unix socket.</summary>
    public string PgUser { get; init; } = EmbeddedCluster.Superuser;

    /// <summary>The operator's configuration file in <see cref="PgBackRestMode.OperatorConfig"/>, else null.</summary>
    public string? OperatorConfig { get; init; }

    public string ConfigPath => OperatorConfig ?? PostgresServer.PgBackRestConfigPath(DataDir);
    public string HomeDir => Path.GetDirectoryName(PostgresServer.PgBackRestConfigPath(DataDir))!;

    /// <summary>The archive_command that pushes WAL into this stanza, as the server must run it.</summary>
    public string ArchiveCommand =>
        $"{PostgresServer.PgBackRestExecutable} --config='{ConfigPath}' --stanza={Stanza} archive-push %p";
}

/// <summary>One pgBackRest backup set, as <c>pgbackrest info</c> reports it.</summary>
public sealed record BackupSet(
    string Label,
    string Type,
    DateTimeOffset Started,
    DateTimeOffset Stopped,
    NpgsqlLogSequenceNumber StartLsn,
    NpgsqlLogSequenceNumber StopLsn,
    long SizeBytes,
    long RepositorySizeBytes);

/// <summary>Raised when pgBackRest is missing, misconfigured or a command of it fails; the message says which.</summary>
public sealed class PgBackRestException(string message) : Exception(message);

/// <summary>
/// pgBackRest for one PostgreSQL server: its configuration file, the stanza, backups, expire and info. Every call
/// passes <c>--config</c> explicitly and runs as the user PostgreSQL runs as, who owns the repository.
/// </summary>
public sealed class PgBackRest(PgBackRestOptions options, ILogger logger) : IDisposable
{
    private readonly SemaphoreSlim _backupGate = new(1, 1);
    private PgBackRestOptions _options = options;
    private volatile bool _operatorStanzaChecked;

    /// <summary>
    /// pgBackRest for the server <paramref name="snapshots"/> were bound for, off with its reason when a key is malformed.
    /// </summary>
    public PgBackRest(SnapshotOptions snapshots, ILogger<PgBackRest> logger) : this(snapshots.BackRest, logger)
    {
        SetProblem(snapshots.Problem);
    }

    public PgBackRestOptions Options => _options;

    public void Dispose() => _backupGate.Dispose();

    public static bool IsInstalled => File.Exists(PostgresServer.PgBackRestExecutable);

    /// <summary>
    /// Why snapshots are off for an external server (a missing key, a setting of the server, a bad path), or null.
    /// Set by the set-up at start; the embedded cluster never has one.
    /// </summary>
    public string? Problem { get; private set; }

    public bool IsConfigured => Problem is null && File.Exists(_options.ConfigPath) && _options.Mode switch
    {
        // The operator's repository may be remote: pgbackrest info at start said the stanza is there.
        PgBackRestMode.OperatorConfig => _operatorStanzaChecked,
        PgBackRestMode.None => false,
        _ => File.Exists(Path.Combine(_options.RepositoryPath, "backup", _options.Stanza, "backup.info")),
    };

    /// <summary>Records why snapshots are off (or clears it) after the set-up checked an external server.</summary>
    internal void SetProblem(string? problem) => Problem = problem;

    /// <summary>The socket directory the external server listens on, found by the set-up (pgBackRest connects only there).</summary>
    internal void UseSocketDir(string socketDir) => _options = _options with { SocketDir = socketDir };

    /// <summary>Writes the configuration (every start, so a changed repository or retention takes effect).</summary>
    public void WriteConfiguration()
    {
        RequireInstalled();
        if (_options.Mode == PgBackRestMode.OperatorConfig)
        {
            throw new InvalidOperationException("the operator's pgBackRest configuration is used as is, never written");
        }
        foreach (var dir in new[] { _options.HomeDir, _options.RepositoryPath, LogDir, LockDir, SpoolDir })
        {
            Directory.CreateDirectory(dir);
            CommandRunner.GiveToServerUser(dir);
        }
        var text = new StringBuilder()
            .AppendLine("# Written by Loomworks at every start; set loomworks_backup_repo and loomworks_snapshot_retention_days instead")
            .AppendLine("# (or point loomworks_pgbackrest_config at a configuration of your own, which Loomworks uses as is).")
            .AppendLine("[global]")
            .AppendLine(CultureInfo.InvariantCulture, $"repo1-path={_options.RepositoryPath}")
            .AppendLine("repo1-retention-full-type=time")
            .AppendLine(CultureInfo.InvariantCulture, $"repo1-retention-full={_options.RetentionDays}")
            .AppendLine(CultureInfo.InvariantCulture, $"log-path={LogDir}")
            .AppendLine(CultureInfo.InvariantCulture, $"lock-path={LockDir}")
            .AppendLine(CultureInfo.InvariantCulture, $"spool-path={SpoolDir}")
            .AppendLine("log-level-console=warn")
            .AppendLine("log-level-file=info")
            .AppendLine("start-fast=y")
            .AppendLine("compress-type=lz4")
            .AppendLine("process-max=2")
            .AppendLine()
            .AppendLine(CultureInfo.InvariantCulture, $"[{_options.Stanza}]")
            .AppendLine(CultureInfo.InvariantCulture, $"pg1-path={_options.PgData}")
            .AppendLine(CultureInfo.InvariantCulture, $"pg1-port={_options.Port}")
            .AppendLine(CultureInfo.InvariantCulture, $"pg1-socket-path={_options.SocketDir}")
            .AppendLine(CultureInfo.InvariantCulture, $"pg1-user={_options.PgUser}")
            .ToString();
        var temporary = _options.ConfigPath + ".tmp";
        File.WriteAllText(temporary, text);
        CommandRunner.GiveToServerUser(temporary);
        File.Move(temporary, _options.ConfigPath, overwrite: true);
    }

    /// <summary>First start: configuration, stanza-create and a first full backup; later starts only rewrite the file.</summary>
    public async Task EnsureSetUpAsync(CancellationToken cancellationToken)
    {
        WriteConfiguration();
        if (!IsConfigured)
        {
            logger.LogInformation("Creating the pgBackRest stanza {Stanza} in {Repository}", _options.Stanza, _options.RepositoryPath);
            await RunCheckedAsync(["stanza-create"], TimeSpan.FromMinutes(5), cancellationToken);
            CrashPoint.Reached("snapshots:stanza-created");
        }
        if ((await InfoAsync(cancellationToken)).Count == 0)
        {
            logger.LogInformation("Taking the first full backup");
            await BackupAsync("full", cancellationToken);
        }
    }

    /// <summary>
    /// The operator's stanza, used as is: it must exist in the repository the operator's configuration names. Takes a
    /// first full backup when the stanza has none, as restores need one.
    /// </summary>
    public async Task EnsureOperatorStanzaAsync(CancellationToken cancellationToken)
    {
        var (code, message) = await StanzaStatusAsync(cancellationToken);
        // 2 is "no valid backups": the stanza exists and the first backup below fixes that.
        if (code is not (0 or 2))
        {
            throw new PgBackRestException(
                $"loomworks_pgbackrest_stanza: stanza '{_options.Stanza}' of {_options.ConfigPath} is not usable ({message}); " +
                $"create it with: pgbackrest --config={_options.ConfigPath} --stanza={_options.Stanza} stanza-create");
        }
        _operatorStanzaChecked = true;
        if ((await InfoAsync(cancellationToken)).Count == 0)
        {
            logger.LogInformation("Taking the first full backup of stanza {Stanza}", _options.Stanza);
            await BackupAsync("full", cancellationToken);
        }
    }

    /// <summary>The stanza's status as <c>pgbackrest info</c> reports it: 0 ok, 1 missing stanza path, 2 no valid backups, …</summary>
    public async Task<(int Code, string Message)> StanzaStatusAsync(CancellationToken cancellationToken)
    {
        var output = await RunCheckedAsync(["--output=json", "info"], TimeSpan.FromMinutes(2), cancellationToken);
        using var json = JsonDocument.Parse(output);
        foreach (var stanza in json.RootElement.EnumerateArray())
        {
            if (stanza.TryGetProperty("status", out var status))
            {
                return (status.GetProperty("code").GetInt32(), status.GetProperty("message").GetString() ?? "");
            }
        }
        return (1, "missing stanza path");
    }

    /// <summary>Runs a backup of <paramref name="type"/> (full, diff or incr) and returns the new set.</summary>
    public async Task<BackupSet> BackupAsync(string type, CancellationToken cancellationToken)
    {
        if (type is not ("full" or "diff" or "incr"))
        {
            throw new PgBackRestException($"'{type}' is not a backup type (full, diff or incr)");
        }
        RequireConfigured();
        await _backupGate.WaitAsync(cancellationToken);
        try
        {
            await RunCheckedAsync(["--type=" + type, "backup"], TimeSpan.FromHours(12), cancellationToken);
        }
        finally
        {
            _backupGate.Release();
        }
        var sets = await InfoAsync(cancellationToken);
        return sets.Count > 0 ? sets[^1] : throw new PgBackRestException("the backup finished but pgbackrest info lists no backup");
    }

    /// <summary>Removes backups (and their WAL) older than the retention in days.</summary>
    public Task ExpireAsync(CancellationToken cancellationToken)
    {
        RequireConfigured();
        return RunCheckedAsync(["expire"], TimeSpan.FromMinutes(30), cancellationToken);
    }

    /// <summary>The backup sets of the stanza, oldest first.</summary>
    public async Task<IReadOnlyList<BackupSet>> InfoAsync(CancellationToken cancellationToken)
    {
        var output = await RunCheckedAsync(["--output=json", "info"], TimeSpan.FromMinutes(2), cancellationToken);
        using var json = JsonDocument.Parse(output);
        var sets = new List<BackupSet>();
        foreach (var stanza in json.RootElement.EnumerateArray())
        {
            if (!stanza.TryGetProperty("backup", out var backups))
            {
                continue;
            }
            foreach (var b in backups.EnumerateArray())
            {
                var timestamp = b.GetProperty("timestamp");
                var lsn = b.GetProperty("lsn");
                var info = b.GetProperty("info");
                sets.Add(new BackupSet(
                    b.GetProperty("label").GetString()!,
                    b.GetProperty("type").GetString()!,
                    DateTimeOffset.FromUnixTimeSeconds(timestamp.GetProperty("start").GetInt64()),
                    DateTimeOffset.FromUnixTimeSeconds(timestamp.GetProperty("stop").GetInt64()),
                    NpgsqlLogSequenceNumber.Parse(lsn.GetProperty("start").GetString()!),
                    NpgsqlLogSequenceNumber.Parse(lsn.GetProperty("stop").GetString()!),
                    info.GetProperty("size").GetInt64(),
                    info.GetProperty("repository").GetProperty("delta").GetInt64()));
            }
        }
        return sets;
    }

    /// <summary>pgBackRest's own text report, for <c>loomworks backup info</c>.</summary>
    public Task<string> InfoTextAsync(CancellationToken cancellationToken) =>
        RunCheckedAsync(["info"], TimeSpan.FromMinutes(2), cancellationToken);

    /// <summary>
    /// Restores into <paramref name="pgData"/> with its own spool, lock and log paths and archiving off, so the
    /// copy never touches the live cluster's spool or pushes WAL into this stanza. <paramref name="lowPriority"/> starts it
    /// at low CPU and IO priority, off the first CPU (the restore then changes it as the other tenants' work asks).
    /// <paramref name="prefetchWal"/> makes the copy's archive-get fetch segments ahead in parallel into the scratch spool.
    /// </summary>
    public async Task<CommandResult> RestoreAsync(string pgData, string scratchDir, string backupLabel, string targetType,
        string target, string? includeDatabase, bool prefetchWal, bool lowPriority, CancellationToken cancellationToken)
    {
        RequireConfigured();
        // An operator's configuration may name the server's host (pg1-host): the scratch copy is restored here.
        var resetHost = _options.Mode == PgBackRestMode.OperatorConfig ? " --reset-pg1-host" : "";
        var arguments = new List<string>
        {
            "--pg1-path=" + pgData,
            "--spool-path=" + Path.Combine(scratchDir, "spool"),
            // pgBackRest copies --spool-path into the restore_command it writes, where archive-get refuses it: give
            // the copy its own, with the scratch lock and log paths.
            "--recovery-option=restore_command=" + PostgresServer.PgBackRestExecutable + " --config=" + _options.ConfigPath +
                " --stanza=" + _options.Stanza + resetHost + " --pg1-path=" + pgData + " --lock-path=" + Path.Combine(scratchDir, "lock") +
                " --log-path=" + Path.Combine(scratchDir, "log") +
                (prefetchWal
                    ? " --archive-async --spool-path=" + Path.Combine(scratchDir, "spool") + " --archive-get-queue-max=256MB"
                    : "") +
                " archive-get %f \"%p\"",
            "--lock-path=" + Path.Combine(scratchDir, "lock"),
            "--log-path=" + Path.Combine(scratchDir, "log"),
            "--archive-mode=off",
            "--set=" + backupLabel,
            "--type=" + targetType,
            "--target=" + target,
            "--target-action=pause",
        };
        if (resetHost.Length > 0)
        {
            arguments.Add("--reset-pg1-host");
        }
        if (includeDatabase is not null)
        {
            arguments.Add("--db-include=" + includeDatabase);
        }
        arguments.Add("restore");
        return await RunAsync(arguments, TimeSpan.FromHours(6), lowPriority, cancellationToken);
    }

    private string LogDir => Path.Combine(_options.HomeDir, "log");
    private string LockDir => Path.Combine(_options.HomeDir, "lock");
    private string SpoolDir => Path.Combine(_options.HomeDir, "spool");

    private static void RequireInstalled()
    {
        if (!IsInstalled)
        {
            throw new PgBackRestException(
                $"pgBackRest is not installed ({PostgresServer.PgBackRestExecutable} is missing); snapshots and " +
                "point-in-time restore need it: apt-get install pgbackrest");
        }
    }

    private void RequireConfigured()
    {
        RequireInstalled();
        if (Problem is not null)
        {
            throw new PgBackRestException($"pgBackRest is not set up for this server: {Problem}");
        }
        if (!IsConfigured)
        {
            throw new PgBackRestException(_options.Mode == PgBackRestMode.OperatorConfig
                ? $"pgBackRest stanza '{_options.Stanza}' of {_options.ConfigPath} was not checked; start the server once to check it"
                : $"pgBackRest is not set up for this server: no stanza '{_options.Stanza}' in {_options.RepositoryPath} " +
                  $"(or no {_options.ConfigPath}); start the server once to set it up");
        }
    }

    private async Task<string> RunCheckedAsync(IReadOnlyList<string> arguments, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var result = await RunAsync(arguments, timeout, lowPriority: false, cancellationToken);
        return result.Succeeded
            ? result.Output
            : throw new PgBackRestException($"pgbackrest {arguments[^1]} failed: {result.Diagnostic}");
    }

    private async Task<CommandResult> RunAsync(IReadOnlyList<string> arguments, TimeSpan timeout, bool lowPriority,
        CancellationToken cancellationToken)
    {
        RequireInstalled();
        var all = new List<string> { "--config=" + _options.ConfigPath, "--stanza=" + _options.Stanza };
        all.AddRange(arguments);
        var (program, programArguments) = lowPriority
            ? CommandRunner.LowPriority(PostgresServer.PgBackRestExecutable, all, "-c", "2", "-n", "7")
            : (PostgresServer.PgBackRestExecutable, all);
        return await CommandRunner.RunAsync(program, programArguments, CommandRunner.ServerUser, timeout, cancellationToken);
    }
}
