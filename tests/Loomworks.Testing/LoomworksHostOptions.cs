using System.Globalization;
using Loomworks.Postgres;
using Microsoft.AspNetCore.Builder;

namespace Loomworks.Testing;

/// <summary>What a <see cref="LoomworksHost"/> starts with: loomworks.conf keys and a few hooks around the build.</summary>
public sealed class LoomworksHostOptions
{
    internal LoomworksHostOptions()
    {
    }

    /// <summary>loomworks.conf keys. http_interface (127.0.0.1) and log_level (warn) are set; http_port and data_dir
    /// are filled in (a free port, a scratch folder of the host's own) unless given.</summary>
    public Dictionary<string, string> Settings { get; } = new()
    {
        ["http_interface"] = "127.0.0.1",
        ["log_level"] = "warn",
    };

    /// <summary>An open server to use instead of one opened from <see cref="Settings"/>; the host leaves it open.</summary>
    public PostgresServer? Server { get; set; }

    /// <summary>Creates the management database if it is missing and migrates it before the host starts.</summary>
    public bool MigrateManagement { get; set; }

    /// <summary>Waits until the tenant change listener listens before the host is handed out.</summary>
    public bool WaitForTenantListener { get; set; }

    /// <summary>Runs on the builder after every feature is added: services to replace, say.</summary>
    public Action<WebApplicationBuilder>? Builder { get; set; }

    /// <summary>Runs on the built app before it starts: an extra endpoint, say.</summary>
    public Action<WebApplication>? App { get; set; }

    /// <summary>Runs after the management migration and before the host listens: tenants to create, say.</summary>
    public Func<IServiceProvider, Task>? BeforeStart { get; set; }

    /// <summary>Reaches PostgreSQL at <paramref name="endpoint"/> (db_host, db_port, db_user).</summary>
    public LoomworksHostOptions UseCluster(PostgresEndpoint endpoint)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        Settings["db_host"] = endpoint.Host;
        Settings["db_port"] = endpoint.Port.ToString(CultureInfo.InvariantCulture);
        Settings["db_user"] = endpoint.Username;
        return this;
    }

    /// <summary>Sets each key of <paramref name="values"/>, overriding what is there.</summary>
    public LoomworksHostOptions Set(IEnumerable<KeyValuePair<string, string>>? values)
    {
        foreach (var (key, value) in values ?? [])
        {
            Settings[key] = value;
        }
        return this;
    }

    public LoomworksHostOptions Set(string key, string value)
    {
        Settings[key] = value;
        return this;
    }
}
