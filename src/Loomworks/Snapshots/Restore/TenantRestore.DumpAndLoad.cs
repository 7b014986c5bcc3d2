using System.Globalization;
using System.Text;
using Loomworks.Postgres;
using Loomworks.Tenancy;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace Loomworks.Snapshots;

/// <summary>Dump of the tenant from the scratch copy and its load into a new database on the live server.</summary>
public sealed partial class TenantRestore
{
    /// <summary>(Re)creates the empty database the copy is loaded into, with the source's owner, encoding and collation.</summary>
    private async Task CreateNewDatabaseAsync(RestoreJob job, CancellationToken cancellationToken)
    {
        var target = DatabaseAdmin.QuoteIdentifier(job.NewDatabase);
        await databases.DropAsync(job.NewDatabase, cancellationToken);
        string owner, encoding, collate, ctype;
        await using (var source = admin.CreateCommand("""
            SELECT pg_get_userbyid(datdba), pg_encoding_to_char(encoding), datcollate, datctype FROM pg_database WHERE datname = $1
            """))
        {
            source.Parameters.AddWithValue(job.SourceDatabase);
            await using var reader = await source.ExecuteReaderAsync(cancellationToken);
            if (!await reader.ReadAsync(cancellationToken))
            {
                throw new SnapshotException(SnapshotErrorKind.NotFound, $"database {job.SourceDatabase} is gone");
            }
            (owner, encoding, collate, ctype) = (reader.GetString(0), reader.GetString(1), reader.GetString(2), reader.GetString(3));
        }
        await databases.ExecuteAsync($"CREATE DATABASE {target} OWNER {DatabaseAdmin.QuoteIdentifier(owner)} TEMPLATE template0 " +
            $"ENCODING {DatabaseAdmin.QuoteLiteral(encoding)} LC_COLLATE {DatabaseAdmin.QuoteLiteral(collate)} " +
            $"LC_CTYPE {DatabaseAdmin.QuoteLiteral(ctype)}", cancellationToken);
    }

    /// <summary>
    /// Copies the tenant from the scratch copy into the new database as a plain dump and load would: pg_dump -Fd -j2
    /// (uncompressed) into the scratch folder, then pg_restore -j2, with the tables' rows loaded frozen (see
    /// <see cref="LoadFrozenAsync"/>). Piping one into the other would overlap them but force a single job on each
    /// side, which is slower. Both sides, and the live backends that serve the load, run at the priority
    /// <paramref name="priority"/> gives them, which follows the other tenants' work.
    /// </summary>
    private async Task CopyAsync(RestoreJob job, string scratch, string run, int port, RestorePriority priority, Action dumped,
        CancellationToken cancellationToken)
    {
        var pace = priority.Pace;
        var pacedBefore = pace.PacedFor;
        try
        {
            await DumpAndLoadAsync(job, scratch, run, port, dumped, priority, cancellationToken);
        }
        finally
        {
            LastLoadPacedFor = pace.PacedFor - pacedBefore;
            if (LastLoadPacedFor > TimeSpan.Zero)
            {
                logger.LogInformation(
                    "Restore job {Job}: the load waited {Seconds:F1} s in all to keep its pace beside other tenants' work",
                    job.Id, LastLoadPacedFor.TotalSeconds);
            }
        }
    }

    /// <summary>The application name of the load's sessions, by which the live backends serving it are found.</summary>
    private static string LoadApplication(RestoreJob job) => "loomworks-restore-" + job.Id.ToString(CultureInfo.InvariantCulture);

    private async Task DumpAndLoadAsync(RestoreJob job, string scratch, string run, int port, Action dumped, RestorePriority priority,
        CancellationToken cancellationToken)
    {
        var dump = Path.Combine(scratch, "dump");
        if (Directory.Exists(dump))
        {
            // A dump cut short by a crash is taken again: pg_dump -Fd refuses a folder that is not empty.
            Directory.Delete(dump, recursive: true);
        }
        var (dumpProgram, dumpArguments) = priority.Wrap(binaries.Value["pg_dump"],
            ["-h", run, "-p", port.ToString(CultureInfo.InvariantCulture), "-U", EmbeddedCluster.Superuser,
             "-Fd", "-j", "2", "-Z0", "-f", dump, job.SourceDatabase]);
        Check(await CommandRunner.RunAsync(dumpProgram, dumpArguments, CommandRunner.ServerUser, TimeSpan.FromHours(6), cancellationToken),
            "pg_dump of the restored copy");
        dumped();

        var application = LoadApplication(job);
        var environment = new Dictionary<string, string>
        {
            ["PGAPPNAME"] = application,
            // Index builds get memory; commits need not wait for the disk, as nothing sees the database before the swap
            // and FlushLoadAsync makes its WAL durable before the load is recorded as done. The load's backends hand
            // what they write to the disk every 256 kB (backend_flush_after) instead of leaving it dirty in the page
            // cache: a gigabyte of it written back at once queues every other tenant's commit behind it.
            ["PGOPTIONS"] = "-c maintenance_work_mem=256MB -c synchronous_commit=off -c backend_flush_after=256kB" +
                // Two jobs already keep two CPUs busy, and kept to one CPU beside a working tenant the load gains
                // nothing from parallel index builds, whose workers start on any CPU until the priority loop finds them.
                (LowPriorityCpus.Cpus.Count == 1 ? " -c max_parallel_maintenance_workers=0" : ""),
        };
        if (liveEndpoint.Password is { } password)
        {
            environment["PGPASSWORD"] = password;
        }
        var contents = await TableOfContentsAsync(dump, cancellationToken);
        var frozen = await FrozenTablesAsync(job, dump, contents, run, port, cancellationToken);
        if (frozen.Count == 0)
        {
            await RestoreDumpAsync(job, dump, environment, priority, [], cancellationToken);
            return;
        }
        await RestoreDumpAsync(job, dump, environment, priority, ["--section=pre-data"], cancellationToken);
        await LoadFrozenAsync(job, scratch, frozen, environment, priority, cancellationToken);
        // Everything else of the data section (sequence values, large objects) and all of post-data.
        var list = Path.Combine(scratch, "rest.list");
        var handled = frozen.Select(t => t.DumpId).ToHashSet();
        await File.WriteAllLinesAsync(list,
            contents.Select(line => TocDumpId(line) is { } id && handled.Contains(id) ? ";" + line : line), cancellationToken);
        CommandRunner.GiveToServerUser(list);
        await RestoreDumpAsync(job, dump, environment, priority, ["--section=data", "--section=post-data", "-L", list],
            cancellationToken);
    }

    private async Task RestoreDumpAsync(RestoreJob job, string dump, Dictionary<string, string> environment, RestorePriority priority,
        IEnumerable<string> options, CancellationToken cancellationToken)
    {
        var (program, arguments) = priority.Wrap(binaries.Value["pg_restore"],
            [.. LiveConnection(job.NewDatabase), "-j", "2", .. options, dump]);
        Check(await CommandRunner.RunAsync(program, arguments, CommandRunner.ServerUser, TimeSpan.FromHours(6), environment,
            cancellationToken), $"pg_restore into {job.NewDatabase}");
    }

    /// <summary>The client options that reach <paramref name="database"/> on the live server, for pg_restore and psql.</summary>
    private string[] LiveConnection(string database) =>
        ["-h", liveEndpoint.Host, "-p", liveEndpoint.Port.ToString(CultureInfo.InvariantCulture), "-U", liveEndpoint.Username,
         "-d", database];

    private async Task<IReadOnlyList<string>> TableOfContentsAsync(string dump, CancellationToken cancellationToken)
    {
        var result = await CommandRunner.RunAsync(binaries.Value["pg_restore"], ["-l", dump], CommandRunner.ServerUser,
            TimeSpan.FromMinutes(10), cancellationToken);
        Check(result, "pg_restore -l of the dump");
        return result.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
    }

    /// <summary>A tool that failed: the error names it and carries its messages.</summary>
    private static void Check(CommandResult result, string what)
    {
        if (!result.Succeeded)
        {
            throw new SnapshotException(SnapshotErrorKind.Unavailable,
                $"{what} failed (exit {result.ExitCode}): {Shorten(result.Diagnostic, 2000)}");
        }
    }

    /// <summary>
    /// The load committed without waiting for the disk: one synchronous commit on the same server flushes the WAL up to
    /// it, and so all of the load, before the step that lets a crash finish the swap is recorded.
    /// </summary>
    private async Task FlushLoadAsync(string database, CancellationToken cancellationToken)
    {
        await using var connection = await admin.OpenConnectionAsync(cancellationToken);
        await using var command = new NpgsqlCommand(
            $"SET synchronous_commit = on; COMMENT ON DATABASE {DatabaseAdmin.QuoteIdentifier(database)} IS NULL", connection);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>
    /// A snapshot from before a Loomworks upgrade lacks the newer tenant migrations: the restored database gets them
    /// before the swap, as any tenant does at start. A database without the tenant schema is left as it is.
    /// </summary>
    private async Task UpgradeSchemaAsync(string database, string target, CancellationToken cancellationToken)
    {
        if (Schema is null)
        {
            return;
        }
        var builder = new NpgsqlConnectionStringBuilder(liveEndpoint.ConnectionString(database)) { Pooling = false };
        await using var connection = new NpgsqlConnection(builder.ConnectionString);
        await connection.OpenAsync(cancellationToken);
        if (await TenantProvisioner.UpgradeSchemaAsync(connection, Schema, cancellationToken) == 0)
        {
            return;
        }
        // Tables a migration added belong to the tenant's login role as the others do, once the role exists.
        var role = TenantProvisioner.RoleNameFor(target);
        await using var exists = new NpgsqlCommand("SELECT 1 FROM pg_roles WHERE rolname = $1", connection);
        exists.Parameters.AddWithValue(role);
        if (await exists.ExecuteScalarAsync(cancellationToken) is null)
        {
            return;
        }
        var quotedRole = DatabaseAdmin.QuoteIdentifier(role);
        await using var grant = new NpgsqlCommand($"""
            GRANT USAGE, CREATE ON SCHEMA public TO {quotedRole};
            GRANT ALL ON ALL TABLES IN SCHEMA public TO {quotedRole};
            GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {quotedRole}
            """, connection);
        await grant.ExecuteNonQueryAsync(cancellationToken);
    }
}
