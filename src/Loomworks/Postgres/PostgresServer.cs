using Loomworks.Configuration;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace Loomworks.Postgres;

/// <summary>
/// The PostgreSQL server Loomworks works against: the external one named by db_host, or the embedded cluster,
/// which is started (or joined) on open and left on dispose; only the server creates it.
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

    /// <summary>Opens the server for a command: an embedded cluster must already exist, none is created.</summary>
    public static Task<PostgresServer> OpenAsync(LoomworksSettings settings, ILogger logger,
        CancellationToken cancellationToken = default) =>
        OpenAsync(settings, logger, ClusterCreation.Never, cancellationToken);

    /// <summary>
    /// Opens the server; <paramref name="creation"/> says whether the embedded cluster may be created (the server's
    /// first start, or --init-cluster). The cluster is checked against its marker (<see cref="ClusterGuard"/>).
    /// </summary>
    public static async Task<PostgresServer> OpenAsync(LoomworksSettings settings, ILogger logger, ClusterCreation creation,
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
            ArchiveCommand = ArchiveCommandFor(settings.DataDir),
            MaxConnections = Math.Max(100, settings.MaxConnections * 2),
            Creation = creation,
            Marker = ClusterMarker.For(settings),
        }, logger);
        await cluster.StartAsync(cancellationToken);
        return new PostgresServer(cluster.Endpoint, cluster);
    }

    /// <summary>The pgBackRest stanza of the embedded cluster (Snapshots configures it).</summary>
    public const string PgBackRestStanza = "loomworks";

    /// <summary>Where Snapshots writes pgBackRest's configuration for the embedded cluster under data_dir.</summary>
    public static string PgBackRestConfigPath(string dataDir) => Path.Combine(dataDir, "pgbackrest", "pgbackrest.conf");

    /// <summary>
    /// archive_command through pgBackRest when it is installed. It is set before Snapshots writes the configuration:
    /// until then archive-push fails and PostgreSQL keeps the WAL and retries, so nothing is lost.
    /// </summary>
    public static string ArchiveCommandFor(string dataDir) =>
        File.Exists(PgBackRestExecutable)
            ? $"{PgBackRestExecutable} --config='{PgBackRestConfigPath(dataDir)}' --stanza={PgBackRestStanza} archive-push %p"
            : "/bin/true";

    public const string PgBackRestExecutable = "/usr/bin/pgbackrest";

    public async ValueTask DisposeAsync()
    {
        if (Embedded is not null)
        {
            await Embedded.StopAsync();
        }
    }
}
