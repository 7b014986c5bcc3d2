using Loomworks.Operations;
using Loomworks.Server.Tenancy;
using Loomworks.Snapshots;
using Loomworks.Tenancy;
using Microsoft.AspNetCore.Diagnostics;

namespace Loomworks.Server.Hosting;

/// <summary>
/// The admin REST API's one root, <c>/api/v1</c>: master-password guarded, its refusals answered as ProblemDetails by
/// <see cref="RefusalProblems"/>, its OpenAPI document generated from the routes the features map below it.
/// </summary>
public static class AdminApi
{
    public const string Prefix = "/api/v1";
    public const string OpenApiPath = Prefix + "/openapi.json";

    public static IServiceCollection AddAdminApi(this IServiceCollection services)
    {
        services.AddProblemDetails();
        services.AddExceptionHandler<RefusalProblems>();
        services.AddOpenApi(options =>
        {
            options.ShouldInclude = description =>
                description.RelativePath?.StartsWith(Prefix.TrimStart('/') + "/", StringComparison.Ordinal) == true;
            options.AddDocumentTransformer((document, _, _) =>
            {
                document.Info = new Microsoft.OpenApi.OpenApiInfo { Title = "Loomworks admin API", Version = LoomworksVersion.Full };
                document.Components ??= new Microsoft.OpenApi.OpenApiComponents();
                document.Components.SecuritySchemes ??= new Dictionary<string, Microsoft.OpenApi.IOpenApiSecurityScheme>();
                document.Components.SecuritySchemes["master"] = new Microsoft.OpenApi.OpenApiSecurityScheme
                {
                    Type = Microsoft.OpenApi.SecuritySchemeType.Http,
                    Scheme = "basic",
                    Description = "user admin, the master password",
                };
                document.Security ??= [];
                document.Security.Add(new Microsoft.OpenApi.OpenApiSecurityRequirement
                {
                    [new Microsoft.OpenApi.OpenApiSecuritySchemeReference("master", document)] = [],
                });
                return Task.CompletedTask;
            });
        });
        return services;
    }

    /// <summary>Refusals thrown by the admin routes become ProblemDetails; the other routes answer in their own protocol.</summary>
    public static void UseAdminApiRefusals(this WebApplication app) =>
        app.UseWhen(context => context.Request.Path.StartsWithSegments(Prefix, StringComparison.OrdinalIgnoreCase),
            branch => branch.UseExceptionHandler());

    /// <summary>The group every admin feature maps its routes below, and the generated OpenAPI document beside it.</summary>
    public static RouteGroupBuilder MapAdminApi(this IEndpointRouteBuilder app)
    {
        app.MapOpenApi(OpenApiPath);
        return app.MapGroup(Prefix).RequireMasterPassword()
            .ProducesProblem(StatusCodes.Status401Unauthorized)
            .ProducesProblem(StatusCodes.Status403Forbidden)
            .ProducesProblem(StatusCodes.Status429TooManyRequests);
    }
}

/// <summary>The title an admin route gives to a <see cref="TenantValidationException"/> that is not a conflict.</summary>
public sealed record InvalidInputTitle(string Title);

/// <summary>Turns the refusal types of the library into the ProblemDetails status their kind calls for.</summary>
public sealed class RefusalProblems : IExceptionHandler
{
    public async ValueTask<bool> TryHandleAsync(HttpContext httpContext, Exception exception, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(httpContext);
        if (Refusal(exception, httpContext.GetEndpoint()?.Metadata.GetMetadata<InvalidInputTitle>()) is not { } refusal)
        {
            return false;
        }
        await TypedResults.Problem(exception.Message, statusCode: refusal.Status, title: refusal.Title).ExecuteAsync(httpContext);
        return true;
    }

    /// <summary>The status and title of a refusal, or null for an exception that is not one.</summary>
    public static (int Status, string? Title)? Refusal(Exception exception, InvalidInputTitle? invalidTitle = null) => exception switch
    {
        TenantValidationException { Conflict: true } => (StatusCodes.Status409Conflict, "conflict"),
        TenantValidationException => (StatusCodes.Status400BadRequest, invalidTitle?.Title ?? "invalid tenant"),
        TenantStateException { NotFound: true } => (StatusCodes.Status404NotFound, "tenant not found"),
        TenantStateException => (StatusCodes.Status409Conflict, "wrong state"),
        OperationException e => (e.Kind switch
        {
            OperationErrorKind.BadInput => StatusCodes.Status400BadRequest,
            OperationErrorKind.NotFound => StatusCodes.Status404NotFound,
            _ => StatusCodes.Status409Conflict,
        }, null),
        SnapshotException e => (e.Kind switch
        {
            SnapshotErrorKind.NotFound => StatusCodes.Status404NotFound,
            SnapshotErrorKind.Conflict => StatusCodes.Status409Conflict,
            SnapshotErrorKind.Unavailable => StatusCodes.Status503ServiceUnavailable,
            _ => StatusCodes.Status400BadRequest,
        }, null),
        PgBackRestException => (StatusCodes.Status503ServiceUnavailable, null),
        _ => null,
    };
}
