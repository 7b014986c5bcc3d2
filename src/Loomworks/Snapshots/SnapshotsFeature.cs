using Loomworks.Configuration;
using Loomworks.Postgres;
using Loomworks.Tenancy;
using Npgsql;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Loomworks.Snapshots;

/// <summary>The snapshot feature's parts, built once from the configuration for the server and the CLI alike.</summary>
public sealed class SnapshotsFeature(
    PgBackRest backRest,
    SnapshotService snapshots,
    TenantRestore restore,
    SnapshotOptions options,
    TenantDataSources dataSources)
{
    private readonly PooledDatabase _admin = dataSources.For("postgres");

    public PgBackRest BackRest => backRest;
    public SnapshotService Snapshots => snapshots;
    public TenantRestore Restore => restore;
    public SnapshotOptions Options => options;

    /// <summary>The feature without a service container, for the tests and the bench; the hosts resolve it instead.</summary>
    public static SnapshotsFeature Create(LoomworksSettings settings, PostgresServer server, TenantDataSources dataSources,
        ManagementDatabase management, TenantStore tenants, ILoggerFactory loggers, TenantLifecycle? lifecycle = null)
    {
        var options = SnapshotOptions.From(settings, server);
        var backRest = new PgBackRest(options, loggers.CreateLogger<PgBackRest>());
        var snapshots = new SnapshotService(management, tenants, backRest, options);
        lifecycle ??= new TenantLifecycle(management, dataSources, TenancyOptions.From(settings));
        var restore = new TenantRestore(snapshots, management, tenants, lifecycle, dataSources, options,
            loggers.CreateLogger<TenantRestore>());
        return new SnapshotsFeature(backRest, snapshots, restore, options, dataSources);
    }

    /// <summary>
    /// At start: pgBackRest's configuration, stanza and first full backup (the embedded cluster, or an external server
    /// with loomworks_pg_data_dir), or a check of the operator's own stanza (loomworks_pgbackrest_config); then recovery
    /// of restores a dead process left. Failures are logged and kept in <see cref="PgBackRest.Problem"/>: the tenants
    /// are served without snapshots meanwhile.
    /// </summary>
    public async Task StartAsync(bool embedded, ILogger logger, CancellationToken cancellationToken)
    {
        try
        {
            if (embedded && PgBackRest.IsInstalled)
            {
                await BackRest.EnsureSetUpAsync(cancellationToken);
            }
            else if (!embedded && PgBackRest.IsInstalled)
            {
                await SetUpExternalAsync(logger, cancellationToken);
            }
            if (BackRest.IsConfigured)
            {
                await Snapshots.SyncBackupSetsAsync(cancellationToken);
                // Snapshots a dead process left pending: switched and completed now (a short wait, and only when there
                // are some); one whose segment cannot be archived turns failed after SnapshotService.PendingLimit.
                await Snapshots.CompletePendingAsync(TimeSpan.FromSeconds(5), cancellationToken);
            }
            else
            {
                logger.LogWarning("pgBackRest is {State}: snapshots and point-in-time restore are off",
                    !PgBackRest.IsInstalled ? "not installed (apt-get install pgbackrest)"
                        : BackRest.Problem is { } problem ? "not set up: " + problem
                        : "not configured for this server");
            }
        }
        catch (PgBackRestException e)
        {
            logger.LogError("pgBackRest setup failed: {Message}", e.Message);
        }
        await Restore.RecoverAsync(cancellationToken);
    }

    /// <summary>
    /// The external server's set-up; a failure is kept as <see cref="PgBackRest.Problem"/> (snapshots off, the reason
    /// in the log and in the errors of snapshot calls). A malformed key was already recorded by <see cref="Create"/>.
    /// </summary>
    private async Task SetUpExternalAsync(ILogger logger, CancellationToken cancellationToken)
    {
        var mode = BackRest.Options.Mode;
        if (mode == PgBackRestMode.None || (BackRest.Problem is not null && !SetUpFailedEarlier))
        {
            return;
        }
        // A retry starts afresh: the earlier failure must not block the stanza-create and first backup of this attempt.
        BackRest.SetProblem(null);
        try
        {
            var archiveTimeout = options.ArchiveTimeoutSeconds;
            PostgresBinaries? binaries = null;
            try
            {
                binaries = options.Binaries.Value;
            }
            catch (InvalidOperationException e)
            {
                logger.LogWarning("PostgreSQL's programs for the scratch copies of restores were not found: {Message}", e.Message);
            }
            if (mode == PgBackRestMode.LocalServer)
            {
                await ExternalServer.SetUpLocalAsync(BackRest, _admin, binaries, archiveTimeout, logger, cancellationToken);
            }
            else
            {
                await ExternalServer.SetUpOperatorAsync(BackRest, _admin, binaries, archiveTimeout, cancellationToken);
            }
            BackRest.SetProblem(null);
            SetUpFailedEarlier = false;
        }
        catch (Exception e) when (e is PgBackRestException or NpgsqlException or InvalidOperationException or IOException
            or UnauthorizedAccessException or TimeoutException)
        {
            BackRest.SetProblem(e.Message);
            SetUpFailedEarlier = true;
            _nextSetUpAttempt = DateTimeOffset.UtcNow + SetUpRetryInterval;
            throw new PgBackRestException(e.Message);
        }
    }

    /// <summary>How often a failed set-up of an external server is tried again: the operator may have fixed the server.</summary>
    public static readonly TimeSpan SetUpRetryInterval = TimeSpan.FromMinutes(10);

    private DateTimeOffset _nextSetUpAttempt;

    /// <summary>
    /// Tries a failed set-up of the external server again once <see cref="SetUpRetryInterval"/> has passed, so turning
    /// archive_mode on (and restarting PostgreSQL) switches snapshots on without restarting Loomworks.
    /// </summary>
    public async Task RetrySetUpAsync(DateTimeOffset now, ILogger logger, CancellationToken cancellationToken)
    {
        if (!SetUpFailedEarlier || now < _nextSetUpAttempt || !PgBackRest.IsInstalled)
        {
            return;
        }
        try
        {
            await SetUpExternalAsync(logger, cancellationToken);
            logger.LogInformation("pgBackRest is now set up for the PostgreSQL server at db_host: snapshots are on");
        }
        catch (PgBackRestException e)
        {
            _nextSetUpAttempt = now + SetUpRetryInterval;
            logger.LogWarning("pgBackRest is still not set up for the server at db_host: {Message}", e.Message);
        }
    }

    /// <summary>
    /// Whether <see cref="PgBackRest.Problem"/> came from a set-up (which a later start retries), not from a malformed key.
    /// </summary>
    private bool SetUpFailedEarlier { get; set; }
}

/// <summary>Runs restores started through the API in the background and lets them finish or roll back on shutdown.</summary>
public sealed class RestoreJobRunner(SnapshotsFeature feature, ILogger<RestoreJobRunner> logger) : IHostedService, IDisposable
{
    private readonly CancellationTokenSource _stopping = new();
    private readonly List<Task> _running = [];

    /// <summary>Validates and records the job, then runs it in the background; refusals throw before anything starts.</summary>
    public async Task<RestoreJob> StartAsync(RestoreRequest request, CancellationToken cancellationToken)
    {
        var job = await feature.Restore.StartAsync(request, cancellationToken);
        var task = Task.Run(async () =>
        {
            try
            {
                await feature.Restore.RunAsync(job.Id, null, _stopping.Token);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                logger.LogError(e, "Restore job {Job} stopped", job.Id);
            }
        }, CancellationToken.None);
        lock (_running)
        {
            _running.RemoveAll(t => t.IsCompleted);
            _running.Add(task);
        }
        return job;
    }

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public void Dispose() => _stopping.Dispose();

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await _stopping.CancelAsync();
        Task[] running;
        lock (_running)
        {
            running = [.. _running];
        }
        await Task.WhenAll(running).WaitAsync(cancellationToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
    }
}
