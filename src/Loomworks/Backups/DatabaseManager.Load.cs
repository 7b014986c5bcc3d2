using System.IO.Compression;
using System.Security.Cryptography;

namespace Loomworks.Backups;

/// <summary>
/// The load of a restore: the backup's SQL runs as the new tenant's own role (<see cref="RestoreRole"/>), never as
/// the server's administrator, since a backup is a file its tenant may have written.
/// </summary>
public sealed partial class DatabaseManager
{
    /// <summary>Words of PostgreSQL's and psql's refusals of what a role without privileges asked for.</summary>
    private static readonly string[] Refusals =
    [
        "permission denied", "must be superuser", "must be owner", "must be member of role", "must have privileges",
        "must have admin option", "must be able to SET ROLE", "backslash commands are restricted",
        "cannot run inside a transaction block", "\\unrestrict: wrong key",
    ];

    private async Task LoadPlainAsync(string name, ZipArchiveEntry dumpEntry, RestoreRole role, CancellationToken cancellationToken)
    {
        long total = 0;
        // --echo-errors: the refusal names the statement that failed.
        using var psql = tools.Start("psql",
            ["-X", "-q", "-b", "-v", "ON_ERROR_STOP=1", "--single-transaction", "-o", "/dev/null", "-d", name, "-f", "-"],
            redirectInput: true, login: role.Login);
        var sent = false;
        try
        {
            await using var source = new RestrictedDumpStream(new CappedReadStream(await dumpEntry.OpenAsync(cancellationToken),
                dumpEntry.FullName, dumpEntry.Length, dumpEntry.CompressedLength, options.MaxCompressionRatio,
                n => (total += n) <= options.MaxRestoreBytes), Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(24)));
            var tail = new DumpTail();
            await psql.FeedInputAsync(source, tail.Add, cancellationToken);
            // Closing psql's input commits its transaction; a dump cut at a statement boundary would load without error,
            // so the input must first be seen to end as every pg_dump output does.
            if (!tail.IsComplete)
            {
                throw new DatabaseManagerException(DatabaseManagerError.InvalidBackup,
                    $"dump.sql in the zip is truncated: it does not end with pg_dump's \"{DumpTail.CompletionLine}\" line; " +
                    "nothing was restored");
            }
            psql.Process.StandardInput.Close();
            sent = true;
        }
        catch (IOException) when (psql.Process.WaitForExit(TimeSpan.FromSeconds(10)))
        {
            // psql stopped reading (a failed statement with ON_ERROR_STOP): its own message is the reason. The broken pipe
            // can be seen a moment before psql has exited, so it is given that moment.
            sent = true;
        }
        catch (InvalidDataException e)
        {
            throw new DatabaseManagerException(DatabaseManagerError.InvalidBackup, $"dump.sql in the zip is damaged: {e.Message}", e);
        }
        finally
        {
            if (!sent)
            {
                // Half a dump must never be committed: psql runs it in one transaction, and dies uncommitted here.
                psql.Kill();
            }
        }
        await WaitForLoadAsync(psql, cancellationToken);
    }

    private async Task LoadCustomAsync(string name, string path, RestoreRole role, CancellationToken cancellationToken)
    {
        using var restore = tools.Start("pg_restore", PgRestoreArguments(name, path, options.RestoreJobs), login: role.Login);
        await WaitForLoadAsync(restore, cancellationToken);
    }

    /// <summary>pg_restore of a custom-format file into an empty database, in parallel (a file on disk allows it).</summary>
    public static IReadOnlyList<string> PgRestoreArguments(string database, string path, int jobs) =>
        ["--no-owner", "--no-acl", "--exit-on-error", $"--jobs={Math.Max(1, jobs)}", "-d", database, path];

    /// <summary>A load refused for asking more than the tenant's role may do is the backup's fault, not the server's.</summary>
    private static async Task WaitForLoadAsync(PgProcess load, CancellationToken cancellationToken)
    {
        try
        {
            await load.WaitAsync(cancellationToken);
        }
        catch (DatabaseManagerException e) when (e.Error == DatabaseManagerError.Failed
            && Refusals.Any(r => load.Error.Contains(r, StringComparison.Ordinal)))
        {
            throw new DatabaseManagerException(DatabaseManagerError.InvalidBackup,
                $"the backup asks for more than a tenant's own database role may do, so nothing was restored: {load.Error}", e);
        }
    }
}
