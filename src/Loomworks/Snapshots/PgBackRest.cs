using System.Globalization;
using System.Text;
using System.Text.Json;
using Loomworks.Postgres;
using Microsoft.Extensions.Logging;
using NpgsqlTypes;

namespace Loomworks.Snapshots;

/// <summary>Where pgBackRest's files live for one PostgreSQL server and how long backups are kept.</summary>
public sealed record PgBackRestOptions(
    string DataDir,
    string RepositoryPath,
    string PgData,
    string SocketDir,
    int Port,
    int RetentionDays)
{
    public static string Stanza => PostgresServer.PgBackRestStanza;
    public string ConfigPath => PostgresServer.PgBackRestConfigPath(DataDir);
    public string HomeDir => Path.GetDirectoryName(ConfigPath)!;
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

    public PgBackRestOptions Options => options;

    public void Dispose() => _backupGate.Dispose();

    public static bool IsInstalled => File.Exists(PostgresServer.PgBackRestExecutable);

    public bool IsConfigured => File.Exists(options.ConfigPath)
        && File.Exists(Path.Combine(options.RepositoryPath, "backup", PgBackRestOptions.Stanza, "backup.info"));

    /// <summary>Writes the configuration (every start, so a changed repository or retention takes effect).</summary>
    public void WriteConfiguration()
    {
        RequireInstalled();
        foreach (var dir in new[] { options.HomeDir, options.RepositoryPath, LogDir, LockDir, SpoolDir })
        {
            Directory.CreateDirectory(dir);
            CommandRunner.GiveToServerUser(dir);
        }
        var text = new StringBuilder()
            .AppendLine("# Written by Loomworks at every start; set loomworks_backup_repo and loomworks_snapshot_retention_days instead.")
            .AppendLine("[global]")
            .AppendLine(CultureInfo.InvariantCulture, $"repo1-path={options.RepositoryPath}")
            .AppendLine("repo1-retention-full-type=time")
            .AppendLine(CultureInfo.InvariantCulture, $"repo1-retention-full={options.RetentionDays}")
            .AppendLine(CultureInfo.InvariantCulture, $"log-path={LogDir}")
            .AppendLine(CultureInfo.InvariantCulture, $"lock-path={LockDir}")
            .AppendLine(CultureInfo.InvariantCulture, $"spool-path={SpoolDir}")
            .AppendLine("log-level-console=warn")
            .AppendLine("log-level-file=info")
            .AppendLine("start-fast=y")
            .AppendLine("compress-type=lz4")
            .AppendLine("process-max=2")
            .AppendLine()
            .AppendLine(CultureInfo.InvariantCulture, $"[{PgBackRestOptions.Stanza}]")
            .AppendLine(CultureInfo.InvariantCulture, $"pg1-path={options.PgData}")
            .AppendLine(CultureInfo.InvariantCulture, $"pg1-port={options.Port}")
            .AppendLine(CultureInfo.InvariantCulture, $"pg1-socket-path={options.SocketDir}")
            .AppendLine(CultureInfo.InvariantCulture, $"pg1-user={EmbeddedCluster.Superuser}")
            .ToString();
        var temporary = options.ConfigPath + ".tmp";
        File.WriteAllText(temporary, text);
        CommandRunner.GiveToServerUser(temporary);
        File.Move(temporary, options.ConfigPath, overwrite: true);
    }

    /// <summary>First start: configuration, stanza-create and a first full backup; later starts only rewrite the file.</summary>
    public async Task EnsureSetUpAsync(CancellationToken cancellationToken)
    {
        WriteConfiguration();
        if (!IsConfigured)
        {
            logger.LogInformation("Creating the pgBackRest stanza {Stanza} in {Repository}", PgBackRestOptions.Stanza, options.RepositoryPath);
            await RunCheckedAsync(["stanza-create"], TimeSpan.FromMinutes(5), cancellationToken);
        }
        if ((await InfoAsync(cancellationToken)).Count == 0)
        {
            logger.LogInformation("Taking the first full backup");
            await BackupAsync("full", cancellationToken);
        }
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
    /// copy never touches the live cluster's spool or pushes WAL into this stanza. Runs at low CPU and IO priority.
    /// <paramref name="prefetchWal"/> makes the copy's archive-get fetch segments ahead in parallel into the scratch spool.
    /// </summary>
    public async Task<CommandResult> RestoreAsync(string pgData, string scratchDir, string backupLabel, string targetType,
        string target, string? includeDatabase, bool prefetchWal, CancellationToken cancellationToken)
    {
        RequireConfigured();
        var arguments = new List<string>
        {
            "--pg1-path=" + pgData,
            "--spool-path=" + Path.Combine(scratchDir, "spool"),
            // pgBackRest copies --spool-path into the restore_command it writes, where archive-get refuses it: give
            // the copy its own, with the scratch lock and log paths.
            "--recovery-option=restore_command=" + PostgresServer.PgBackRestExecutable + " --config=" + options.ConfigPath +
                " --stanza=" + PgBackRestOptions.Stanza + " --pg1-path=" + pgData + " --lock-path=" + Path.Combine(scratchDir, "lock") +
                " --log-path=" + Path.Combine(scratchDir, "log") +
                (prefetchWal ? " --archive-async --spool-path=" + Path.Combine(scratchDir, "spool") + " --archive-get-queue-max=256MB" : "") +
                " archive-get %f \"%p\"",
            "--lock-path=" + Path.Combine(scratchDir, "lock"),
            "--log-path=" + Path.Combine(scratchDir, "log"),
            "--archive-mode=off",
            "--set=" + backupLabel,
            "--type=" + targetType,
            "--target=" + target,
            "--target-action=pause",
        };
        if (includeDatabase is not null)
        {
            arguments.Add("--db-include=" + includeDatabase);
        }
        arguments.Add("restore");
        return await RunAsync(arguments, TimeSpan.FromHours(6), lowPriority: true, cancellationToken);
    }

    private string LogDir => Path.Combine(options.HomeDir, "log");
    private string LockDir => Path.Combine(options.HomeDir, "lock");
    private string SpoolDir => Path.Combine(options.HomeDir, "spool");

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
        if (!IsConfigured)
        {
            throw new PgBackRestException(
                $"pgBackRest is not set up for this server: no stanza '{PgBackRestOptions.Stanza}' in {options.RepositoryPath} " +
                $"(or no {options.ConfigPath}); start the server once to set it up");
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
        var all = new List<string> { "--config=" + options.ConfigPath, "--stanza=" + PgBackRestOptions.Stanza };
        all.AddRange(arguments);
        var (program, programArguments) = lowPriority
            ? LowPriority(PostgresServer.PgBackRestExecutable, all)
            : (PostgresServer.PgBackRestExecutable, all);
        return await CommandRunner.RunAsync(program, programArguments, CommandRunner.ServerUser, timeout, cancellationToken);
    }

    /// <summary>Wraps a command in nice and ionice so a scratch restore leaves the CPU and disk to live tenants.</summary>
    public static (string Program, List<string> Arguments) LowPriority(string program, IEnumerable<string> arguments) =>
        ("/usr/bin/nice", ["-n", "19", "/usr/bin/ionice", "-c", "2", "-n", "7", program, .. arguments]);
}
