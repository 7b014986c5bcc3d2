using System.IO.Compression;
using Loomworks.Filestore;
using Loomworks.Postgres;
using Loomworks.Tenancy;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace Loomworks.Backups;

/// <summary>Restore of a backup (zip or custom-format dump) as a new tenant: checks, load, adjustments, files.</summary>
public sealed partial class DatabaseManager
{
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
                await using var file = new FileStream(target, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16,
                    useAsync: true);
                await source.CopyToAsync(file, cancellationToken);
            }
            catch (InvalidDataException e)
            {
                throw new DatabaseManagerException(DatabaseManagerError.InvalidBackup,
                    $"{entry.FullName} in the zip is damaged: {e.Message}", e);
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
            throw new DatabaseManagerException(DatabaseManagerError.InvalidBackup,
                $"the dump cannot be read (truncated or damaged?): {e.Message}", e);
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
}
