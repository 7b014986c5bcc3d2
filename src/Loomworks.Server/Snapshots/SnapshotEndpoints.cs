using Loomworks.Server.Tenancy;
using System.Text.Json.Serialization;
using Loomworks.Snapshots;
using Microsoft.AspNetCore.Mvc;

namespace Loomworks.Server.Snapshots;

/// <summary>The admin REST API of snapshots and restores, under /api/v1.</summary>
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
            new(j.Id, "restore", j.State, j.StepName, j.Progress, j.Error, j.TargetType, j.Target, j.AsSubdomain, j.CreatedAt, j.FinishedAt);
    }

    public static void MapSnapshots(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("/api/v1").RequireMasterPassword().WithMetadata(new RequestSizeLimitAttribute(MaxBodyBytes));

        api.MapPost("/tenants/{tenant}/snapshots", async (string tenant, CreateSnapshotBody? body, SnapshotsFeature feature,
            CancellationToken cancellationToken) => await Answer(async () =>
        {
            // Answered pending as soon as the restore point is recorded; the WAL switch and the archive wait run in
            // the background and the snapshot turns ready, usually within a second (the list shows it).
            var snapshot = await feature.Snapshots.CreateAsync(tenant, body?.Name, SnapshotTypes.Manual, cancellationToken);
            return TypedResults.Created($"/api/v1/tenants/{tenant}/snapshots/{snapshot.Id}", SnapshotView.From(snapshot));
        }));

        api.MapGet("/tenants/{tenant}/snapshots", async (string tenant, SnapshotsFeature feature, CancellationToken cancellationToken) =>
            await Answer(async () =>
                TypedResults.Ok((await feature.Snapshots.ListAsync(tenant, cancellationToken)).Select(SnapshotView.From).ToList())));

        api.MapDelete("/tenants/{tenant}/snapshots/{id:long}", async (string tenant, long id, SnapshotsFeature feature,
            CancellationToken cancellationToken) => await Answer(async () =>
        {
            await feature.Snapshots.DeleteAsync(tenant, id, cancellationToken);
            return TypedResults.NoContent();
        }));

        api.MapPost("/tenants/{tenant}/restore", async (string tenant, RestoreBody body, RestoreJobRunner runner,
            CancellationToken cancellationToken) => await Answer(async () =>
        {
            var job = await runner.StartAsync(new RestoreRequest(tenant, body.SnapshotId, body.Time, body.Lsn, body.AsSubdomain),
                cancellationToken);
            return TypedResults.Accepted($"/api/v1/jobs/{job.Id}", JobView.From(job));
        }));

        api.MapGet("/jobs/{id:long}", async (long id, SnapshotsFeature feature, CancellationToken cancellationToken) =>
            await Answer(async () => await feature.Restore.Jobs.GetAsync(id, cancellationToken) is { } job
                ? TypedResults.Ok(JobView.From(job))
                : throw new SnapshotException(SnapshotErrorKind.NotFound, $"there is no job {id}")));
    }

    /// <summary>Turns a refusal into ProblemDetails with the status its kind calls for.</summary>
    private static async Task<IResult> Answer(Func<Task<IResult>> action)
    {
        try
        {
            return await action();
        }
        catch (SnapshotException e)
        {
            return TypedResults.Problem(e.Message, statusCode: e.Kind switch
            {
                SnapshotErrorKind.NotFound => StatusCodes.Status404NotFound,
                SnapshotErrorKind.Conflict => StatusCodes.Status409Conflict,
                SnapshotErrorKind.Unavailable => StatusCodes.Status503ServiceUnavailable,
                _ => StatusCodes.Status400BadRequest,
            });
        }
        catch (PgBackRestException e)
        {
            return TypedResults.Problem(e.Message, statusCode: StatusCodes.Status503ServiceUnavailable);
        }
    }
}
