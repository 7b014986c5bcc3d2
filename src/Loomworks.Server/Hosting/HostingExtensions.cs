using System.Net;
using Loomworks.Configuration;
using Loomworks.Postgres;
using Loomworks.Tenancy;
using Microsoft.AspNetCore.HttpOverrides;

namespace Loomworks.Server.Hosting;

/// <summary>Logging, Kestrel, PostgreSQL and proxy settings taken from loomworks.conf.</summary>
public static class HostingExtensions
{
    public static void AddLoomworksLogging(this ILoggingBuilder logging, LoomworksSettings settings)
    {
        logging.ClearProviders();
        if (settings.JsonLogs)
        {
            logging.AddJsonConsole(o => o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ ");
        }
        else
        {
            logging.AddSimpleConsole(o =>
            {
                o.SingleLine = true;
                o.TimestampFormat = "yyyy-MM-dd HH:mm:ss.fff ";
                o.UseUtcTimestamp = true;
            });
        }
        logging.SetMinimumLevel(settings.LogLevel);
        // ASP.NET Core's per-request lines are noise at info; they show at debug.
        logging.AddFilter("Microsoft.AspNetCore", settings.LogLevel <= LogLevel.Debug ? settings.LogLevel : LogLevel.Warning);
    }

    public static void AddLoomworksKestrel(this WebApplicationBuilder builder, LoomworksSettings settings)
    {
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = settings.ShutdownTimeout);
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            if (string.IsNullOrEmpty(settings.HttpInterface))
            {
                kestrel.ListenAnyIP(settings.HttpPort);
            }
            else
            {
                kestrel.Listen(IPAddress.Parse(settings.HttpInterface), settings.HttpPort);
            }
        });
    }

    public static void AddLoomworksPostgres(this IServiceCollection services, LoomworksSettings settings, PostgresServer postgres)
    {
        services.AddSingleton(postgres);
        services.AddSingleton(_ => new TenantDataSources(postgres.Endpoint, settings.MaxConnections));
        services.AddSingleton(sp => new ManagementDatabase(sp.GetRequiredService<TenantDataSources>().For(settings.ManagementDatabase),
            ManagementMigrations.All));
        services.AddSingleton<TenantStore>();
    }

    public static void AddLoomworksForwardedHeaders(this IServiceCollection services, LoomworksSettings settings)
    {
        services.Configure<ForwardedHeadersOptions>(options =>
        {
            options.ForwardedHeaders = ForwardedHeaders.XForwardedFor | ForwardedHeaders.XForwardedHost | ForwardedHeaders.XForwardedProto;
            // Only the configured proxies are believed; everyone else could forge X-Forwarded-Host to pick a tenant.
            options.KnownProxies.Clear();
            options.KnownIPNetworks.Clear();
            foreach (var entry in settings.TrustedProxies)
            {
                if (IPAddress.TryParse(entry, out var address))
                {
                    options.KnownProxies.Add(address);
                }
                else
                {
                    options.KnownIPNetworks.Add(System.Net.IPNetwork.Parse(entry));
                }
            }
        });
    }

    public static void UseLoomworksForwardedHeaders(this WebApplication app, LoomworksSettings settings)
    {
        if (settings.ProxyMode)
        {
            app.UseForwardedHeaders();
        }
    }
}
