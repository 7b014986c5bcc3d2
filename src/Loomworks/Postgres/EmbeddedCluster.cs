using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Security.Cryptography;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;

namespace Loomworks.Postgres;

/// <summary>How an embedded cluster is laid out and tuned.</summary>
public sealed record EmbeddedClusterOptions
{
    /// <summary>Loomworks' data_dir: the cluster lives in its postgres/ folder, the socket in its run/ folder.</summary>
    public required string DataDir { get; init; }
    public int Port { get; init; } = 54320;
    public string? BinDir { get; init; }
    public int ArchiveTimeoutSeconds { get; init; } = 60;

    /// <summary>The archive_command; Snapshots points it at pgBackRest. Until then WAL is recycled, not archived.</summary>
    public string ArchiveCommand { get; init; } = "/bin/true";

    /// <summary>For throwaway test clusters only: no fsync, so the suite is not bound by the disk.</summary>
    public bool Durable { get; init; } = true;

    public int MaxConnections { get; init; } = 200;

    /// <summary>Whether this start may create the cluster; throwaway test clusters keep the default.</summary>
    public ClusterCreation Creation { get; init; } = ClusterCreation.FirstStart;

    /// <summary>Where the created cluster is recorded (outside data_dir); null keeps no record (throwaway clusters).</summary>
    public ClusterMarker? Marker { get; init; }
}

/// <summary>
/// A PostgreSQL cluster Loomworks runs itself under data_dir: initdb with checksums on the server's first start only
/// (<see cref="ClusterGuard"/>), started with the server, shared by every Loomworks process on the same data_dir,
/// stopped by the last one to leave.
/// The tests start their throwaway clusters with the same class.
/// </summary>
public sealed class EmbeddedCluster
{
    public const string Superuser = "postgres";
    private readonly EmbeddedClusterOptions _options;
    private readonly ILogger _logger;
    private PostgresBinaries? _binaries;
    private bool _registered;

    public EmbeddedCluster(EmbeddedClusterOptions options, ILogger? logger = null)
    {
        _options = options;
        _logger = logger ?? NullLogger.Instance;
    }

    public string DataDir => _options.DataDir;
    public string PgData => Path.Combine(DataDir, "postgres");
    public string SocketDir => Path.Combine(DataDir, "run");
    public string LogFile => Path.Combine(DataDir, "log", "postgresql.log");
    public int Port => _options.Port;
    public PostgresBinaries Binaries => _binaries ??= PostgresBinaries.Locate(_options.BinDir);

    private string ClientsDir => Path.Combine(DataDir, "clients");
    private string PidFile => Path.Combine(PgData, "postmaster.pid");
    private string PasswordFile => Path.Combine(DataDir, "postgres.password");

    /// <summary>Connects through the unix socket; local connections are trusted, and only the server's user can reach the socket.</summary>
    public PostgresEndpoint Endpoint => new(SocketDir, Port, Superuser, null);

    /// <summary>The password for TCP connections on the loopback port (pgBackRest, psql -h 127.0.0.1).</summary>
    public string? TcpPassword => File.Exists(PasswordFile) ? File.ReadAllText(PasswordFile).Trim() : null;

    /// <summary>Initialises the cluster if this start may, then starts it or joins the one already running.</summary>
    public async Task StartAsync(CancellationToken cancellationToken = default)
    {
        // Decided before anything is written: a refused start leaves data_dir as it found it.
        var plan = ClusterGuard.Decide(DataDir, PgData, _options.Marker, _options.Creation);
        // A cluster is only created, or re-created deliberately, where its marker can be written.
        var markerRequired = plan.Records && (plan.MayCreate || _options.Creation == ClusterCreation.Deliberate);
        if (plan.Records)
        {
            if (markerRequired)
            {
                _options.Marker!.EnsureWritable();
            }
            WarnIfMarkerInsideDataDir();
        }
        PrepareDirectories();
        using (await FileLock.AcquireAsync(Path.Combine(DataDir, "postgres.lock"), cancellationToken))
        {
            if (!File.Exists(Path.Combine(PgData, "PG_VERSION")))
            {
                if (!plan.MayCreate)
                {
                    throw new InvalidOperationException($"the PostgreSQL cluster in {PgData} disappeared while starting");
                }
                await InitDbAsync(cancellationToken);
            }
            if (plan.Records)
            {
                RecordCluster(markerRequired);
            }
            WriteSettings();
            if (await RunningPostmasterAsync(cancellationToken) is { } pid)
            {
                _logger.LogInformation("Joining the PostgreSQL cluster already running in {PgData} (pid {Pid})", PgData, pid);
            }
            else
            {
                await StartPostmasterAsync(cancellationToken);
            }
            Register();
        }
        await WaitUntilAcceptingAsync(cancellationToken);
    }

    /// <summary>Leaves the cluster; stops it when no other live Loomworks process on this data_dir uses it.</summary>
    public async Task StopAsync(CancellationToken cancellationToken = default)
    {
        if (!_registered)
        {
            return;
        }
        using (await FileLock.AcquireAsync(Path.Combine(DataDir, "postgres.lock"), cancellationToken))
        {
            File.Delete(Path.Combine(ClientsDir, Environment.ProcessId.ToString(CultureInfo.InvariantCulture)));
            _registered = false;
            var others = LiveClients().ToList();
            if (others.Count > 0)
            {
                _logger.LogInformation("Leaving PostgreSQL running for Loomworks processes {Pids}", string.Join(", ", others));
                return;
            }
            var result = await CommandRunner.RunAsync(Binaries["pg_ctl"],
                ["stop", "-D", PgData, "-m", "fast", "-w", "-t", "60"], CommandRunner.ServerUser, TimeSpan.FromSeconds(90),
                cancellationToken);
            if (!result.Succeeded && File.Exists(PidFile))
            {
                throw new InvalidOperationException($"PostgreSQL did not stop: {result.Diagnostic}");
            }
            _logger.LogInformation("PostgreSQL stopped");
        }
    }

    private void PrepareDirectories()
    {
        try
        {
            Directory.CreateDirectory(DataDir);
            foreach (var dir in new[] { SocketDir, Path.GetDirectoryName(LogFile)!, ClientsDir })
            {
                Directory.CreateDirectory(dir);
            }
            var probe = Path.Combine(DataDir, $".write-test-{Environment.ProcessId}");
            File.WriteAllText(probe, "");
            File.Delete(probe);
        }
        catch (Exception e) when (e is UnauthorizedAccessException or IOException)
        {
            throw new InvalidOperationException($"data_dir {DataDir} is not writable: {e.Message}", e);
        }
        if (CommandRunner.IsRoot)
        {
            EnsureReachableByServerUser(DataDir);
            CommandRunner.GiveToServerUser(SocketDir);
            CommandRunner.GiveToServerUser(Path.GetDirectoryName(LogFile)!);
        }
        File.SetUnixFileMode(SocketDir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
    }

    /// <summary>PostgreSQL runs as postgres: every parent of data_dir must let it through (not so for /root).</summary>
    private static void EnsureReachableByServerUser(string directory)
    {
        for (var dir = new DirectoryInfo(directory).Parent; dir is not null; dir = dir.Parent)
        {
            if ((dir.UnixFileMode & UnixFileMode.OtherExecute) == 0)
            {
                throw new InvalidOperationException(
                    $"data_dir {directory} is inside {dir.FullName}, which the '{CommandRunner.PostgresOsUser}' OS user " +
                    "cannot enter; PostgreSQL runs as that user when Loomworks runs as root. " +
                    "Choose a data_dir outside it, such as /var/lib/loomworks");
            }
        }
    }

    private async Task InitDbAsync(CancellationToken cancellationToken)
    {
        // initdb writes into a scratch folder that is renamed into place at the end, so a kill -9 during initdb
        // leaves a scratch folder (removed here on the next start), never a half-made cluster.
        var scratch = PgData + ".initdb";
        if (Directory.Exists(scratch))
        {
            Directory.Delete(scratch, recursive: true);
        }
        if (Directory.Exists(PgData) && Directory.EnumerateFileSystemEntries(PgData).Any())
        {
            throw new InvalidOperationException(
                $"{PgData} is not empty but holds no PostgreSQL cluster (no PG_VERSION); move it away or choose another data_dir");
        }
        Directory.CreateDirectory(scratch);
        CommandRunner.GiveToServerUser(scratch);

        var password = Convert.ToHexString(RandomNumberGenerator.GetBytes(24)).ToLowerInvariant();
        var passwordInput = Path.Combine(scratch, "..", $".pwfile-{Environment.ProcessId}");
        await File.WriteAllTextAsync(passwordInput, password, cancellationToken);
        CommandRunner.GiveToServerUser(passwordInput);
        try
        {
            _logger.LogInformation("Creating the PostgreSQL cluster in {PgData}", PgData);
            var result = await CommandRunner.RunAsync(Binaries["initdb"],
            [
                "-D", scratch, "--username", Superuser, "--data-checksums", "--encoding", "UTF8", "--locale", "C.UTF-8",
                "--auth-local", "trust", "--auth-host", "scram-sha-256", "--pwfile", passwordInput,
            ], CommandRunner.ServerUser, TimeSpan.FromMinutes(5), cancellationToken);
            if (!result.Succeeded)
            {
                throw new InvalidOperationException($"initdb failed: {result.Diagnostic}");
            }
        }
        finally
        {
            File.Delete(passwordInput);
        }
        var includeLine = "\ninclude_if_exists = 'loomworks.conf'\n";
        await File.AppendAllTextAsync(Path.Combine(scratch, "postgresql.conf"), includeLine, cancellationToken);
        ConfigurationFiles.WriteSecret(PasswordFile, password);
        if (Directory.Exists(PgData))
        {
            Directory.Delete(PgData);
        }
        Directory.Move(scratch, PgData);
    }

    /// <summary>
    /// Writes the marker. A cluster made before markers existed is still served when its marker cannot be written
    /// (a configuration folder the service user may not write), with a warning saying how to protect it.
    /// </summary>
    private void RecordCluster(bool required)
    {
        var identifier = ClusterMarker.SystemIdentifierOf(PgData)
            ?? throw new InvalidOperationException($"{PgData} has no global/pg_control to record");
        try
        {
            _options.Marker!.Write(new ClusterRecord(DataDir, identifier, DateTimeOffset.UtcNow));
        }
        catch (Exception e) when (!required && e is InvalidOperationException or IOException or UnauthorizedAccessException)
        {
            _logger.LogWarning("The PostgreSQL cluster in {DataDir} is not recorded, so an emptied data_dir would not be " +
                "noticed: {Reason}", DataDir, e.Message);
            return;
        }
        _logger.LogInformation("Recorded the PostgreSQL cluster in {DataDir} (system identifier {Identifier}) in {Marker}",
            DataDir, identifier, _options.Marker.Path);
    }

    private void WarnIfMarkerInsideDataDir()
    {
        var folder = Path.GetFullPath(Path.GetDirectoryName(_options.Marker!.Path)!) + Path.DirectorySeparatorChar;
        if (folder.StartsWith(Path.GetFullPath(DataDir) + Path.DirectorySeparatorChar, StringComparison.Ordinal))
        {
            _logger.LogWarning("The cluster marker {Marker} is inside data_dir, so an emptied data_dir takes it along; " +
                "set loomworks_state_dir to a folder outside {DataDir}", _options.Marker.Path, DataDir);
        }
    }

    /// <summary>Rewritten on every start, so a changed port or archive command takes effect.</summary>
    private void WriteSettings()
    {
        var settings = new Dictionary<string, string>
        {
            ["listen_addresses"] = "'127.0.0.1'",
            ["port"] = Port.ToString(CultureInfo.InvariantCulture),
            ["unix_socket_directories"] = DatabaseAdmin.QuoteLiteral(SocketDir),
            ["max_connections"] = _options.MaxConnections.ToString(CultureInfo.InvariantCulture),
            ["wal_level"] = "replica",
            ["archive_mode"] = "on",
            ["archive_command"] = DatabaseAdmin.QuoteLiteral(_options.ArchiveCommand),
            ["archive_timeout"] = _options.ArchiveTimeoutSeconds.ToString(CultureInfo.InvariantCulture),
            ["max_wal_senders"] = "3",
            ["log_line_prefix"] = "'%m [%p] %q%u@%d '",
        };
        if (!_options.Durable)
        {
            settings["fsync"] = "off";
            settings["synchronous_commit"] = "off";
        }
        var text = "# Written by Loomworks at every start; edit loomworks.conf of Loomworks, not this file.\n"
            + string.Concat(settings.Select(s => $"{s.Key} = {s.Value}\n"));
        var path = Path.Combine(PgData, "loomworks.conf");
        File.WriteAllText(path, text);
        CommandRunner.GiveToServerUser(path);
    }

    /// <summary>
    /// The pid of a postmaster that owns this data directory, or null. A postmaster.pid whose process is gone, or
    /// whose pid now belongs to another program (a reboot or kill -9 later), is stale and removed.
    /// </summary>
    private async Task<int?> RunningPostmasterAsync(CancellationToken cancellationToken)
    {
        if (!File.Exists(PidFile))
        {
            return null;
        }
        var lines = await File.ReadAllLinesAsync(PidFile, cancellationToken);
        if (lines.Length > 0 && int.TryParse(lines[0], out var pid) && IsPostgresProcess(pid))
        {
            return pid;
        }
        _logger.LogWarning("Removing stale {PidFile} (its process is gone)", PidFile);
        File.Delete(PidFile);
        return null;
    }

    private static bool IsPostgresProcess(int pid)
    {
        try
        {
            var command = File.ReadAllText($"/proc/{pid}/cmdline");
            return command.Contains("postgres", StringComparison.Ordinal);
        }
        catch (IOException)
        {
            return false;
        }
        catch (UnauthorizedAccessException)
        {
            return false;
        }
    }

    private async Task StartPostmasterAsync(CancellationToken cancellationToken)
    {
        if (!PortIsFree(Port))
        {
            throw new InvalidOperationException(
                $"port {Port} on 127.0.0.1 is already in use, so the embedded PostgreSQL cannot listen on it; " +
                "set db_port to a free port or stop the program using it");
        }
        _logger.LogInformation("Starting PostgreSQL on port {Port} (socket in {SocketDir})", Port, SocketDir);
        var result = await CommandRunner.RunAsync(Binaries["pg_ctl"],
            ["start", "-D", PgData, "-l", LogFile, "-w", "-t", "120", "-s"], CommandRunner.ServerUser,
            TimeSpan.FromMinutes(3), cancellationToken);
        if (!result.Succeeded)
        {
            throw new InvalidOperationException(
                $"PostgreSQL did not start: {result.Diagnostic}{Environment.NewLine}" +
                $"Last lines of {LogFile}:{Environment.NewLine}{Tail(LogFile, 10)}");
        }
    }

    private static bool PortIsFree(int port)
    {
        try
        {
            using var listener = new TcpListener(System.Net.IPAddress.Loopback, port);
            listener.Start();
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    private async Task WaitUntilAcceptingAsync(CancellationToken cancellationToken)
    {
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                await using var connection = new NpgsqlConnection(Endpoint.ConnectionString("postgres") + ";Pooling=false;Timeout=5");
                await connection.OpenAsync(cancellationToken);
                return;
            }
            catch (Exception e) when (e is NpgsqlException or SocketException && deadline.Elapsed < TimeSpan.FromSeconds(60))
            {
                await Task.Delay(100, cancellationToken);
            }
        }
    }

    private void Register()
    {
        File.WriteAllText(Path.Combine(ClientsDir, Environment.ProcessId.ToString(CultureInfo.InvariantCulture)), "");
        _registered = true;
    }

    /// <summary>Other Loomworks processes using the cluster; files of processes that died (kill -9) are removed.</summary>
    private IEnumerable<int> LiveClients()
    {
        foreach (var file in Directory.GetFiles(ClientsDir))
        {
            if (!int.TryParse(Path.GetFileName(file), out var pid))
            {
                continue;
            }
            if (Directory.Exists($"/proc/{pid}"))
            {
                yield return pid;
            }
            else
            {
                File.Delete(file);
            }
        }
    }

    private static string Tail(string file, int lines) =>
        File.Exists(file) ? string.Join(Environment.NewLine, File.ReadLines(file).TakeLast(lines)) : "(no log)";
}
