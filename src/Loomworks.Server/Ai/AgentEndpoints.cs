using System.Text.Json.Serialization;
using Loomworks.Ai;
using Loomworks.Configuration;
using Loomworks.Filestore;
using Loomworks.Postgres;
using Loomworks.Records;
using Loomworks.Tenancy;
using Loomworks.Tenancy.Routing;
using Microsoft.AspNetCore.Http.Features;
using ModelContextProtocol.Protocol;
using ModelContextProtocol.Server;

namespace Loomworks.Server.Ai;

/// <summary>
/// The MCP endpoint <c>/mcp</c> for AI agents: the official SDK's streamable HTTP transport, stateless so that any
/// instance serves any call, behind a gate that routes the request to its tenant (as every request is), checks the
/// bearer API key and refuses a key used on another tenant's host.
/// </summary>
public static class AgentEndpoints
{
    public const string Path = "/mcp";

    /// <summary>The largest MCP request body: tool arguments are values and ids, never files.</summary>
    public const long MaxBodyBytes = 4L * 1024 * 1024;

    public static IServiceCollection AddAgents(this IServiceCollection services, LoomworksSettings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        services.AddSingleton<AiOperationQuota>();
        services.AddSingleton<AgentKeys>();
        services.AddSingleton<AgentSessions>();
        services.AddSingleton<AgentToolRunner>();
        services.AddHttpContextAccessor();
        services.AddMcpServer(options =>
            {
                options.ServerInfo = new Implementation { Name = "loomworks", Version = LoomworksVersion.Version };
                options.ServerInstructions = "Loomworks is an ERP speaking Odoo's models. Every change you make is logged and can be "
                    + "undone (undo_operation, undo_session); pass dry_run: true to see what a change would do first, and reuse the "
                    + "session_id a change returns for the rest of the same task.";
            })
            .WithHttpTransport(options => options.Stateless = true)
            .WithListToolsHandler((_, _) => ValueTask.FromResult(new ListToolsResult { Tools = [.. AgentTools.All] }))
            .WithCallToolHandler(CallToolAsync);
        return services;
    }

    public static IEndpointRouteBuilder MapAgents(this IEndpointRouteBuilder app)
    {
        // The gate wraps the SDK's own handlers, so nothing of MCP runs before the key is checked.
        app.MapMcp(Path).Add(endpoint =>
        {
            var inner = endpoint.RequestDelegate!;
            endpoint.RequestDelegate = context => GateAsync(context, inner);
        });
        return app;
    }

    private static async ValueTask<CallToolResult> CallToolAsync(RequestContext<CallToolRequestParams> request, CancellationToken ct)
    {
        var services = request.Services ?? request.Server.Services!;
        var http = services.GetRequiredService<IHttpContextAccessor>().HttpContext
            ?? throw new InvalidOperationException("an MCP tool call outside an HTTP request");
        var caller = http.Features.GetRequiredFeature<AgentCaller>();
        var client = request.Server.ClientInfo;
        var agentId = AgentCaller.AgentId(client?.Name, client?.Version, http.Request.Headers.UserAgent.ToString(), caller.Key.Description);
        return await services.GetRequiredService<AgentToolRunner>()
            .CallAsync(caller, agentId, request.Params?.Name ?? "", request.Params?.Arguments, ct);
    }

    /// <summary>The refusal body of the gate: what failed and what to do, never a stack.</summary>
    public sealed record GateRefusal(
        [property: JsonPropertyName("error")] string Error,
        [property: JsonPropertyName("message")] string Message);

    private static async Task GateAsync(HttpContext context, RequestDelegate inner)
    {
        if (context.Request.ContentLength > MaxBodyBytes)
        {
            await RefuseAsync(context, StatusCodes.Status413PayloadTooLarge, "request_too_large",
                $"the MCP request body is {context.Request.ContentLength} bytes; at most {MaxBodyBytes} are accepted. "
                + "Send fewer records or smaller values per call");
            return;
        }
        if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } bodySize)
        {
            bodySize.MaxRequestBodySize = MaxBodyBytes;
        }
        var tenant = context.Features.GetRequiredFeature<TenantFeature>().Tenant;
        var services = context.RequestServices;
        if (context.Request.Headers["X-Odoo-Database"].FirstOrDefault() is { Length: > 0 } named
            && !string.Equals(named, tenant.DatabaseName, StringComparison.Ordinal))
        {
            var decision = await services.GetRequiredService<CrossTenantAudit>().CheckAsync(new CredentialUse(named,
                tenant.DatabaseName, "MCP API key", ClientAddress: context.Connection.RemoteIpAddress?.ToString(),
                Path: context.Request.Path.Value), context.RequestAborted);
            if (decision.Refused)
            {
                await RefuseAsync(context, StatusCodes.Status403Forbidden, "cross_tenant", decision.Message!);
                return;
            }
        }
        var authorization = context.Request.Headers.Authorization.ToString();
        var key = authorization.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) ? authorization[7..].Trim() : "";
        var database = services.GetRequiredService<TenantDataSources>().For(tenant.DatabaseName);
        var keys = services.GetRequiredService<AgentKeys>();
        if (keys.Remembered(database, key) is { } remembered
            && await ServeRememberedAsync(context, inner, Caller(context, tenant, database, remembered.Key) with
            {
                Pending = new PendingStampCheck(remembered.Stamp),
            }))
        {
            return;
        }
        var (found, refusal) = await keys.CheckAsync(database, key, context.Connection.RemoteIpAddress?.ToString(), context.RequestAborted);
        if (found is null)
        {
            var (code, message) = refusal switch
            {
                AgentKeyRefusal.Missing => ("invalid_request",
                    "send the API key of a user of this tenant as \"Authorization: Bearer <key>\" (Preferences > Account Security, "
                    + "or res.users.apikeys generate)"),
                AgentKeyRefusal.CoolingDown => ("invalid_token", LoginCoolingMessage),
                _ => ("invalid_token", "the API key is not valid for this tenant: it is wrong, revoked, expired, or belongs to "
                    + "another tenant"),
            };
            // The challenge names the error only: a quoted description may not hold the quotes the message has.
            context.Response.Headers.WWWAuthenticate = $"Bearer realm=\"loomworks\", error=\"{code}\"";
            await RefuseAsync(context, StatusCodes.Status401Unauthorized, code, message);
            return;
        }
        context.Features.Set(Caller(context, tenant, database, found));
        await inner(context);
    }

    private static AgentCaller Caller(HttpContext context, Tenant tenant, PooledDatabase database, AgentKey key)
    {
        var files = context.RequestServices.GetService<FileStore>();
        var attachments = context.RequestServices.GetService<AttachmentOptions>();
        return new AgentCaller(tenant, database, key,
            files is null || attachments is null ? null : new AttachmentStorage(files, tenant.DatabaseName, attachments.MaxBytes));
    }

    /// <summary>
    /// Serves a request under a remembered key whose security stamp is read by the call itself: the answer is held
    /// until the stamp is confirmed (by the tool's first statement, or here for calls that read nothing), so a key
    /// revoked a moment ago still gets its 401. False when the stamp moved: nothing was done, nothing was sent, and the
    /// request's body (at most <see cref="MaxBodyBytes"/>, Kestrel refuses more) is there again for the full check and a
    /// second run.
    /// </summary>
    private static async Task<bool> ServeRememberedAsync(HttpContext context, RequestDelegate inner, AgentCaller caller)
    {
        byte[] request;
        using (var read = new MemoryStream())
        {
            try
            {
                await context.Request.Body.CopyToAsync(read, context.RequestAborted);
            }
            catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge)
            {
                await RefuseAsync(context, e.StatusCode, "request_too_large",
                    $"the MCP request body is over {MaxBodyBytes} bytes. Send fewer records or smaller values per call");
                return true;
            }
            request = read.ToArray();
        }
        context.Request.Body = new MemoryStream(request, writable: false);
        var body = context.Response.Body;
        using var held = new MemoryStream();
        context.Response.Body = held;
        context.Features.Set(caller);
        try
        {
            await inner(context);
        }
        finally
        {
            context.Response.Body = body;
        }
        if (await caller.ConfirmKeyAsync(context.RequestAborted))
        {
            held.Position = 0;
            await held.CopyToAsync(body, context.RequestAborted);
            return true;
        }
        context.Response.Clear();
        context.Request.Body = new MemoryStream(request, writable: false);
        return false;
    }

    private const string LoginCoolingMessage = "too many wrong keys from this address; wait a minute before trying again";

    private static Task RefuseAsync(HttpContext context, int status, string error, string message)
    {
        context.Response.StatusCode = status;
        return context.Response.WriteAsJsonAsync(new GateRefusal(error, message), context.RequestAborted);
    }
}
