using Loomworks.Tenancy;

namespace Loomworks.Server.Health;

/// <summary>Liveness in Odoo's shape, and readiness that asks the management database.</summary>
public static class HealthEndpoints
{
    public sealed record HealthStatus(string Status);

    public static void MapHealth(this IEndpointRouteBuilder app)
    {
        app.MapGet("/web/health", () => TypedResults.Ok(new HealthStatus("pass")));
        app.MapGet("/web/health/ready", async Task<Microsoft.AspNetCore.Http.HttpResults.JsonHttpResult<HealthStatus>> (
            ManagementDatabase management, CancellationToken cancellationToken) =>
            await management.IsReachableAsync(TimeSpan.FromSeconds(3), cancellationToken)
                ? TypedResults.Json(new HealthStatus("pass"))
                : TypedResults.Json(new HealthStatus("fail"), statusCode: StatusCodes.Status503ServiceUnavailable));
    }
}
