using Loomworks.Configuration;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace Loomworks.Postgres;

/// <summary>
/// The PostgreSQL server Loomworks works against: the external one named by db_host, or the embedded cluster,
/// which is started (or joined) on open and left on dispose.
/// </summary>
public sealed class PostgresServer : IAsyncDisposable
{
    public const int EmbeddedDefaultPort = 54320;

    private PostgresServer(PostgresEndpoint endpoint, EmbeddedCluster? embedded)
    {
        Endpoint = endpoint;
        Embedded = embedded;
    }

    public PostgresEndpoint Endpoint { get; }
    public EmbeddedCluster? Embedded { get; }

    public static async Task<PostgresServer> OpenAsync(LoomworksSettings settings, ILogger logger,
        CancellationToken cancellationToken = default)
    {
        if (!settings.UsesEmbeddedPostgres)
        {
            var sslMode = Enum.TryParse<SslMode>(settings.Get(ConfigKeys.DbSslMode)?.Replace("-", "", StringComparison.Ordinal),
                ignoreCase: true, out var mode) ? mode : SslMode.Prefer;
            var endpoint = new PostgresEndpoint(settings.DbHost!, settings.DbPort ?? 5432,
                settings.DbUser ?? Environment.UserName, settings.DbPassword, sslMode);
            return new PostgresServer(endpoint, null);
        }
        var cluster = new EmbeddedCluster(new EmbeddedClusterOptions
        {
            DataDir = settings.DataDir,
            Port = settings.DbPort ?? EmbeddedDefaultPort,
            BinDir = settings.Get(ConfigKeys.PgBinDir),
            ArchiveTimeoutSeconds = settings.GetInt(ConfigKeys.ArchiveTimeout),
            MaxConnections = Math.Max(100, settings.MaxConnections * 2),
        }, logger);
        await cluster.StartAsync(cancellationToken);
        return new PostgresServer(cluster.Endpoint, cluster);
    }

    public async ValueTask DisposeAsync()
    {
        if (Embedded is not null)
        {
            await Embedded.StopAsync();
        }
    }
}
