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
    /// <summary>Advisory-lock class of running jobs: a job whose lock is free has lost its process.</summary>
    private const int JobLockClass = 0x4C57_4442; // "LWDB"

    public FileStore FileStore => fileStore;

    /// <summary>The places and space on disk for uploads waiting to be restored, shared by every caller of this manager.</summary>
    public UploadSpool Uploads { get; } = new(options);

    private ManagementDatabase Management => management;

    // ---------------------------------------------------------------- dump

    /// <summary>Streams a backup of <paramref name="database"/> into <paramref name="output"/>; nothing is held in memory or on disk.</summary>
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
            await using (var entry = await zip.CreateEntry(BackupManifest.DumpFileName, CompressionLevel.Fastest).OpenAsync(cancellationToken))
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

    // ---------------------------------------------------------------- restore

    /// <summary>Restores from a stream (an upload, base64 decoded on the fly): spooled to a file under data_dir, then restored.</summary>
    public async Task RestoreAsync(string name, Stream input, bool copy = false, bool neutralize = false,
        CancellationToken cancellationToken = default)
    {
        DatabaseNames.Check(name, options.ManagementDatabase);
        using var upload = Uploads.Begin("restore");
        await upload.WriteFromAsync(input, cancellationToken);
        await RestoreFileAsync(name, upload.Path, copy, neutralize, cancellationToken);
    }

    /// <summary>
    /// Restores a zip or custom-format dump as the new tenant <paramref name="name"/>. Everything that can be checked
    /// without loading (kind, entry names, sizes, manifest, name free) is checked before anything is created; a
    /// failure while loading removes all that was made.
    /// </summary>
    public async Task RestoreFileAsync(string name, string path, bool copy = false, bool neutralize = false,
        CancellationToken cancellationToken = default)
    {
        DatabaseNames.Check(name, options.ManagementDatabase);
        var format = BackupArchive.Detect(path);
        using var zip = format == BackupFormat.Zip ? BackupArchive.OpenZip(path) : null;
        ZipArchiveEntry? dumpEntry = null;
        if (zip is not null)
        {
            BackupArchive.CheckEntries(zip, options.MaxRestoreBytes, options.MaxCompressionRatio);
            var manifestEntry = zip.GetEntry(BackupManifest.FileName)
                ?? throw new DatabaseManagerException(DatabaseManagerError.InvalidBackup,
                    "not a Loomworks backup: the zip has no manifest.json");
            if (manifestEntry.Length > 1 << 20)
            {
                throw new DatabaseManagerException(DatabaseManagerError.InvalidBackup, "manifest.json is implausibly large");
            }
            byte[] manifestBytes;
            await using (var stream = await manifestEntry.OpenAsync(cancellationToken))
            using (var buffer = new MemoryStream())
            {
                await stream.CopyToAsync(buffer, cancellationToken);
                manifestBytes = buffer.ToArray();
            }
            var manifest = BackupManifest.Parse(manifestBytes);
            CheckSchema(manifest.SchemaVersion);
            dumpEntry = zip.GetEntry(BackupManifest.DumpFileName)
                ?? throw new DatabaseManagerException(DatabaseManagerError.InvalidBackup, "the zip has no dump.sql");
        }
        else
        {
            var listing = await ListCustomDumpAsync(path, cancellationToken);
            if (!listing.Contains(" TABLE public loomworks_schema_migrations ", StringComparison.Ordinal))
            {
                throw new DatabaseManagerException(DatabaseManagerError.InvalidBackup,
                    "this dump is not of a Loomworks database (it has no loomworks_schema_migrations table)");
            }
        }
        await EnsureFreeAsync(name, cancellationToken);

        await using var job = await BeginJobAsync("restore", name, null, TenantStates.Restoring, cancellationToken);
        // The files are unpacked into the staging folder while the dump loads (they are independent); a failure of
        // either stops the other. Nothing reaches the filestore's own folder before the database is loaded and adjusted.
        using var work = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        Task<bool>? files = null;
        try
        {
            await CreateDatabaseAsync(name, "template0", work.Token);
            var role = await RestoreRole.PrepareAsync(dataSources, name, work.Token);
            await job.StepAsync("database_created", work.Token);
            if (zip is not null)
            {
                files = StageFilestoreAsync(name, path, work);
                await LoadPlainAsync(name, dumpEntry!, role, work.Token);
            }
            else
            {
                await LoadCustomAsync(name, path, role, work.Token);
            }
            await job.StepAsync("loaded", work.Token);
            await role.CheckLoadAsync(work.Token);
            // The loaded tables, triggers and functions are the file's: they are changed only by the role that made them.
            await using (var connection = await role.OpenAsync(work.Token))
            {
                CheckSchema(await SchemaMigrator.CurrentVersionAsync(connection, work.Token));
                if (copy)
                {
                    await NewDatabaseUuidAsync(connection, work.Token);
                }
                if (neutralize)
                {
                    await NeutralizeAsync(connection, work.Token);
                }
            }
            await role.EndAsync(dataSources, work.Token);
            await job.StepAsync("adjusted", work.Token);
            if (files is not null && await files)
            {
                Directory.Move(fileStore.StagingFolder(name), fileStore.DatabaseFolder(name));
            }
            await job.StepAsync("files_placed", work.Token);
            await tenants.AdoptAsync(name, work.Token);
            await job.StepAsync("role_created", work.Token);
            await job.FinishAsync(TenantStates.Active, work.Token);
        }
        catch (Exception e) when (e is not CrashForTestingException)
        {
            var reason = await StopStagingAsync(work, files) ?? e;
            await RollBackCreationAsync(job.Id, name, reason.Message, CancellationToken.None);
            throw Wrap(reason, "restore");
        }
        finally
        {
            // Also after a simulated crash: no unpacking may go on behind the recovery that removes the staging folder.
            await StopStagingAsync(work, files);
        }
        logger.LogInformation("Restored database {Database} from a {Format} backup", name, format);
    }

    /// <summary>
    /// Unpacks the zip's filestore/ into the staging folder through its own reader of the file (a ZipArchive is not
    /// safe for two readers at once); true when there were files. A failure cancels <paramref name="work"/>, so the
    /// load beside it stops too.
    /// </summary>
    private Task<bool> StageFilestoreAsync(string name, string path, CancellationTokenSource work) => Task.Run(async () =>
    {
        try
        {
            using var zip = BackupArchive.OpenZip(path);
            return await ExtractFilestoreAsync(name, zip, work.Token);
        }
        catch
        {
            await work.CancelAsync();
            throw;
        }
    });

    /// <summary>Stops the unpacking and waits for it; returns its failure, which is the real reason when it cancelled the load.</summary>
    private static async Task<Exception?> StopStagingAsync(CancellationTokenSource work, Task<bool>? files)
    {
        if (files is null)
        {
            return null;
        }
        if (!files.IsCompleted)
        {
            await work.CancelAsync();
        }
        try
        {
            await files;
            return null;
        }
        catch (OperationCanceledException)
        {
            return null;
        }
        catch (Exception e)
        {
            return e;
        }
    }

    private async Task<bool> ExtractFilestoreAsync(string name, ZipArchive zip, CancellationToken cancellationToken)
    {
        var entries = zip.Entries.Where(e => e.FullName.StartsWith(BackupManifest.FilestorePrefix, StringComparison.Ordinal)
            && !e.FullName.EndsWith('/')).ToList();
        if (entries.Count == 0)
        {
            return false;
        }
        var staging = fileStore.StagingFolder(name);
        if (Directory.Exists(staging))
        {
            Directory.Delete(staging, recursive: true);
        }
        var root = Path.GetFullPath(staging) + Path.DirectorySeparatorChar;
        long total = 0;
        foreach (var entry in entries)
        {
            var relative = entry.FullName[BackupManifest.FilestorePrefix.Length..];
            var target = Path.GetFullPath(Path.Combine(staging, relative));
            if (!target.StartsWith(root, StringComparison.Ordinal))
            {
                throw new DatabaseManagerException(DatabaseManagerError.InvalidBackup, $"unsafe entry name '{entry.FullName}'");
            }
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            try
            {
                await using var source = new CappedReadStream(await entry.OpenAsync(cancellationToken), entry.FullName, entry.Length,
                    entry.CompressedLength, options.MaxCompressionRatio, n => (total += n) <= options.MaxRestoreBytes);
                await using var file = new FileStream(target, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16, useAsync: true);
                await source.CopyToAsync(file, cancellationToken);
            }
            catch (InvalidDataException e)
            {
                throw new DatabaseManagerException(DatabaseManagerError.InvalidBackup, $"{entry.FullName} in the zip is damaged: {e.Message}", e);
            }
        }
        return true;
    }

    private async Task<string> ListCustomDumpAsync(string path, CancellationToken cancellationToken)
    {
        try
        {
            return await tools.RunAsync("pg_restore", ["-l", path], cancellationToken);
        }
        catch (DatabaseManagerException e) when (e.Error == DatabaseManagerError.Failed)
        {
            throw new DatabaseManagerException(DatabaseManagerError.InvalidBackup, $"the dump cannot be read (truncated or damaged?): {e.Message}", e);
        }
    }

    private void CheckSchema(int schemaVersion)
    {
        if (schemaVersion > options.SupportedSchemaVersion)
        {
            throw new DatabaseManagerException(DatabaseManagerError.InvalidBackup,
                $"the backup's schema version {schemaVersion} is newer than this Loomworks ({LoomworksVersion.Full}) knows " +
                $"({options.SupportedSchemaVersion}): upgrade Loomworks first");
        }
    }

    // ---------------------------------------------------------------- duplicate, drop, rename, list

    /// <summary>Copies <paramref name="source"/> to the new tenant <paramref name="name"/> (template copy, new uuid, files by hard links).</summary>
    public async Task DuplicateAsync(string source, string name, bool neutralize = false, CancellationToken cancellationToken = default)
    {
        DatabaseNames.Check(source, options.ManagementDatabase);
        DatabaseNames.Check(name, options.ManagementDatabase);
        if (!await DatabaseExistsAsync(source, cancellationToken))
        {
            throw new DatabaseManagerException(DatabaseManagerError.NotFound, $"database '{source}' does not exist");
        }
        await EnsureFreeAsync(name, cancellationToken);
        await using var job = await BeginJobAsync("duplicate", name, source, TenantStates.Provisioning, cancellationToken);
        try
        {
            await CreateDatabaseAsync(name, source, cancellationToken);
            await job.StepAsync("database_created", cancellationToken);
            await using (var connection = await OpenOwnAsync(name, cancellationToken))
            {
                await NewDatabaseUuidAsync(connection, cancellationToken);
                if (neutralize)
                {
                    await NeutralizeAsync(connection, cancellationToken);
                }
            }
            await job.StepAsync("adjusted", cancellationToken);
            fileStore.CopyByHardLinks(source, name);
            await job.StepAsync("files_placed", cancellationToken);
            await tenants.AdoptAsync(name, cancellationToken);
            await job.StepAsync("role_created", cancellationToken);
            await job.FinishAsync(TenantStates.Active, cancellationToken);
        }
        catch (Exception e) when (e is not CrashForTestingException)
        {
            await RollBackCreationAsync(job.Id, name, e.Message, CancellationToken.None);
            throw Wrap(e, "duplicate");
        }
        logger.LogInformation("Duplicated database {Source} to {Database}", source, name);
    }

    /// <summary>Drops a database, its files and its tenant row; false (as Odoo) when there is no such database.</summary>
    public async Task<bool> DropAsync(string name, CancellationToken cancellationToken = default)
    {
        DatabaseNames.Check(name, options.ManagementDatabase);
        if (!await DatabaseExistsAsync(name, cancellationToken) && !await tenants.IsTakenAsync(name, cancellationToken))
        {
            return false;
        }
        await using var job = await BeginJobAsync("drop", name, null, null, cancellationToken);
        await using (var connection = await management.DataSource.OpenConnectionAsync(cancellationToken))
        {
            await TenantRegistration.SetStateAsync(connection, null, name, TenantStates.Archived, cancellationToken);
        }
        await job.StepAsync("unrouted", cancellationToken);
        await FinishDropAsync(job, name, cancellationToken);
        logger.LogInformation("Dropped database {Database}", name);
        return true;
    }

    private async Task FinishDropAsync(Job job, string name, CancellationToken cancellationToken)
    {
        await dataSources.EvictAsync(name);
        await AdminAsync($"DROP DATABASE IF EXISTS {DatabaseAdmin.QuoteIdentifier(name)} WITH (FORCE)", cancellationToken);
        await tenants.DropRoleAsync(name, cancellationToken);
        await job.StepAsync("database_dropped", cancellationToken);
        fileStore.Drop(name);
        await job.StepAsync("files_dropped", cancellationToken);
        await job.FinishAsync(null, cancellationToken);
    }

    /// <summary>Renames a database with its files and tenant row (subdomain = new name).</summary>
    public async Task RenameAsync(string oldName, string newName, CancellationToken cancellationToken = default)
    {
        DatabaseNames.Check(oldName, options.ManagementDatabase);
        DatabaseNames.Check(newName, options.ManagementDatabase);
        if (!await DatabaseExistsAsync(oldName, cancellationToken))
        {
            throw new DatabaseManagerException(DatabaseManagerError.NotFound, $"database '{oldName}' does not exist");
        }
        await EnsureFreeAsync(newName, cancellationToken);
        await using var job = await BeginJobAsync("rename", newName, oldName, null, cancellationToken);
        await FinishRenameAsync(job, oldName, newName, cancellationToken);
        logger.LogInformation("Renamed database {Old} to {New}", oldName, newName);
    }

    private async Task FinishRenameAsync(Job job, string oldName, string newName, CancellationToken cancellationToken)
    {
        if (await DatabaseExistsAsync(oldName, cancellationToken) && !await DatabaseExistsAsync(newName, cancellationToken))
        {
            await dataSources.EvictAsync(oldName);
            await WithSessionsEndedAsync(oldName,
                $"ALTER DATABASE {DatabaseAdmin.QuoteIdentifier(oldName)} RENAME TO {DatabaseAdmin.QuoteIdentifier(newName)}",
                cancellationToken);
        }
        await tenants.RenameRoleAsync(oldName, newName, cancellationToken);
        await job.StepAsync("database_renamed", cancellationToken);
        fileStore.Rename(oldName, newName);
        await job.StepAsync("files_moved", cancellationToken);
        await job.FinishRenameAsync(oldName, newName, cancellationToken);
    }

    /// <summary>The tenant databases that are served (active or suspended), as Odoo's list: names only.</summary>
    public async Task<IReadOnlyList<string>> ListAsync(CancellationToken cancellationToken = default)
    {
        await using var command = management.DataSource.CreateCommand("""
            SELECT t.database_name FROM loomworks_tenant t JOIN pg_database d ON d.datname = t.database_name
             WHERE t.state IN ('active', 'suspended') ORDER BY 1
            """);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var names = new List<string>();
        while (await reader.ReadAsync(cancellationToken))
        {
            names.Add(reader.GetString(0));
        }
        return names;
    }

    // ---------------------------------------------------------------- recovery

    /// <summary>
    /// Finishes or rolls back the jobs of processes that died: restore and duplicate are rolled back (their input is
    /// gone), drop and rename are finished. Jobs whose process is alive (its advisory lock held) are left alone.
    /// </summary>
    public async Task<int> RecoverAsync(CancellationToken cancellationToken = default)
    {
        var running = new List<(long Id, string Kind, string Name, string? Source)>();
        await using (var command = management.DataSource.CreateCommand(
            "SELECT id, kind, database_name, source_name FROM loomworks_db_job WHERE state = 'running' ORDER BY id"))
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                running.Add((reader.GetInt64(0), reader.GetString(1), reader.GetString(2), reader.IsDBNull(3) ? null : reader.GetString(3)));
            }
        }
        var recovered = 0;
        foreach (var (id, kind, name, source) in running)
        {
            await using var job = await Job.TryAdoptAsync(this, id, cancellationToken);
            if (job is null)
            {
                continue;
            }
            logger.LogWarning("Recovering interrupted {Kind} of database {Database} (job {Id})", kind, name, id);
            switch (kind)
            {
                case "restore" or "duplicate":
                    await RollBackCreationAsync(id, name, "interrupted; rolled back on recovery", cancellationToken);
                    break;
                case "drop":
                    await FinishDropAsync(job, name, cancellationToken);
                    break;
                case "rename":
                    await FinishRenameAsync(job, source!, name, cancellationToken);
                    break;
            }
            recovered++;
        }
        return recovered;
    }

    /// <summary>Removes all a restore or duplicate made: the database, its files (final and staging), its tenant row.</summary>
    private async Task RollBackCreationAsync(long jobId, string name, string reason, CancellationToken cancellationToken)
    {
        await dataSources.EvictAsync(name);
        await AdminAsync($"DROP DATABASE IF EXISTS {DatabaseAdmin.QuoteIdentifier(name)} WITH (FORCE)", cancellationToken);
        await tenants.DropRoleAsync(name, cancellationToken);
        var staging = fileStore.StagingFolder(name);
        if (Directory.Exists(staging))
        {
            Directory.Delete(staging, recursive: true);
        }
        fileStore.Drop(name);
        await using var connection = await management.DataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await TenantRegistration.UnregisterAsync(connection, transaction, name, TenantStates.Restoring, cancellationToken);
        await TenantRegistration.UnregisterAsync(connection, transaction, name, TenantStates.Provisioning, cancellationToken);
        await using (var command = new NpgsqlCommand(
            "UPDATE loomworks_db_job SET state = 'rolled_back', error = $2, updated_at = now() WHERE id = $1", connection, transaction))
        {
            command.Parameters.AddWithValue(jobId);
            command.Parameters.AddWithValue(reason);
            await command.ExecuteNonQueryAsync(cancellationToken);
        }
        await transaction.CommitAsync(cancellationToken);
    }

    // ---------------------------------------------------------------- helpers

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

    public async Task<bool> DatabaseExistsAsync(string name, CancellationToken cancellationToken)
    {
        await using var command = dataSources.For("postgres").CreateCommand("SELECT 1 FROM pg_database WHERE datname = $1");
        command.Parameters.AddWithValue(name);
        return await command.ExecuteScalarAsync(cancellationToken) is not null;
    }

    private async Task CreateDatabaseAsync(string name, string template, CancellationToken cancellationToken)
    {
        var sql = $"CREATE DATABASE {DatabaseAdmin.QuoteIdentifier(name)} TEMPLATE {DatabaseAdmin.QuoteIdentifier(template)} ENCODING 'UTF8'";
        if (template == "template0")
        {
            await AdminAsync(sql, cancellationToken);
            return;
        }
        // A template must have no other sessions: ours are closed, the rest are ended (as Odoo does).
        await dataSources.EvictAsync(template);
        await WithSessionsEndedAsync(template, sql, cancellationToken);
    }

    /// <summary>Runs a statement that needs <paramref name="database"/> free of sessions, ending them and retrying briefly.</summary>
    private async Task WithSessionsEndedAsync(string database, string sql, CancellationToken cancellationToken)
    {
        for (var attempt = 1; ; attempt++)
        {
            await using (var terminate = dataSources.For("postgres").CreateCommand(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()"))
            {
                terminate.Parameters.AddWithValue(database);
                await terminate.ExecuteNonQueryAsync(cancellationToken);
            }
            try
            {
                await AdminAsync(sql, cancellationToken);
                return;
            }
            catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.ObjectInUse && attempt < 10)
            {
                await Task.Delay(100 * attempt, cancellationToken);
            }
        }
    }

    private async Task AdminAsync(string sql, CancellationToken cancellationToken)
    {
        await using var command = dataSources.For("postgres").CreateCommand(sql);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>A connection to a database being made, outside the shared pools (which would keep it busy for a later drop).</summary>
    private async Task<NpgsqlConnection> OpenOwnAsync(string database, CancellationToken cancellationToken)
    {
        var connection = new NpgsqlConnection(dataSources.Endpoint.ConnectionString(database, "loomworks-backups") + ";Pooling=false");
        await connection.OpenAsync(cancellationToken);
        return connection;
    }

    /// <summary>Gives a copied database its own identity, as Odoo's ir.config_parameter init(force=True) does.</summary>
    private static async Task NewDatabaseUuidAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand("""
            DO $$
            BEGIN
                IF to_regclass('public.ir_config_parameter') IS NOT NULL THEN
                    DELETE FROM ir_config_parameter WHERE key IN ('database.uuid', 'database.secret', 'database.create_date');
                    INSERT INTO ir_config_parameter (key, value) VALUES
                        ('database.uuid', gen_random_uuid()::text),
                        ('database.secret', gen_random_uuid()::text),
                        ('database.create_date', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'));
                END IF;
            END $$
            """, connection);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>Odoo's neutralize: no outgoing mail, no scheduled jobs, and a flag saying so.</summary>
    private static async Task NeutralizeAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand("""
            DO $$
            BEGIN
                IF to_regclass('public.ir_cron') IS NOT NULL THEN
                    UPDATE ir_cron SET active = false;
                END IF;
                IF to_regclass('public.ir_mail_server') IS NOT NULL THEN
                    UPDATE ir_mail_server SET active = false;
                END IF;
                IF to_regclass('public.ir_config_parameter') IS NOT NULL THEN
                    DELETE FROM ir_config_parameter WHERE key = 'database.is_neutralized';
                    INSERT INTO ir_config_parameter (key, value) VALUES ('database.is_neutralized', 'true');
                END IF;
            END $$
            """, connection);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    private static DatabaseManagerException Wrap(Exception e, string verb) => e switch
    {
        DatabaseManagerException d => d,
        OperationCanceledException => new DatabaseManagerException(DatabaseManagerError.Failed, $"{verb} was cancelled; nothing was kept", e),
        _ => new DatabaseManagerException(DatabaseManagerError.Failed, $"{verb} failed: {e.Message}; nothing was kept", e),
    };

    private void Reached(string kind, string step)
    {
        var point = $"{kind}:{step}";
        options.StepHook?.Invoke(point);
        if (options.CrashAt == point)
        {
            logger.LogCritical("Crashing at {Point} as {Variable} asks", point, DatabaseManagerOptions.CrashVariable);
            // SIGKILL: no finally blocks, no disposal, exactly what a power cut or OOM kill leaves behind.
            System.Diagnostics.Process.GetCurrentProcess().Kill();
        }
    }

    private async Task<Job> BeginJobAsync(string kind, string name, string? source, string? reserveState,
        CancellationToken cancellationToken)
    {
        var connection = await management.DataSource.OpenConnectionAsync(cancellationToken);
        try
        {
            long id;
            await using (var transaction = await connection.BeginTransactionAsync(cancellationToken))
            {
                await using (var insert = new NpgsqlCommand(
                    "INSERT INTO loomworks_db_job (kind, database_name, source_name, step) VALUES ($1, $2, $3, 'started') RETURNING id",
                    connection, transaction))
                {
                    insert.Parameters.AddWithValue(kind);
                    insert.Parameters.AddWithValue(name);
                    insert.Parameters.Add(new NpgsqlParameter { Value = (object?)source ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Text });
                    try
                    {
                        id = (long)(await insert.ExecuteScalarAsync(cancellationToken))!;
                    }
                    catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.UniqueViolation)
                    {
                        throw new DatabaseManagerException(DatabaseManagerError.AlreadyExists,
                            $"another operation on database '{name}' is in progress");
                    }
                }
                if (reserveState is not null)
                {
                    await TenantRegistration.ReserveAsync(connection, transaction, name, reserveState, cancellationToken);
                }
                await transaction.CommitAsync(cancellationToken);
            }
            var job = new Job(this, connection, id, kind, name);
            await job.LockAsync(cancellationToken);
            Reached(kind, "started");
            return job;
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }

    /// <summary>A running job: its row, and a session holding its advisory lock for as long as this process works on it.</summary>
    private sealed class Job(DatabaseManager manager, NpgsqlConnection connection, long id, string kind, string name) : IAsyncDisposable
    {
        public long Id => id;

        public static async Task<Job?> TryAdoptAsync(DatabaseManager manager, long id, CancellationToken cancellationToken)
        {
            var connection = await manager.Management.DataSource.OpenConnectionAsync(cancellationToken);
            await using var command = new NpgsqlCommand(
                "SELECT pg_try_advisory_lock($1, $2::int), kind, database_name FROM loomworks_db_job WHERE id = $2 AND state = 'running'",
                connection);
            command.Parameters.AddWithValue(JobLockClass);
            command.Parameters.AddWithValue((int)id);
            await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
            {
                if (await reader.ReadAsync(cancellationToken) && reader.GetBoolean(0))
                {
                    return new Job(manager, connection, id, reader.GetString(1), reader.GetString(2));
                }
            }
            await connection.DisposeAsync();
            return null;
        }

        public async Task LockAsync(CancellationToken cancellationToken)
        {
            await using var command = new NpgsqlCommand("SELECT pg_advisory_lock($1, $2::int)", connection);
            command.Parameters.AddWithValue(JobLockClass);
            command.Parameters.AddWithValue((int)id);
            await command.ExecuteNonQueryAsync(cancellationToken);
        }

        public async Task StepAsync(string step, CancellationToken cancellationToken)
        {
            await using (var command = new NpgsqlCommand(
                "UPDATE loomworks_db_job SET step = $2, updated_at = now() WHERE id = $1", connection))
            {
                command.Parameters.AddWithValue(id);
                command.Parameters.AddWithValue(step);
                await command.ExecuteNonQueryAsync(cancellationToken);
            }
            manager.Reached(kind, step);
        }

        /// <summary>Marks the job done and, in the same transaction, the tenant row: activated, or removed when <paramref name="activeState"/> is null.</summary>
        public async Task FinishAsync(string? activeState, CancellationToken cancellationToken)
        {
            await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
            if (activeState is not null)
            {
                await TenantRegistration.SetStateAsync(connection, transaction, name, activeState, cancellationToken);
            }
            else
            {
                await TenantRegistration.UnregisterAsync(connection, transaction, name, null, cancellationToken);
            }
            await DoneAsync(transaction, cancellationToken);
            await transaction.CommitAsync(cancellationToken);
        }

        public async Task FinishRenameAsync(string oldName, string newName, CancellationToken cancellationToken)
        {
            await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
            await TenantRegistration.RenameAsync(connection, transaction, oldName, newName, cancellationToken);
            await DoneAsync(transaction, cancellationToken);
            await transaction.CommitAsync(cancellationToken);
        }

        private async Task DoneAsync(NpgsqlTransaction transaction, CancellationToken cancellationToken)
        {
            await using var command = new NpgsqlCommand(
                "UPDATE loomworks_db_job SET state = 'done', step = 'done', updated_at = now() WHERE id = $1", connection, transaction);
            command.Parameters.AddWithValue(id);
            await command.ExecuteNonQueryAsync(cancellationToken);
        }

        public async ValueTask DisposeAsync()
        {
            // Closing the session releases the advisory lock.
            await connection.DisposeAsync();
        }
    }
}

/// <summary>Thrown by the in-process test hook to stop an operation where a crash would, skipping its clean-up.</summary>
internal sealed class CrashForTestingException(string point) : Exception($"simulated crash at {point}");
