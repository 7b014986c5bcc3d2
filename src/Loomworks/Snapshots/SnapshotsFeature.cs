using Loomworks.Configuration;
using Loomworks.Postgres;
using Loomworks.Tenancy;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Loomworks.Snapshots;

/// <summary>The snapshot feature's parts, built once from the configuration for the server and the CLI alike.</summary>
public sealed class SnapshotsFeature
{
    private SnapshotsFeature(PgBackRest backRest, SnapshotService snapshots, TenantRestore restore, LoomworksSettings settings)
    {
        BackRest = backRest;
        Snapshots = snapshots;
        Restore = restore;
        Settings = settings;
    }

    public PgBackRest BackRest { get; }
    public SnapshotService Snapshots { get; }
    public TenantRestore Restore { get; }
    public LoomworksSettings Settings { get; }

    public static SnapshotsFeature Create(LoomworksSettings settings, PostgresServer server, TenantDataSources dataSources,
        ManagementDatabase management, TenantStore tenants, ILoggerFactory loggers)
    {
        var cluster = server.Embedded;
        var options = new PgBackRestOptions(settings.DataDir, settings.BackupRepository, cluster?.PgData ?? "",
            cluster?.SocketDir ?? server.Endpoint.Host, server.Endpoint.Port, settings.GetInt(ConfigKeys.SnapshotRetentionDays));
        var backRest = new PgBackRest(options, loggers.CreateLogger<PgBackRest>());
        var snapshots = new SnapshotService(management, tenants, backRest, options.RetentionDays);
        var binaries = new Lazy<PostgresBinaries>(() => cluster?.Binaries ?? PostgresBinaries.Locate(settings.Get(ConfigKeys.PgBinDir)));
        var restore = new TenantRestore(snapshots, new RestoreJobStore(management.DataSource), tenants, dataSources.For("postgres"),
            server.Endpoint, binaries, settings.DataDir,
            settings.Get(ConfigKeys.RestoreScratchDir) is { Length: > 0 } scratch ? Path.GetFullPath(scratch) : Path.Combine(settings.DataDir, "restore"),
            settings.GetInt(ConfigKeys.KeepPreRestoreHours),
            loggers.CreateLogger<TenantRestore>(), dataSources.EvictAsync);
        return new SnapshotsFeature(backRest, snapshots, restore, settings);
    }

    /// <summary>
    /// At start: pgBackRest's configuration, stanza and first full backup (embedded cluster only), then recovery of
    /// restores a dead process left. Failures are logged: the tenants are served without snapshots meanwhile.
    /// </summary>
    public async Task StartAsync(bool embedded, ILogger logger, CancellationToken cancellationToken)
    {
        try
        {
            if (embedded && PgBackRest.IsInstalled)
            {
                await BackRest.EnsureSetUpAsync(cancellationToken);
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
                    PgBackRest.IsInstalled ? "not configured for this server" : "not installed (apt-get install pgbackrest)");
            }
        }
        catch (PgBackRestException e)
        {
            logger.LogError("pgBackRest setup failed: {Message}", e.Message);
        }
        await Restore.RecoverAsync(cancellationToken);
    }
}

/// <summary>Registers the snapshot feature, its scheduler and the runner of restores started through the API.</summary>
public static class SnapshotsServiceCollectionExtensions
{
    public static IServiceCollection AddSnapshots(this IServiceCollection services, LoomworksSettings settings)
    {
        services.AddSingleton(sp =>
        {
            var feature = SnapshotsFeature.Create(settings, sp.GetRequiredService<PostgresServer>(),
                sp.GetRequiredService<TenantDataSources>(), sp.GetRequiredService<ManagementDatabase>(),
                sp.GetRequiredService<TenantStore>(), sp.GetRequiredService<ILoggerFactory>());
            feature.Restore.Schema = sp.GetService<ITenantDatabaseSetup>();
            return feature;
        });
        services.AddSingleton<RestoreJobRunner>();
        services.AddHostedService(sp => sp.GetRequiredService<RestoreJobRunner>());
        services.AddHostedService<SnapshotScheduler>();
        return services;
    }
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
