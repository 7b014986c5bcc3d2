using System.Globalization;
using Loomworks.Snapshots;
using Loomworks.Tenancy;
using Microsoft.AspNetCore.DataProtection;

namespace Loomworks.Server.Web.Console;

/// <summary>A base backup as loomworks_mgmt mirrors pgBackRest's list.</summary>
public sealed record BackupView(string Label, string Type, DateTimeOffset StartedAt, DateTimeOffset StoppedAt, long SizeBytes);

/// <summary>The snapshots page: snapshots, backups, the window a time can be restored from, and the tenant's restores.</summary>
public sealed record SnapshotTimeline(
    bool Available,
    string? Unavailable,
    IReadOnlyList<Snapshot> Snapshots,
    IReadOnlyList<BackupView> Backups,
    DateTimeOffset? WindowStart,
    IReadOnlyList<RestoreJob> Restores);

/// <summary>Where a restore goes: over the tenant itself (its name typed to confirm) or into a new tenant.</summary>
public sealed record RestoreTarget(bool InPlace, string? Confirmation, string? NewSubdomain);

/// <summary>
/// Snapshots and point-in-time restores from the console, through <see cref="SnapshotService"/>,
/// <see cref="RestoreJobRunner"/> and <see cref="TenantRestore"/> as the admin API uses them. A restore's progress is
/// read by the page's script with a token that names the job and its tenant, because an in-place restore takes the
/// tenant (and so its sessions) offline until it ends.
/// </summary>
public sealed class ConsoleSnapshots(
    SnapshotsFeature feature,
    RestoreJobRunner runner,
    ManagementDatabase management,
    IDataProtectionProvider protection)
{
    /// <summary>How long a progress link stays valid.</summary>
    public static readonly TimeSpan ProgressLinkLifetime = TimeSpan.FromDays(1);

    private const int RestoresShown = 10;

    private readonly ITimeLimitedDataProtector _progress =
        protection.CreateProtector("Loomworks.Console.RestoreProgress").ToTimeLimitedDataProtector();

    public async Task<SnapshotTimeline> TimelineAsync(ConsoleAccess access, CancellationToken ct)
    {
        access.RequireAdmin("see the tenant's snapshots");
        var restores = await RestoresAsync(access.Tenant, ct);
        if (!feature.BackRest.IsConfigured)
        {
            return new SnapshotTimeline(false, PgBackRest.IsInstalled
                ? "pgBackRest is not set up for this server, so there are no snapshots; the server sets it up when it starts."
                : "pgBackRest is not installed on this server, so there are no snapshots (apt-get install pgbackrest).",
                [], [], null, restores);
        }
        var snapshots = await feature.Snapshots.ListAsync(access.Tenant.Subdomain, ct);
        var backups = new List<BackupView>();
        await using (var command = management.DataSource.CreateCommand(
            "SELECT label, backup_type, started_at, stopped_at, size_bytes FROM loomworks_backup_set ORDER BY stopped_at"))
        await using (var r = await command.ExecuteReaderAsync(ct))
        {
            while (await r.ReadAsync(ct))
            {
                backups.Add(new BackupView(r.GetString(0), r.GetString(1), r.GetFieldValue<DateTimeOffset>(2),
                    r.GetFieldValue<DateTimeOffset>(3), r.GetInt64(4)));
            }
        }
        return new SnapshotTimeline(true, null, snapshots, backups, backups.Count == 0 ? null : backups[0].StoppedAt, restores);
    }

    public Task<Snapshot> CreateAsync(ConsoleAccess access, string? name, CancellationToken ct)
    {
        access.RequireAdmin("take a snapshot");
        return feature.Snapshots.CreateAsync(access.Tenant.Subdomain, ConsoleErrors.Text(name, "The snapshot's name",
            SnapshotService.MaxNameLength), SnapshotTypes.Manual, ct);
    }

    /// <summary>Starts a restore to a snapshot of this tenant or to a time; refusals change nothing.</summary>
    public async Task<RestoreJob> RestoreAsync(ConsoleAccess access, long? snapshotId, DateTimeOffset? time, RestoreTarget target,
        CancellationToken ct)
    {
        access.RequireAdmin("restore the tenant");
        var tenant = access.Tenant;
        if (target.InPlace)
        {
            if (!string.Equals(target.Confirmation?.Trim(), tenant.Subdomain, StringComparison.Ordinal))
            {
                throw new ConsoleRefusalException(
                    $"To restore '{tenant.Subdomain}' in place, type its name '{tenant.Subdomain}' to confirm; " +
                    "nothing was restored.");
            }
        }
        else if (string.IsNullOrWhiteSpace(target.NewSubdomain))
        {
            throw new ConsoleRefusalException("Name the new tenant to restore into (lower-case letters, digits and hyphens).");
        }
        if (snapshotId is { } id)
        {
            // Another tenant's snapshot is refused here as missing: its existence is none of this tenant's business.
            await feature.Snapshots.RequireSnapshotAsync(tenant, id, ct);
        }
        var request = new RestoreRequest(tenant.Subdomain, snapshotId,
            time?.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'", CultureInfo.InvariantCulture), null,
            target.InPlace ? null : ConsoleErrors.Text(target.NewSubdomain, "The new tenant's name", 63));
        return await runner.StartAsync(request, ct);
    }

    /// <summary>Swaps back the database the tenant's finished in-place restore replaced, while it is kept.</summary>
    public async Task<RestoreJob> UndoRestoreAsync(ConsoleAccess access, long jobId, CancellationToken ct)
    {
        access.RequireAdmin("undo a restore");
        var job = await feature.Restore.Jobs.GetAsync(jobId, ct);
        if (job is null || job.TenantId != access.Tenant.Id)
        {
            throw new ConsoleRefusalException($"This tenant has no restore {jobId}.");
        }
        return await feature.Restore.UndoAsync(jobId, ct);
    }

    /// <summary>The token the progress script sends: the job and its tenant, protected and valid for a day.</summary>
    public string ProgressToken(RestoreJob job) =>
        _progress.Protect(string.Create(CultureInfo.InvariantCulture, $"{job.Id}:{job.TenantId}"), ProgressLinkLifetime);

    /// <summary>The job a progress token names, or null for a token that is forged, expired or of a job that is gone.</summary>
    public async Task<RestoreJob?> ProgressAsync(string token, CancellationToken ct)
    {
        if (token.Length > 1000)
        {
            return null;
        }
        string plain;
        try
        {
            plain = _progress.Unprotect(token);
        }
        catch (System.Security.Cryptography.CryptographicException)
        {
            return null;
        }
        var parts = plain.Split(':');
        if (parts.Length != 2 || !long.TryParse(parts[0], CultureInfo.InvariantCulture, out var jobId)
            || !long.TryParse(parts[1], CultureInfo.InvariantCulture, out var tenantId))
        {
            return null;
        }
        var job = await feature.Restore.Jobs.GetAsync(jobId, ct);
        return job?.TenantId == tenantId ? job : null;
    }

    /// <summary>Whether the database a finished in-place restore replaced is still kept (so the restore can be undone).</summary>
    public static bool CanUndo(RestoreJob job) =>
        job is { State: "done", AsSubdomain: null, AsideDatabase: not null, AsideDroppedAt: null };

    private async Task<IReadOnlyList<RestoreJob>> RestoresAsync(Tenant tenant, CancellationToken ct)
    {
        var ids = new List<long>();
        await using (var command = management.DataSource.CreateCommand(
            "SELECT id FROM loomworks_restore_job WHERE tenant_id = $1 ORDER BY id DESC LIMIT $2"))
        {
            command.Parameters.AddWithValue(tenant.Id);
            command.Parameters.AddWithValue(RestoresShown);
            await using var r = await command.ExecuteReaderAsync(ct);
            while (await r.ReadAsync(ct))
            {
                ids.Add(r.GetInt64(0));
            }
        }
        var jobs = new List<RestoreJob>();
        foreach (var id in ids)
        {
            if (await feature.Restore.Jobs.GetAsync(id, ct) is { } job)
            {
                jobs.Add(job);
            }
        }
        return jobs;
    }
}
