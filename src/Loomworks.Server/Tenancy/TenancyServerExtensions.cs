using Loomworks.Operations;
using Loomworks.Records;
using Loomworks.Configuration;
using Loomworks.Postgres;
using Loomworks.Tenancy;
using Loomworks.Tenancy.Routing;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Loomworks.Server.Tenancy;

/// <summary>Tenancy in the web server: services, the routing middleware, the tenant pages and the admin API.</summary>
public static class TenancyServerExtensions
{
    /// <summary>Paths served without a tenant.</summary>
    private static readonly string[] TenantlessPrefixes = ["/web/health", "/api/v1", "/web/database", "/web/assets", "/console/tenants",
        Web.Console.TenantConsoleEndpoints.ProgressPrefix];

    /// <summary>
    /// Paths whose endpoints route themselves (the RPC layer routes by the body's db, web sessions by their own database).
    /// </summary>
    private static readonly string[] SelfRoutingPrefixes = ["/xmlrpc", "/jsonrpc", "/json/2", "/web/session", "/web/dataset"];

    public static void AddLoomworksTenancy(this IServiceCollection services, LoomworksSettings settings)
    {
        services.AddSingleton(TenancyOptions.From(settings));
        // The ERP core replaces this with its own schema; until then tenants get the minimal one.
        services.TryAddSingleton<ITenantDatabaseSetup, ErpTenantSetup>();
        services.AddSingleton<TenantEventLog>();
        services.AddSingleton<TenantProvisioner>();
        services.AddSingleton<TenantLifecycle>();
        services.AddSingleton<TenantLimits>();
        services.AddSingleton<TenantCache>();
        services.AddSingleton<TenantRouter>();
        services.AddSingleton<CrossTenantAudit>();
        services.AddSingleton(new TenantHeaderTrust(settings.TrustedProxies));
        // Every password check of a tenant's users (RPC, web sessions, the tenant pages) goes through this one gate,
        // around the LoginCooldown the RPC layer registers.
        services.AddSingleton<Security.PasswordGate>();
        services.AddSingleton(sp => new MasterPassword(sp.GetRequiredService<ManagementDatabase>(), settings.AdminPassword,
            logger: sp.GetRequiredService<ILogger<MasterPassword>>()));
        services.AddSingleton<TenantChangeListener>();
        services.AddHostedService(sp => sp.GetRequiredService<TenantChangeListener>());
        services.AddHostedService<SubscriptionExpiryService>();
        services.AddSingleton<TenancyStartup>();
        services.AddDataProtection();
    }

    /// <summary>Routes every request that is not tenant-less to its tenant, or answers why it cannot.</summary>
    public static void UseLoomworksTenancy(this WebApplication app)
    {
        app.Use(async (context, next) =>
        {
            // First, for every path: the tenant header of a client that is not trusted is dropped before anything
            // (this router, the RPC layer, web sessions) can read it, and the attempt is audited.
            var options = context.RequestServices.GetRequiredService<TenancyOptions>();
            if (options.TenantHeader is { } header && context.Request.Headers.TryGetValue(header, out var named)
                && !context.RequestServices.GetRequiredService<TenantHeaderTrust>().Trusts(context.Connection.RemoteIpAddress))
            {
                context.Request.Headers.Remove(header);
                await context.RequestServices.GetRequiredService<CrossTenantAudit>().IgnoredTenantHeaderAsync(header, named.ToString(),
                    context.Connection.RemoteIpAddress?.ToString(), context.Request.Host.Value, context.Request.Path.Value,
                    context.RequestAborted);
            }
            var path = context.Request.Path.Value ?? "/";
            if (Matches(path, TenantlessPrefixes) || Matches(path, SelfRoutingPrefixes))
            {
                await next(context);
                return;
            }
            var router = context.RequestServices.GetRequiredService<TenantRouter>();
            var outcome = await router.RouteAsync(new RoutingRequest(
                context.Request.Host.Value ?? "",
                options.TenantHeader is null ? null : context.Request.Headers[options.TenantHeader].FirstOrDefault(),
                context.Request.Headers["X-Odoo-Database"].FirstOrDefault()), context.RequestAborted);
            // The entry page on an address that names no tenant lists the tenants or says how they are reached.
            if (!outcome.IsRouted && !(outcome.Tenant is null && path == "/"))
            {
                await WriteRefusalAsync(context, outcome);
                return;
            }
            if (outcome.IsRouted)
            {
                context.Features.Set(new TenantFeature(outcome.Tenant!, outcome.Message));
            }
            await next(context);
        });
    }

    /// <summary>A refusal as JSON, or as a small HTML page for browsers; 503 carries Retry-After.</summary>
    public static async Task WriteRefusalAsync(HttpContext context, RoutingOutcome outcome)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(outcome);
        context.Response.StatusCode = outcome.StatusCode;
        if (outcome.RetryAfterSeconds is { } retry)
        {
            context.Response.Headers.RetryAfter = retry.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }
        var accept = context.Request.Headers.Accept.ToString();
        if (accept.Contains("text/html", StringComparison.OrdinalIgnoreCase))
        {
            context.Response.ContentType = "text/html; charset=utf-8";
            var message = System.Net.WebUtility.HtmlEncode(outcome.Message);
            await context.Response.WriteAsync(
                $"<!DOCTYPE html><html><head><title>{outcome.StatusCode}</title></head><body><h1>{outcome.StatusCode}</h1>" +
                $"<p>{message}</p><p><code>{outcome.Code}</code></p></body></html>", context.RequestAborted);
            return;
        }
        await context.Response.WriteAsJsonAsync(new RefusalBody(outcome.Code, outcome.Message, outcome.StatusCode), context.RequestAborted);
    }

    private static bool Matches(string path, string[] prefixes) =>
        prefixes.Any(p => path.Equals(p, StringComparison.OrdinalIgnoreCase)
            || path.StartsWith(p + "/", StringComparison.OrdinalIgnoreCase));

    /// <summary>The body of a routing refusal.</summary>
    public sealed record RefusalBody(
        [property: System.Text.Json.Serialization.JsonPropertyName("error")] string Error,
        [property: System.Text.Json.Serialization.JsonPropertyName("message")] string Message,
        [property: System.Text.Json.Serialization.JsonPropertyName("status")] int Status);
}

/// <summary>What the server does with tenancy before it serves: settle interrupted jobs, make the demo tenant.</summary>
public sealed class TenancyStartup(
    TenantProvisioner provisioner,
    TenantStore store,
    ManagementDatabase management,
    TenancyOptions options,
    LoomworksSettings settings,
    ILogger<TenancyStartup> logger)
{
    public const string DemoSubdomain = "demo";
    private const string DemoMarker = "demo_tenant_created";

    public async Task RunAsync(CancellationToken ct)
    {
        var settled = await provisioner.RecoverAsync(ct);
        if (settled > 0)
        {
            logger.LogInformation("settled {Count} interrupted provisioning job(s)", settled);
        }
        await provisioner.UpgradeTenantsAsync(ct);
        if (options.DemoTenant)
        {
            await EnsureDemoAsync(ct);
        }
    }

    /// <summary>Creates the demo tenant (admin/admin) on the first start only: deleting it later is respected.</summary>
    private async Task EnsureDemoAsync(CancellationToken ct)
    {
        await using var marker = management.DataSource.CreateCommand("SELECT 1 FROM loomworks_settings WHERE key = $1");
        marker.Parameters.AddWithValue(DemoMarker);
        if (await marker.ExecuteScalarAsync(ct) is null && await store.FindBySubdomainAsync(DemoSubdomain, ct) is null)
        {
            await provisioner.CreateAsync(new TenantRequest("Demo", DemoSubdomain, "admin", "admin"), ct, actor: "demo");
            await using var record = management.DataSource.CreateCommand(
                "INSERT INTO loomworks_settings (key, value) VALUES ($1, 'true') ON CONFLICT (key) DO NOTHING");
            record.Parameters.AddWithValue(DemoMarker);
            await record.ExecuteNonQueryAsync(ct);
        }
        if (await store.FindBySubdomainAsync(DemoSubdomain, ct) is { } demo)
        {
            var port = settings.HttpPort;
            var url = options.BaseDomain is { Length: > 0 } domain
                ? $"http://{DemoSubdomain}.{domain}:{port}/"
                : $"http://127.0.0.1:{port}/ (the tenant list when other tenants exist)";
            logger.LogInformation("demo tenant '{Subdomain}' ({State}) at {Url}, login admin / admin", demo.Subdomain, demo.State, url);
        }
    }
}

/// <summary>Suspends tenants whose subscription has ended, once a minute.</summary>
public sealed class SubscriptionExpiryService(TenantLifecycle lifecycle, ILogger<SubscriptionExpiryService> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromMinutes(1));
        try
        {
            do
            {
                try
                {
                    foreach (var subdomain in await lifecycle.SuspendExpiredAsync(stoppingToken))
                    {
                        logger.LogInformation("tenant {Subdomain} suspended: its subscription has expired", subdomain);
                    }
                }
                catch (Npgsql.NpgsqlException e)
                {
                    logger.LogWarning("subscription expiry check failed: {Message}", e.Message);
                }
            }
            while (await timer.WaitForNextTickAsync(stoppingToken));
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Shutting down. A host disposed without being stopped first cancels here, and an uncaught cancellation
            // would be logged as a crash of the service.
        }
    }
}
