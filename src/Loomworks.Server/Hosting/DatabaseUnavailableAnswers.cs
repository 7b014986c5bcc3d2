using System.Globalization;
using Loomworks.Rpc;

namespace Loomworks.Server.Hosting;

/// <summary>
/// Outside the RPC endpoints (which answer in their protocol's shape), a request that fails because PostgreSQL is
/// restarting or out of reach gets 503 with Retry-After and a problem document instead of an empty 500.
/// </summary>
public static class DatabaseUnavailableAnswers
{
    public static void UseDatabaseUnavailableAnswers(this WebApplication app) => app.Use(async (http, next) =>
    {
        try
        {
            await next(http);
        }
        catch (Exception e) when (DatabaseUnavailable.Matches(e) && !http.Response.HasStarted
            && !http.RequestAborted.IsCancellationRequested)
        {
            var message = DatabaseUnavailable.Describe(e);
            http.RequestServices.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(DatabaseUnavailableAnswers))
                .LogWarning("{Method} {Path} failed: {Message}", http.Request.Method, http.Request.Path, message);
            http.Response.Clear();
            http.Response.Headers.RetryAfter = DatabaseUnavailable.RetryAfterSeconds.ToString(CultureInfo.InvariantCulture);
            await TypedResults.Problem(message, statusCode: StatusCodes.Status503ServiceUnavailable, title: "database unavailable")
                .ExecuteAsync(http);
        }
    });
}
