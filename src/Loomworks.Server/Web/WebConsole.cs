using Loomworks.Server.Web.Manage;
using Loomworks.Server.Web.Operators;

namespace Loomworks.Server.Web;

/// <summary>
/// The web console: Razor components rendered on the server (plain forms, no client framework), their stylesheet and
/// script, antiforgery on every form post and a strict Content-Security-Policy on every page.
/// </summary>
public static class WebConsole
{
    /// <summary>
    /// Nothing but this host's own stylesheet, script and images; no inline code, no framing, no foreign forms. Scripts
    /// connect only to this host: the restore form's upload and the restore progress poll.
    /// </summary>
    public const string ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        + "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

    public static IServiceCollection AddWebConsole(this IServiceCollection services)
    {
        services.AddRazorComponents();
        services.AddSingleton<ServerInventory>();
        services.AddSingleton<OperatorSession>();
        services.AddAntiforgery(options =>
        {
            options.Cookie.Name = "loomworks_antiforgery";
            options.Cookie.SameSite = SameSiteMode.Strict;
        });
        return services;
    }

    public static WebApplication MapWebConsole(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        app.Use((context, next) =>
        {
            context.Response.OnStarting(() =>
            {
                var headers = context.Response.Headers;
                if (context.Response.ContentType?.StartsWith("text/html", StringComparison.OrdinalIgnoreCase) == true)
                {
                    headers.ContentSecurityPolicy = ContentSecurityPolicy;
                    headers.XFrameOptions = "DENY";
                    headers["Referrer-Policy"] = "same-origin";
                }
                headers.XContentTypeOptions = "nosniff";
                return Task.CompletedTask;
            });
            return next(context);
        });
        app.UseAntiforgery();
        app.MapStaticAssets();
        app.MapManagerTransfers();
        app.MapRazorComponents<App>();
        return app;
    }
}
