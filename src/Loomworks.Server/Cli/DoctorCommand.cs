using System.CommandLine;
using Loomworks.Configuration;
using Loomworks.Postgres;
using Loomworks.Snapshots;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;

namespace Loomworks.Server.Cli;

/// <summary>Checks what Loomworks needs from this machine and says how to fix each thing that is missing.</summary>
public static class DoctorCommand
{
    public sealed record Check(string Name, bool Passed, string Detail, string? Fix = null);

    public static Command Create(ConfigOptions config)
    {
        var command = new Command("doctor",
            "Check PostgreSQL (reachable, wal_level, archive_mode), pgBackRest (also for an external server) and data_dir; " +
            "print a fix for each failure. Creates nothing: a missing embedded cluster is a failure, not made here.");
        command.SetAction(async (parseResult, cancellationToken) =>
        {
            if (LoomworksCli.LoadSettings(config, parseResult) is not { } settings)
            {
                return LoomworksCli.ConfigErrorExitCode;
            }
            var checks = await RunChecksAsync(settings, cancellationToken);
            foreach (var check in checks)
            {
                Console.WriteLine($"{(check.Passed ? "PASS" : "FAIL")}  {check.Name}: {check.Detail}");
                if (!check.Passed && check.Fix is not null)
                {
                    Console.WriteLine($"      fix: {check.Fix}");
                }
            }
            return checks.All(c => c.Passed) ? 0 : 1;
        });
        return command;
    }

    public static async Task<List<Check>> RunChecksAsync(LoomworksSettings settings, CancellationToken cancellationToken)
    {
        var checks = new List<Check> { DataDirWritable(settings.DataDir), await PgBackRestAsync(cancellationToken) };
        PostgresServer? postgres = null;
        try
        {
            postgres = await PostgresServer.OpenAsync(settings, NullLogger.Instance, cancellationToken);
            await using var connection = new NpgsqlConnection(postgres.Endpoint.ConnectionString("postgres") + ";Pooling=false;Timeout=5");
            await connection.OpenAsync(cancellationToken);
            checks.Add(new Check("postgresql", true,
                $"reachable at {postgres.Endpoint.Host}:{postgres.Endpoint.Port}, version {connection.PostgreSqlVersion}"));
            var walLevel = await ShowAsync(connection, "wal_level", cancellationToken);
            checks.Add(walLevel is "replica" or "logical"
                ? new Check("wal_level", true, walLevel)
                : new Check("wal_level", false, $"{walLevel}; point-in-time restore needs replica",
                    "ALTER SYSTEM SET wal_level = replica; then restart PostgreSQL"));
            var archiveMode = await ShowAsync(connection, "archive_mode", cancellationToken);
            checks.Add(archiveMode is "on" or "always"
                ? new Check("archive_mode", true, archiveMode)
                : new Check("archive_mode", false, $"{archiveMode}; WAL must be archived for point-in-time restore",
                    "ALTER SYSTEM SET archive_mode = on; then restart PostgreSQL"));
            if (postgres.Embedded is not null)
            {
                checks.Add(MarkerCheck(settings));
            }
            else
            {
                // The operator's own server: what pgBackRest needs from it and from the keys that name it.
                foreach (var finding in await ExternalServer.DiagnoseAsync(settings, postgres.Endpoint, connection, cancellationToken))
                {
                    checks.Add(new Check("pgbackrest " + finding.Name, finding.Passed, finding.Detail, finding.Fix));
                }
            }
        }
        catch (ClusterRefusedException e)
        {
            checks.Add(new Check("postgresql", false, e.Problem, e.Fix));
        }
        catch (Exception e) when (e is InvalidOperationException or NpgsqlException or System.Net.Sockets.SocketException)
        {
            checks.Add(new Check("postgresql", false, e.Message,
                settings.UsesEmbeddedPostgres
                    ? $"install PostgreSQL's server ({PostgresBinaries.DebianPackage}) or set db_host to an existing server"
                    : "check db_host, db_port, db_user and db_password, and that the server accepts connections"));
        }
        finally
        {
            if (postgres is not null)
            {
                await postgres.DisposeAsync();
            }
        }
        return checks;
    }

    private static Check MarkerCheck(LoomworksSettings settings)
    {
        var marker = ClusterMarker.For(settings);
        return marker.Read() is { } record
            ? new Check("cluster marker", true, $"{marker.Path} records this cluster (system identifier {record.SystemIdentifier})")
            : new Check("cluster marker", true, $"{marker.Path} records no cluster yet; the server's next start records this one");
    }

    /// <summary>Probes data_dir without creating it: only the server's first start does that.</summary>
    private static Check DataDirWritable(string dataDir)
    {
        if (!Directory.Exists(dataDir))
        {
            return new Check("data_dir", true, $"{dataDir} does not exist yet; `loomworks server` creates it on its first start");
        }
        try
        {
            var probe = Path.Combine(dataDir, $".doctor-{Environment.ProcessId}");
            File.WriteAllText(probe, "");
            File.Delete(probe);
            return new Check("data_dir", true, $"{dataDir} is writable");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return new Check("data_dir", false, $"{dataDir} is not writable: {e.Message}",
                "set data_dir to a folder this user may write, or give it to this user (chown)");
        }
    }

    private static async Task<Check> PgBackRestAsync(CancellationToken cancellationToken)
    {
        try
        {
            var result = await CommandRunner.RunAsync("pgbackrest", ["version"], timeout: TimeSpan.FromSeconds(10),
                cancellationToken: cancellationToken);
            return result.Succeeded
                ? new Check("pgbackrest", true, result.Output.Trim())
                : new Check("pgbackrest", false, result.Diagnostic, "apt-get install pgbackrest");
        }
        catch (InvalidOperationException)
        {
            return new Check("pgbackrest", false, "not installed; snapshots and point-in-time restore need it",
                "apt-get install pgbackrest");
        }
    }

    private static async Task<string> ShowAsync(NpgsqlConnection connection, string setting, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand($"SHOW {setting}", connection);
        return (string)(await command.ExecuteScalarAsync(cancellationToken))!;
    }
}
