using System.Globalization;
using Loomworks.Configuration;
using Loomworks.Operations;
using Loomworks.Postgres;
using Loomworks.Tenancy;
using Microsoft.AspNetCore.Http.HttpResults;
using Npgsql;

using Loomworks.Server.Tenancy;

namespace Loomworks.Server.Operations;

/// <summary>The admin REST API of the operation log: list a tenant's operations and undo one.</summary>
public static class OperationsEndpoints
{
    public sealed record UndoAnswer(long OperationId, long UndoOperationId, int RowsChanged);

    public static IServiceCollection AddOperations(this IServiceCollection services)
    {
        services.AddHostedService<OperationLogRetentionService>();
        return services;
    }

    public static void MapOperations(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/api/v1/tenants/{tenant}/operations").RequireMasterPassword();
        group.MapGet("", ListAsync);
        group.MapPost("/{id}/undo", UndoAsync);
    }

    private static async Task<Results<Ok<IReadOnlyList<OperationRecord>>, ProblemHttpResult>> ListAsync(
        string tenant, string? session, string? agent, string? model, string? since, string? until, string? limit,
        TenantStore tenants, TenantDataSources dataSources, CancellationToken cancellationToken)
    {
        try
        {
            var dataSource = await ResolveAsync(tenant, tenants, dataSources, cancellationToken);
            var filter = new OperationFilter(Text(session, "session"), Text(agent, "agent"), Text(model, "model"),
                Time(since, "since"), Time(until, "until"), limit is null ? OperationFilter.DefaultLimit : (int)Math.Min(WholeNumber(limit, "limit"), int.MaxValue));
            return TypedResults.Ok(await new OperationLog(dataSource).ListAsync(filter, cancellationToken));
        }
        catch (OperationException e)
        {
            return Problem(e);
        }
    }

    private static async Task<Results<Ok<UndoAnswer>, ProblemHttpResult>> UndoAsync(
        string tenant, string id, string? force, TenantStore tenants, TenantDataSources dataSources, CancellationToken cancellationToken)
    {
        try
        {
            var operationId = WholeNumber(id, "operation id");
            var forced = force switch
            {
                null or "false" or "0" => false,
                "true" or "1" => true,
                _ => throw new OperationException(OperationErrorKind.BadInput, "force must be true or false"),
            };
            var dataSource = await ResolveAsync(tenant, tenants, dataSources, cancellationToken);
            var result = await new UndoService(dataSource).UndoAsync(operationId, forced,
                new OperationInfo("undo", ToolName: "rest:undo"), cancellationToken);
            return TypedResults.Ok(new UndoAnswer(result.OperationId, result.UndoOperationId, result.RowsChanged));
        }
        catch (OperationException e)
        {
            return Problem(e);
        }
    }

    /// <summary>The tenant's database, or a refusal saying why it cannot be used.</summary>
    internal static async Task<PooledDatabase> ResolveAsync(string tenant, TenantStore tenants, TenantDataSources dataSources,
        CancellationToken cancellationToken)
    {
        if (tenant.Length is 0 or > 63)
        {
            throw new OperationException(OperationErrorKind.BadInput, "a tenant name must be 1 to 63 characters");
        }
        var found = await tenants.FindBySubdomainAsync(tenant, cancellationToken)
            ?? throw new OperationException(OperationErrorKind.NotFound, $"there is no tenant '{tenant}'");
        if (found.State is not (TenantStates.Active or TenantStates.Suspended))
        {
            throw new OperationException(OperationErrorKind.NotUndoable, $"tenant '{tenant}' is {found.State}; its log cannot be used now");
        }
        return dataSources.For(found.DatabaseName);
    }

    internal static long WholeNumber(string value, string what) =>
        long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n > 0
            ? n
            : throw new OperationException(OperationErrorKind.BadInput,
                $"{what} must be a positive whole number, not '{Shorten(value)}'");

    internal static DateTimeOffset? Time(string? value, string what) =>
        value is null ? null
        : DateTimeOffset.TryParse(value, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var t) ? t
        : throw new OperationException(OperationErrorKind.BadInput,
            $"{what} must be a time such as 2025-01-31T14:00:00Z, not '{Shorten(value)}'");

    private static string? Text(string? value, string what) =>
        value is null || value.Length <= 200 ? value
        : throw new OperationException(OperationErrorKind.BadInput, $"{what} is longer than 200 characters");

    private static string Shorten(string value) => value.Length <= 40 ? value : value[..40] + "…";

    private static ProblemHttpResult Problem(OperationException e) => TypedResults.Problem(e.Message, statusCode: e.Kind switch
    {
        OperationErrorKind.BadInput => StatusCodes.Status400BadRequest,
        OperationErrorKind.NotFound => StatusCodes.Status404NotFound,
        _ => StatusCodes.Status409Conflict,
    });
}
