using System.Diagnostics;
using System.Globalization;
using Loomworks.Postgres;
using Microsoft.Extensions.Logging;

namespace Loomworks.Snapshots;

/// <summary>
/// Priority by need, for every step of one restore job. While no other tenant works (the test <see cref="LoadPace"/>
/// uses), everything working for the restore — pgBackRest, the scratch copy replaying and serving pg_dump, pg_dump,
/// pg_restore and psql, the live backends serving the load — runs at normal priority on every CPU: it competes with
/// nobody, and held back it only makes the restore slower. From the moment a tenant works until it has been quiet for
/// <see cref="LoadPace.QuietAfter"/>, all of them fall back to what protects the tenants: nice 19 and a lowered
/// scheduling group, the idle IO class, off the first CPU (<see cref="LowPriorityCpus"/>), and the load paced. Running
/// processes are changed where they run, so a switch takes effect within a poll, in the middle of a step.
/// </summary>
internal sealed class RestorePriority : IAsyncDisposable
{
    private static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(200);
    private static readonly string[] IdleIo = ["-c", "3"];
    private static readonly string[] NormalIo = ["-c", "2", "-n", "4"];

    private readonly PooledDatabase _admin;
    private readonly string _scratch;
    private readonly string _application;
    private readonly string[] _excluded;
    private readonly ILogger _logger;
    private readonly long _job;
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly CancellationTokenSource _stop = new();
    // The mode each process was last given (true: low); a process is changed again only when the mode changes.
    private readonly Dictionary<int, bool> _applied = [];
    private readonly object _lock = new();
    private Task _loop = Task.CompletedTask;
    private bool _low;
    private volatile bool _scratchDone;
    private TimeSpan _lowSince;
    private TimeSpan _lowBefore;

    private RestorePriority(PooledDatabase admin, LoadPace pace, string scratch, string application, string[] excluded,
        ILogger logger, long job)
    {
        _admin = admin;
        Pace = pace;
        _scratch = scratch;
        _application = application;
        _excluded = excluded;
        _logger = logger;
        _job = job;
    }

    /// <summary>The load's pace, told of the other tenants' work for the whole job.</summary>
    public LoadPace Pace { get; }

    /// <summary>Whether the restore runs at low priority now (another tenant works or worked within the quiet time).</summary>
    public bool Low
    {
        get
        {
            lock (_lock)
            {
                return _low;
            }
        }
    }

    /// <summary>How long the restore has spent at low priority so far.</summary>
    public TimeSpan LowFor
    {
        get
        {
            lock (_lock)
            {
                return _lowBefore + (_low ? _clock.Elapsed - _lowSince : TimeSpan.Zero);
            }
        }
    }

    /// <summary>
    /// The scratch copy is no longer needed: its processes are left as they are from now on, so its removal, which runs
    /// at low priority beside the rest of the job, stays there.
    /// </summary>
    public void ScratchDone() => _scratchDone = true;

    /// <summary>How often the priority changed during the job.</summary>
    public int Switches { get; private set; }

    /// <summary>
    /// Starts watching for job <paramref name="job"/>: the first look at the other tenants is taken before this returns,
    /// so the first step already starts at the right priority.
    /// </summary>
    public static async Task<RestorePriority> StartAsync(PooledDatabase admin, LoadPace pace, string scratch, string application,
        string[] excluded, ILogger logger, long job, CancellationToken cancellationToken)
    {
        var priority = new RestorePriority(admin, pace, scratch, application, excluded, logger, job);
        try
        {
            await priority.ObserveAsync(cancellationToken);
        }
        catch (Exception e) when (e is Npgsql.NpgsqlException or TimeoutException)
        {
            // Not knowing is treated as quiet; the loop keeps looking.
            logger.LogDebug(e, "Restore job {Job}: the first look at the other tenants failed", job);
        }
        priority.Decide(initial: true);
        priority._loop = Task.Run(() => priority.RunAsync(priority._stop.Token), CancellationToken.None);
        return priority;
    }

    /// <summary>
    /// Wraps a command the restore starts so that it starts at the current priority, in a session of its own (see
    /// <see cref="CommandRunner.LowPriority"/>): its scheduling group can then be lowered later without lowering ours.
    /// </summary>
    public (string Program, List<string> Arguments) Wrap(string program, IEnumerable<string> arguments, params string[] ioClass) =>
        Low
            ? CommandRunner.LowPriority(program, arguments, ioClass.Length > 0 ? ioClass : ["-c", "3"])
            : ("/usr/bin/setsid", ["-w", program, .. arguments]);

    private async Task RunAsync(CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await ObserveAsync(cancellationToken);
                Decide(initial: false);
                await ApplyAsync(cancellationToken);
                await Task.Delay(Poll, cancellationToken);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is Npgsql.NpgsqlException or TimeoutException or IOException)
            {
                // A missed look changes nothing; the next one decides.
                _logger.LogDebug(e, "Restore job {Job}: a look at the other tenants failed", _job);
                await Task.Delay(Poll, cancellationToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            }
        }
    }

    /// <summary>
    /// Tells the pace when a client session of a database other than the excluded ones (the restore's own, the management
    /// database, the admin connections') last started or ended a statement: pg_stat_activity has it at once, where the
    /// databases' transaction counters lag up to a second.
    /// </summary>
    private async Task ObserveAsync(CancellationToken cancellationToken)
    {
        await using var command = _admin.CreateCommand("""
            SELECT extract(epoch FROM clock_timestamp()
                - max(CASE WHEN state = 'active' THEN clock_timestamp() ELSE state_change END))::float8
            FROM pg_stat_activity
            WHERE backend_type = 'client backend' AND datname <> ALL($1) AND pid <> pg_backend_pid()
            """);
        command.Parameters.AddWithValue(_excluded);
        var seconds = await command.ExecuteScalarAsync(cancellationToken);
        Pace.Observe(seconds is double since ? TimeSpan.FromSeconds(Math.Max(0, since)) : null);
    }

    private void Decide(bool initial)
    {
        var low = Pace.Paced;
        lock (_lock)
        {
            if (!initial && low == _low)
            {
                return;
            }
            var now = _clock.Elapsed;
            if (_low && !low)
            {
                _lowBefore += now - _lowSince;
            }
            else if (low && !_low)
            {
                _lowSince = now;
            }
            _low = low;
        }
        if (!initial)
        {
            Switches++;
        }
        _logger.LogInformation("Restore job {Job} at {Seconds:F1} s: {Decision}", _job, _clock.Elapsed.TotalSeconds, low
            ? "another tenant works; the restore runs at low priority, off the first CPU, its load paced"
            : "no other tenant works; the restore runs at normal priority on every CPU");
    }

    /// <summary>Gives every process working for the restore the current mode, if it does not have it yet.</summary>
    private async Task ApplyAsync(CancellationToken cancellationToken)
    {
        var low = Low;
        var pids = _scratchDone ? [] : new HashSet<int>(ScratchProcesses.Working(_scratch));
        // The live backends serving the load, with the parallel workers of their index builds.
        await using (var command = _admin.CreateCommand("""
            SELECT pid FROM pg_stat_activity WHERE application_name = $1
                OR leader_pid IN (SELECT pid FROM pg_stat_activity WHERE application_name = $1)
            """))
        {
            command.Parameters.AddWithValue(_application);
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                pids.Add(reader.GetInt32(0));
            }
        }
        foreach (var gone in _applied.Keys.Where(pid => !pids.Contains(pid)).ToList())
        {
            _applied.Remove(gone);
        }
        foreach (var pid in pids)
        {
            if (_applied.TryGetValue(pid, out var was) && was == low)
            {
                continue;
            }
            if (low ? ScratchProcesses.Lower(pid) : ScratchProcesses.Raise(pid))
            {
                _applied[pid] = low;
                // Only a process of the restore's own: ionice changes nothing of a process that is gone.
                _ = await CommandRunner.RunAsync("/usr/bin/ionice",
                    [.. low ? IdleIo : NormalIo, "-p", pid.ToString(CultureInfo.InvariantCulture)],
                    null, TimeSpan.FromSeconds(10), CancellationToken.None);
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        try
        {
            await _loop;
        }
        catch (OperationCanceledException)
        {
            // stopped
        }
        _stop.Dispose();
    }
}
