using System.Text.Json.Serialization;
using Loomworks.Configuration;
using Loomworks.Postgres;
using Loomworks.Snapshots;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;

namespace Loomworks.Server.Snapshots;

/// <summary>The snapshot feature in the server: its services and its admin REST API of snapshots and restores.</summary>
public static class SnapshotEndpoints
{
    /// <summary>Request bodies are a few fields: anything larger is refused before it is read.</summary>
    public const long MaxBodyBytes = 16 * 1024;

    public sealed record CreateSnapshotBody([property: JsonPropertyName("name")] string? Name);

    public sealed record RestoreBody(
        [property: JsonPropertyName("snapshot_id")] long? SnapshotId,
        [property: JsonPropertyName("time")] string? Time,
        [property: JsonPropertyName("lsn")] string? Lsn,
        [property: JsonPropertyName("as_subdomain")] string? AsSubdomain);

    public sealed record SnapshotView(
        [property: JsonPropertyName("id")] long Id,
        [property: JsonPropertyName("name")] string Name,
        [property: JsonPropertyName("created_at")] DateTimeOffset CreatedAt,
        [property: JsonPropertyName("state")] string State,
        [property: JsonPropertyName("wal_position")] string WalPosition,
        [property: JsonPropertyName("wal_file")] string WalFile,
        [property: JsonPropertyName("base_backup_id")] string? BaseBackupId,
        [property: JsonPropertyName("snapshot_type")] string SnapshotType,
        [property: JsonPropertyName("size_bytes")] long? SizeBytes,
        [property: JsonPropertyName("expires_at")] DateTimeOffset ExpiresAt)
    {
        public static SnapshotView From(Snapshot s) =>
            new(s.Id, s.Name, s.CreatedAt, s.State, s.WalPosition, s.WalFile, s.BaseBackupId, s.SnapshotType, s.SizeBytes, s.ExpiresAt);
    }

    public sealed record JobView(
        [property: JsonPropertyName("id")] long Id,
        [property: JsonPropertyName("kind")] string Kind,
        [property: JsonPropertyName("state")] string State,
        [property: JsonPropertyName("step")] string Step,
        [property: JsonPropertyName("progress")] int Progress,
        [property: JsonPropertyName("error")] string? Error,
        [property: JsonPropertyName("target_type")] string TargetType,
        [property: JsonPropertyName("target")] string Target,
        [property: JsonPropertyName("as_subdomain")] string? AsSubdomain,
        [property: JsonPropertyName("created_at")] DateTimeOffset CreatedAt,
        [property: JsonPropertyName("finished_at")] DateTimeOffset? FinishedAt)
    {
        public static JobView From(RestoreJob j) =>
            new(j.Id, "restore", j.State, j.StepName, j.Progress, j.Error, j.TargetType, j.Target, j.AsSubdomain, j.CreatedAt,
                j.FinishedAt);
    }

    /// <summary>The snapshot feature: its options, pgBackRest, snapshots, restores, their runner and the scheduler.</summary>
    public static IServiceCollection AddSnapshots(this IServiceCollection services, LoomworksSettings settings)
    {
        services.AddSingleton(sp => SnapshotOptions.From(settings, sp.GetRequiredService<PostgresServer>()));
        services.AddSingleton<PgBackRest>();
        services.AddSingleton<SnapshotService>();
        services.AddSingleton<TenantRestore>();
        services.AddSingleton<SnapshotsFeature>();
        services.AddSingleton<RestoreJobRunner>();
        services.AddHostedService(sp => sp.GetRequiredService<RestoreJobRunner>());
        services.AddHostedService<SnapshotScheduler>();
        return services;
    }

    /// <summary>Snapshots and restores of a tenant, and restore jobs, below the admin API's root.</summary>
    public static void MapSnapshots(this RouteGroupBuilder api)
    {
        var limit = new RequestSizeLimitAttribute(MaxBodyBytes);
        var tenant = api.MapGroup("/tenants/{tenant}").WithMetadata(limit).WithTags("Snapshots");

        tenant.MapPost("/snapshots", CreateAsync).WithName("CreateSnapshot").WithSummary("Take a snapshot of a tenant")
            .ProducesProblem(StatusCodes.Status400BadRequest).ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status409Conflict).ProducesProblem(StatusCodes.Status503ServiceUnavailable);
        tenant.MapGet("/snapshots", async (string tenant, SnapshotsFeature feature, CancellationToken cancellationToken) =>
                TypedResults.Ok((await feature.Snapshots.ListAsync(tenant, cancellationToken)).Select(SnapshotView.From).ToList()))
            .WithName("ListSnapshots").WithSummary("List a tenant's snapshots, oldest first")
            .ProducesProblem(StatusCodes.Status404NotFound);
        tenant.MapDelete("/snapshots/{id:long}", async (string tenant, long id, SnapshotsFeature feature,
            CancellationToken cancellationToken) =>
        {
            await feature.Snapshots.DeleteAsync(tenant, id, cancellationToken);
            return TypedResults.NoContent();
        }).WithName("DeleteSnapshot").WithSummary("Delete a snapshot")
            .ProducesProblem(StatusCodes.Status404NotFound).ProducesProblem(StatusCodes.Status409Conflict);
        tenant.MapPost("/restore", RestoreAsync).WithName("RestoreTenant")
            .WithSummary("Restore a tenant to a snapshot, a time or an LSN, or into a new tenant; answered with the job")
            .ProducesProblem(StatusCodes.Status400BadRequest).ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status409Conflict).ProducesProblem(StatusCodes.Status503ServiceUnavailable);

        api.MapGet("/jobs/{id:long}", async (long id, SnapshotsFeature feature, CancellationToken cancellationToken) =>
                await feature.Restore.Jobs.GetAsync(id, cancellationToken) is { } job
                    ? TypedResults.Ok(JobView.From(job))
                    : throw new SnapshotException(SnapshotErrorKind.NotFound, $"there is no job {id}"))
            .WithMetadata(limit).WithTags("Snapshots").WithName("GetJob").WithSummary("Show a restore job and its progress")
            .ProducesProblem(StatusCodes.Status404NotFound);
    }

    private static async Task<Created<SnapshotView>> CreateAsync(string tenant, CreateSnapshotBody? body, SnapshotsFeature feature,
        CancellationToken cancellationToken)
    {
        // Answered pending as soon as the restore point is recorded; the WAL switch and the archive wait run in
        // the background and the snapshot turns ready, usually within a second (the list shows it).
        var snapshot = await feature.Snapshots.CreateAsync(tenant, body?.Name, SnapshotTypes.Manual, cancellationToken);
        return TypedResults.Created($"/api/v1/tenants/{tenant}/snapshots/{snapshot.Id}", SnapshotView.From(snapshot));
    }

    private static async Task<Accepted<JobView>> RestoreAsync(string tenant, RestoreBody body, RestoreJobRunner runner,
        CancellationToken cancellationToken)
    {
        var job = await runner.StartAsync(new RestoreRequest(tenant, body.SnapshotId, body.Time, body.Lsn, body.AsSubdomain),
            cancellationToken);
        return TypedResults.Accepted($"/api/v1/jobs/{job.Id}", JobView.From(job));
    }
}
