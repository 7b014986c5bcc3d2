using System.IO.Compression;
using Loomworks.Filestore;
using Loomworks.Postgres;
using Loomworks.Tenancy;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace Loomworks.Backups;

/// <summary>
/// Odoo's database manager as a library: dump, restore, duplicate, drop, rename, list. Every operation that creates
/// or removes something is a job in loomworks_db_job whose steps are persisted, so a crash is rolled back (restore,
/// duplicate) or finished (drop, rename) by <see cref="RecoverAsync"/>. Callers check the master password first
/// (<see cref="IMasterPasswordCheck"/>).
/// </summary>
public sealed partial class DatabaseManager(
    TenantDataSources dataSources,
    ManagementDatabase management,
    FileStore fileStore,
    TenantRegistration tenants,
    PgTools tools,
    DatabaseManagerOptions options,
    ILogger<DatabaseManager> logger)
{
    public FileStore FileStore => fileStore;

    /// <summary>The places and space on disk for uploads waiting to be restored, shared by every caller of this manager.</summary>
    public UploadSpool Uploads { get; } = new(options);

    private ManagementDatabase Management => management;

    /// <summary>Statements on whole databases of the server: existence, drops, renames, sessions.</summary>
    private readonly DatabaseOperations databases = new(dataSources.For("postgres"), dataSources.EvictAsync);

    /// <summary>
    /// Streams a backup of <paramref name="database"/> into <paramref name="output"/>; nothing is held in memory or on disk.
    /// </summary>
    public async Task DumpAsync(string database, Stream output, BackupFormat format = BackupFormat.Zip,
        bool includeFilestore = true, CancellationToken cancellationToken = default)
    {
        DatabaseNames.Check(database, options.ManagementDatabase);
        if (!await DatabaseExistsAsync(database, cancellationToken))
        {
            throw new DatabaseManagerException(DatabaseManagerError.NotFound, $"database '{database}' does not exist");
        }
        if (format == BackupFormat.Dump)
        {
            using var dump = tools.Start("pg_dump", ["--no-owner", "--no-acl", "--format=c", "-d", database], redirectOutput: true);
            await dump.CopyOutputToAsync(output, cancellationToken);
            await dump.WaitAsync(cancellationToken);
            return;
        }
        var manifest = await ManifestAsync(database, cancellationToken);
        await using var zip = await ZipArchive.CreateAsync(output, ZipArchiveMode.Create, leaveOpen: true, entryNameEncoding: null,
            cancellationToken);
        await using (var entry = await zip.CreateEntry(BackupManifest.FileName, CompressionLevel.Optimal).OpenAsync(cancellationToken))
        {
            await entry.WriteAsync(manifest.ToJson(), cancellationToken);
        }
        using (var dump = tools.Start("pg_dump", ["--no-owner", "--no-acl", "-d", database], redirectOutput: true))
        {
            var dumpEntry = zip.CreateEntry(BackupManifest.DumpFileName, CompressionLevel.Fastest);
            await using (var entry = await dumpEntry.OpenAsync(cancellationToken))
            {
                await dump.CopyOutputToAsync(entry, cancellationToken);
            }
            // A failed pg_dump must not end in a well-formed zip: the exception leaves the archive unfinished.
            await dump.WaitAsync(cancellationToken);
        }
        var folder = fileStore.DatabaseFolder(database);
        if (includeFilestore && Directory.Exists(folder))
        {
            foreach (var file in Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories))
            {
                var relative = Path.GetRelativePath(folder, file).Replace('\\', '/');
                if (relative.StartsWith(".tmp-", StringComparison.Ordinal))
                {
                    continue;
                }
                await using var source = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, useAsync: true);
                await using var entry = await zip.CreateEntry(BackupManifest.FilestorePrefix + relative, CompressionLevel.Fastest)
                    .OpenAsync(cancellationToken);
                await source.CopyToAsync(entry, cancellationToken);
            }
        }
    }

    /// <summary>Writes a backup to a file: under a temporary name first, so a failed dump never leaves a file that looks whole.</summary>
    public async Task DumpToFileAsync(string database, string path, BackupFormat format = BackupFormat.Zip,
        CancellationToken cancellationToken = default)
    {
        var partial = path + ".partial";
        try
        {
            await using (var file = new FileStream(partial, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20, useAsync: true))
            {
                await DumpAsync(database, file, format, cancellationToken: cancellationToken);
            }
            File.Move(partial, path, overwrite: true);
        }
        finally
        {
            File.Delete(partial);
        }
    }

    private async Task<BackupManifest> ManifestAsync(string database, CancellationToken cancellationToken)
    {
        await using var connection = await dataSources.For(database).OpenConnectionAsync(cancellationToken);
        var schema = await SchemaMigrator.CurrentVersionAsync(connection, cancellationToken);
        return new BackupManifest(database, LoomworksVersion.Full, connection.PostgreSqlVersion.ToString(2), schema);
    }

    private async Task EnsureFreeAsync(string name, CancellationToken cancellationToken)
    {
        if (await DatabaseExistsAsync(name, cancellationToken) || await tenants.IsTakenAsync(name, cancellationToken))
        {
            throw new DatabaseManagerException(DatabaseManagerError.AlreadyExists, $"database '{name}' already exists");
        }
        if (Directory.Exists(fileStore.DatabaseFolder(name)))
        {
            throw new DatabaseManagerException(DatabaseManagerError.AlreadyExists,
                $"files of a database named '{name}' remain in {fileStore.DatabaseFolder(name)}; move them away first");
        }
    }

    public Task<bool> DatabaseExistsAsync(string name, CancellationToken cancellationToken) =>
        databases.ExistsAsync(name, cancellationToken);

    private async Task CreateDatabaseAsync(string name, string template, CancellationToken cancellationToken)
    {
        var sql = $"CREATE DATABASE {DatabaseAdmin.QuoteIdentifier(name)} TEMPLATE {DatabaseAdmin.QuoteIdentifier(template)} " +
            "ENCODING 'UTF8'";
        if (template == "template0")
        {
            await databases.ExecuteAsync(sql, cancellationToken);
            return;
        }
        // A template must have no other sessions: ours are closed, the rest are ended (as Odoo does).
        await dataSources.EvictAsync(template);
        await databases.RunWithSessionsEndedAsync(template, sql, cancellationToken);
    }

    /// <summary>A connection to a database being made, outside the shared pools (which would keep it busy for a later drop).</summary>
    private async Task<NpgsqlConnection> OpenOwnAsync(string database, CancellationToken cancellationToken)
    {
        var connection = new NpgsqlConnection(dataSources.Endpoint.ConnectionString(database, "loomworks-backups") + ";Pooling=false");
        await connection.OpenAsync(cancellationToken);
        return connection;
    }

    private static DatabaseManagerException Wrap(Exception e, string verb) => e switch
    {
        DatabaseManagerException d => d,
        OperationCanceledException =>
            new DatabaseManagerException(DatabaseManagerError.Failed, $"{verb} was cancelled; nothing was kept", e),
        _ => new DatabaseManagerException(DatabaseManagerError.Failed, $"{verb} failed: {e.Message}; nothing was kept", e),
    };
}
