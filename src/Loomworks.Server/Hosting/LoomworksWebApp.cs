using Loomworks.Configuration;
using Loomworks.Postgres;
using Loomworks.Server.Ai;
using Loomworks.Server.Backups;
using Loomworks.Server.Health;
using Loomworks.Server.Tenancy;
using Loomworks.Server.Operations;
using Loomworks.Server.Rpc;
using Loomworks.Server.Snapshots;
using Loomworks.Server.Web;
using Loomworks.Server.Web.Console;

namespace Loomworks.Server.Hosting;

/// <summary>The web server's table of contents: one Add per feature, one Map per endpoint group.</summary>
public static class LoomworksWebApp
{
    public static WebApplication Build(LoomworksSettings settings, PostgresServer postgres,
        Action<WebApplicationBuilder>? configure = null)
    {
        // No reload of appsettings.json (Loomworks reads loomworks.conf): it would watch the whole working directory,
        // which is data_dir in the packaged service, and wake this process on every write PostgreSQL makes below it.
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions
        {
            ApplicationName = "loomworks",
            Args = ["--hostBuilder:reloadConfigOnChange=false"],
        });
        builder.Logging.AddLoomworksLogging(settings);
        builder.AddLoomworksKestrel(settings);
        builder.Services.AddLoomworksCore(settings, postgres);
        builder.Services.AddLoomworksForwardedHeaders(settings);
        builder.Services.AddAdminApi();
        builder.Services.AddWebConsole();
        builder.Services.AddTenantConsole();
        configure?.Invoke(builder);

        var app = builder.Build();
        app.UseDatabaseUnavailableAnswers();
        app.UseLoomworksForwardedHeaders(settings);
        app.UseLoomworksTenancy();
        app.UseAdminApiRefusals();
        app.MapWebConsole();
        app.MapTenantConsole();
        app.MapHealth();
        app.MapTenantPages();
        app.MapDatabaseManager();
        app.MapRpc();
        app.MapWebSessions();
        app.MapAgents();
        var adminApi = app.MapAdminApi();
        adminApi.MapTenantAdminApi();
        adminApi.MapSnapshots();
        adminApi.MapOperations();
        return app;
    }
}
