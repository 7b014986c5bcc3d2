using Loomworks.Configuration;
using Loomworks.Operations;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Loomworks.Server.Operations;

/// <summary>The operation log in the server: its retention service and the admin REST API that lists and undoes operations.</summary>
public static class OperationsEndpoints
{
    public sealed record UndoAnswer(long OperationId, long UndoOperationId, int RowsChanged);

    public static IServiceCollection AddOperations(this IServiceCollection services, LoomworksSettings settings)
    {
        services.AddSingleton(OperationsOptions.From(settings));
        services.AddSingleton<TenantOperationLogs>();
        services.AddHostedService<OperationLogRetentionService>();
        return services;
    }

    /// <summary>A tenant's operations and their undo, below the admin API's root.</summary>
    public static void MapOperations(this RouteGroupBuilder api)
    {
        var group = api.MapGroup("/tenants/{tenant}/operations").WithTags("Operations")
            .ProducesProblem(StatusCodes.Status400BadRequest).ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status409Conflict);
        group.MapGet("", ListAsync).WithName("ListOperations")
            .WithSummary("List a tenant's operations, newest first, filtered by session, agent, model and time");
        group.MapPost("/{id}/undo", UndoAsync).WithName("UndoOperation")
            .WithSummary("Undo one operation in one transaction (force=true past later changes to the same rows)");
    }

    private static async Task<Ok<IReadOnlyList<OperationRecord>>> ListAsync(
        string tenant, string? session, string? agent, string? model, string? since, string? until, string? limit,
        TenantOperationLogs logs, CancellationToken cancellationToken)
    {
        var dataSource = await logs.ResolveAsync(tenant, cancellationToken);
        var filter = new OperationFilter(OperationInput.Text(session, "session"), OperationInput.Text(agent, "agent"),
            OperationInput.Text(model, "model"), OperationInput.Time(since, "since"), OperationInput.Time(until, "until"),
            limit is null ? OperationFilter.DefaultLimit : (int)Math.Min(OperationInput.WholeNumber(limit, "limit"), int.MaxValue));
        return TypedResults.Ok(await new OperationLog(dataSource).ListAsync(filter, cancellationToken));
    }

    private static async Task<Ok<UndoAnswer>> UndoAsync(string tenant, string id, string? force, TenantOperationLogs logs,
        CancellationToken cancellationToken)
    {
        var operationId = OperationInput.WholeNumber(id, "operation id");
        var forced = force switch
        {
            null or "false" or "0" => false,
            "true" or "1" => true,
            _ => throw new OperationException(OperationErrorKind.BadInput, "force must be true or false"),
        };
        var dataSource = await logs.ResolveAsync(tenant, cancellationToken);
        var result = await new UndoService(dataSource).UndoAsync(operationId, forced,
            new OperationInfo("undo", ToolName: "rest:undo"), cancellationToken);
        return TypedResults.Ok(new UndoAnswer(result.OperationId, result.UndoOperationId, result.RowsChanged));
    }
}
