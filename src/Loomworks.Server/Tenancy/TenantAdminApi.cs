using System.Globalization;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Loomworks.Server.Hosting;
using Loomworks.Tenancy;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Loomworks.Server.Tenancy;

/// <summary>
/// The tenants' part of the admin REST API: tenants listed, created, changed, suspended, activated, archived and deleted,
/// authenticated with HTTP Basic user <c>admin</c> and the master password. Errors are ProblemDetails whose detail
/// names the problem.
/// </summary>
public static class TenantAdminApi
{
    public const int MaxBodyBytes = 64 * 1024;

    private static readonly JsonSerializerOptions BodyOptions = new()
    {
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        MaxDepth = 8,
    };

    public sealed record TenantDto(
        [property: JsonPropertyName("id")] long Id,
        [property: JsonPropertyName("name")] string Name,
        [property: JsonPropertyName("subdomain")] string Subdomain,
        [property: JsonPropertyName("database_name")] string DatabaseName,
        [property: JsonPropertyName("state")] string State,
        [property: JsonPropertyName("tier")] string Tier,
        [property: JsonPropertyName("max_users")] int MaxUsers,
        [property: JsonPropertyName("max_storage_gb")] int MaxStorageGb,
        [property: JsonPropertyName("max_ai_operations_daily")] int MaxAiOperationsDaily,
        [property: JsonPropertyName("subscription_expires")] DateTimeOffset? SubscriptionExpires,
        [property: JsonPropertyName("database_server")] string DatabaseServer,
        [property: JsonPropertyName("created_at")] DateTimeOffset CreatedAt,
        [property: JsonPropertyName("updated_at")] DateTimeOffset UpdatedAt)
    {
        /// <summary>Today's AI operations against max_ai_operations_daily; shown for one tenant, not in lists.</summary>
        [JsonPropertyName("ai_usage")]
        [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
        public AiQuotaUsage? AiUsage { get; init; }

        public static TenantDto From(Tenant t) => new(t.Id, t.Name, t.Subdomain, t.DatabaseName, t.State, t.Tier, t.MaxUsers,
            t.MaxStorageGb, t.MaxAiOperationsDaily, t.SubscriptionExpires, t.DatabaseServer, t.CreatedAt, t.UpdatedAt);
    }

    public sealed record CreateBody(
        [property: JsonPropertyName("name")] string? Name,
        [property: JsonPropertyName("subdomain")] string? Subdomain,
        [property: JsonPropertyName("admin_login")] string? AdminLogin,
        [property: JsonPropertyName("admin_password")] string? AdminPassword,
        [property: JsonPropertyName("tier")] string? Tier,
        [property: JsonPropertyName("max_users")] int? MaxUsers,
        [property: JsonPropertyName("max_storage_gb")] int? MaxStorageGb,
        [property: JsonPropertyName("max_ai_operations_daily")] int? MaxAiOperationsDaily,
        [property: JsonPropertyName("subscription_expires")] DateTimeOffset? SubscriptionExpires,
        [property: JsonPropertyName("admin_password_hash")] string? AdminPasswordHash = null);

    public sealed record PatchBody(
        [property: JsonPropertyName("name")] string? Name,
        [property: JsonPropertyName("tier")] string? Tier,
        [property: JsonPropertyName("max_users")] int? MaxUsers,
        [property: JsonPropertyName("max_storage_gb")] int? MaxStorageGb,
        [property: JsonPropertyName("max_ai_operations_daily")] int? MaxAiOperationsDaily,
        [property: JsonPropertyName("subscription_expires")] DateTimeOffset? SubscriptionExpires,
        [property: JsonPropertyName("clear_subscription_expires")] bool? ClearSubscriptionExpires);

    /// <summary>The tenants' routes below the admin API's root.</summary>
    public static void MapTenantAdminApi(this RouteGroupBuilder api)
    {
        var tenants = api.MapGroup("/tenants").WithTags("Tenants");
        tenants.MapGet("", async (TenantStore store, CancellationToken ct) =>
            TypedResults.Ok((await store.ListAsync(ct)).Select(TenantDto.From).ToList()))
            .WithName("ListTenants").WithSummary("List tenants");
        tenants.MapPost("", CreateAsync).WithName("CreateTenant")
            .WithSummary("Create a tenant: database, role, schema and first administrator")
            .Accepts<CreateBody>("application/json")
            .ProducesProblem(StatusCodes.Status400BadRequest).ProducesProblem(StatusCodes.Status409Conflict)
            .ProducesProblem(StatusCodes.Status413PayloadTooLarge).ProducesProblem(StatusCodes.Status415UnsupportedMediaType);
        tenants.MapGet("/{subdomain}", async (string subdomain, TenantStore store, AiOperationQuota quota, CancellationToken ct) =>
            await store.FindBySubdomainAsync(subdomain, ct) is { } tenant
                ? TypedResults.Ok(TenantDto.From(tenant) with { AiUsage = await quota.UsageAsync(tenant, ct) })
                : throw new TenantStateException($"no tenant has the subdomain '{TenantRules.Printable(subdomain)}'", notFound: true))
            .WithName("GetTenant").WithSummary("Show a tenant").ProducesProblem(StatusCodes.Status404NotFound);
        tenants.MapPatch("/{subdomain}", PatchAsync).WithName("ChangeTenant")
            .WithSummary("Change limits, tier, name or subscription end")
            .WithMetadata(new InvalidInputTitle("invalid change"))
            .Accepts<PatchBody>("application/json")
            .ProducesProblem(StatusCodes.Status400BadRequest).ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status409Conflict).ProducesProblem(StatusCodes.Status413PayloadTooLarge)
            .ProducesProblem(StatusCodes.Status415UnsupportedMediaType);
        tenants.MapDelete("/{subdomain}", async (string subdomain, bool? force, TenantLifecycle lifecycle, CancellationToken ct) =>
        {
            await lifecycle.DeleteAsync(subdomain, force ?? false, "api", ct);
            return TypedResults.NoContent();
        }).WithName("DeleteTenant")
            .WithSummary("Delete a tenant: database, role and filestore (archived only unless force=true)")
            .ProducesProblem(StatusCodes.Status404NotFound).ProducesProblem(StatusCodes.Status409Conflict);
        MapStateChange(tenants, "suspend", "SuspendTenant", "Suspend a tenant", (l, s, ct) => l.SuspendAsync(s, "api", ct));
        MapStateChange(tenants, "activate", "ActivateTenant", "Activate a tenant", (l, s, ct) => l.ActivateAsync(s, "api", ct));
        MapStateChange(tenants, "archive", "ArchiveTenant", "Archive a tenant", (l, s, ct) => l.ArchiveAsync(s, "api", ct));
    }

    private static void MapStateChange(RouteGroupBuilder tenants, string verb, string name, string summary,
        Func<TenantLifecycle, string, CancellationToken, Task<Tenant>> change) =>
        tenants.MapPost($"/{{subdomain}}/{verb}", async (string subdomain, TenantLifecycle lifecycle, CancellationToken ct) =>
                TypedResults.Ok(TenantDto.From(await change(lifecycle, subdomain, ct))))
            .WithName(name).WithSummary(summary)
            .ProducesProblem(StatusCodes.Status404NotFound).ProducesProblem(StatusCodes.Status409Conflict);

    private static async Task<Results<Created<TenantDto>, ProblemHttpResult>> CreateAsync(HttpRequest request,
        TenantProvisioner provisioner, CancellationToken ct)
    {
        var (body, problem) = await ReadBodyAsync<CreateBody>(request, ct);
        if (problem is not null)
        {
            return problem;
        }
        var tenant = await provisioner.CreateAsync(new TenantRequest(body!.Name!, body.Subdomain!, body.AdminLogin!,
            body.AdminPassword, body.Tier ?? "standard", body.MaxUsers ?? 10, body.MaxStorageGb ?? 10,
            body.MaxAiOperationsDaily ?? 1000, body.SubscriptionExpires, body.AdminPasswordHash), ct, "api");
        return TypedResults.Created($"/api/v1/tenants/{tenant.Subdomain}", TenantDto.From(tenant));
    }

    private static async Task<Results<Ok<TenantDto>, ProblemHttpResult>> PatchAsync(string subdomain, HttpRequest request,
        TenantLifecycle lifecycle, CancellationToken ct)
    {
        var (body, problem) = await ReadBodyAsync<PatchBody>(request, ct);
        if (problem is not null)
        {
            return problem;
        }
        var tenant = await lifecycle.SetLimitsAsync(subdomain, new TenantLimitsChange(body!.MaxUsers, body.MaxStorageGb,
            body.MaxAiOperationsDaily, body.Tier, body.SubscriptionExpires, body.ClearSubscriptionExpires ?? false, body.Name),
            "api", ct);
        return TypedResults.Ok(TenantDto.From(tenant));
    }

    private static async Task<(T? Body, ProblemHttpResult? Problem)> ReadBodyAsync<T>(HttpRequest request, CancellationToken ct)
        where T : class
    {
        if (request.ContentLength > MaxBodyBytes)
        {
            return (null, Problem(413, "body too large",
                $"the body is {request.ContentLength} bytes; at most {MaxBodyBytes} are accepted"));
        }
        if (!(request.ContentType ?? "").StartsWith("application/json", StringComparison.OrdinalIgnoreCase))
        {
            return (null, Problem(415, "unsupported media type", "send the body as application/json"));
        }
        using var buffer = new MemoryStream();
        var chunk = new byte[8192];
        int read;
        while ((read = await request.Body.ReadAsync(chunk, ct)) > 0)
        {
            buffer.Write(chunk, 0, read);
            if (buffer.Length > MaxBodyBytes)
            {
                return (null, Problem(413, "body too large", $"at most {MaxBodyBytes} bytes are accepted"));
            }
        }
        try
        {
            var body = JsonSerializer.Deserialize<T>(buffer.ToArray(), BodyOptions);
            return body is null ? (null, Problem(400, "invalid body", "the body must be a JSON object")) : (body, null);
        }
        catch (JsonException e)
        {
            return (null, Problem(400, "invalid body", $"the body is not acceptable JSON: {e.Message}"));
        }
    }

    /// <summary>
    /// Guards an admin route group: HTTP Basic user admin and the master password, rate limited per address and globally.
    /// </summary>
    public static RouteGroupBuilder RequireMasterPassword(this RouteGroupBuilder group) =>
        group.AddEndpointFilter(RequireMasterPasswordAsync);

    private static async ValueTask<object?> RequireMasterPasswordAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        var http = context.HttpContext;
        var master = http.RequestServices.GetRequiredService<MasterPassword>();
        var client = http.Connection.RemoteIpAddress?.ToString() ?? "unknown";
        var (user, password) = ParseBasic(http.Request.Headers.Authorization.ToString());
        // No credentials at all is how clients ask which scheme to use: answered 401 but not counted as a failure.
        var result = user is null
            ? await master.WithoutCredentialsAsync(client, http.RequestAborted)
            : await master.VerifyAsync(user == "admin" ? password : null, client, http.RequestAborted);
        switch (result)
        {
            case MasterPasswordResult.Accepted:
                return await next(context);
            case MasterPasswordResult.Disabled:
                return Problem(403, "admin API disabled", "the admin API is disabled until admin_passwd is set");
            case MasterPasswordResult.RateLimited:
                var wait = master.LockedFor(client) ?? MasterPassword.LockOut;
                http.Response.Headers.RetryAfter = ((int)Math.Ceiling(wait.TotalSeconds)).ToString(CultureInfo.InvariantCulture);
                return Problem(429, "too many failures",
                    "too many wrong master passwords from this address or from everyone; wait before trying again");
            default:
                http.Response.Headers.WWWAuthenticate = "Basic realm=\"loomworks admin\"";
                return Problem(401, "authentication required",
                    user is null ? "send HTTP Basic credentials: user admin and the master password" : "wrong user or master password");
        }
    }

    private static (string? User, string? Password) ParseBasic(string header)
    {
        if (!AuthenticationHeaderValue.TryParse(header, out var value) || !"Basic".Equals(value.Scheme, StringComparison.OrdinalIgnoreCase)
            || value.Parameter is not { Length: > 0 and < 4096 } parameter)
        {
            return (null, null);
        }
        try
        {
            var text = Encoding.UTF8.GetString(Convert.FromBase64String(parameter));
            var colon = text.IndexOf(':', StringComparison.Ordinal);
            return colon < 0 ? (text, null) : (text[..colon], text[(colon + 1)..]);
        }
        catch (FormatException)
        {
            return (null, null);
        }
    }

    private static ProblemHttpResult Problem(int status, string title, string detail) =>
        TypedResults.Problem(detail: detail, statusCode: status, title: title);
}
