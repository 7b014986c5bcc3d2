using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using Loomworks.Postgres;
using Npgsql;

namespace Loomworks.Snapshots;

/// <summary>The tables' rows loaded frozen with COPY FREEZE, fed at the pace other tenants' work allows.</summary>
public sealed partial class TenantRestore
{
    /// <summary>A table whose rows <see cref="LoadFrozenAsync"/> loads: its dump entry, quoted name, column list and data file.</summary>
    private sealed record FrozenTable(int DumpId, string Name, string Columns, string DataFile, long Bytes);

    [GeneratedRegex(@"^(\d+); \d+ (\d+) TABLE DATA ")]
    private static partial Regex TableDataEntry();

    [GeneratedRegex(@"^(\d+); ")]
    private static partial Regex TocEntry();

    private static int? TocDumpId(string line) =>
        TocEntry().Match(line) is { Success: true } m ? int.Parse(m.Groups[1].ValueSpan, CultureInfo.InvariantCulture) : null;

    /// <summary>
    /// The ordinary tables of the dump whose rows are loaded frozen, named and described by the paused copy (the dump's
    /// listing is ambiguous for names with spaces). Only a UTF-8 database qualifies, so that the script's names and the
    /// data files' bytes share psql's client encoding; and only names a psql script line can carry. Anything else is
    /// left to pg_restore, which loads it as before.
    /// </summary>
    private static async Task<IReadOnlyList<FrozenTable>> FrozenTablesAsync(RestoreJob job, string dump, IReadOnlyList<string> contents,
        string run, int port, CancellationToken cancellationToken)
    {
        var entries = new Dictionary<long, int>();
        foreach (var line in contents)
        {
            if (TableDataEntry().Match(line) is { Success: true } m)
            {
                var oid = long.Parse(m.Groups[2].ValueSpan, CultureInfo.InvariantCulture);
                entries[oid] = int.Parse(m.Groups[1].ValueSpan, CultureInfo.InvariantCulture);
            }
        }
        if (entries.Count == 0)
        {
            return [];
        }
        var endpoint = new PostgresEndpoint(run, port, EmbeddedCluster.Superuser, null);
        await using var dataSource = NpgsqlDataSource.Create(endpoint.ConnectionString(job.SourceDatabase) + ";Pooling=false");
        await using var command = dataSource.CreateCommand("""
            SELECT c.oid::bigint, format('%I.%I', n.nspname, c.relname),
                   (SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) FROM pg_attribute a
                    WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''),
                   pg_encoding_to_char((SELECT encoding FROM pg_database WHERE datname = current_database()))
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.oid::bigint = ANY($1) AND c.relkind = 'r'
            """);
        command.Parameters.AddWithValue(entries.Keys.ToArray());
        var tables = new List<FrozenTable>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            var (name, columns) = (reader.GetString(1), reader.IsDBNull(2) ? null : reader.GetString(2));
            if (reader.GetString(3) != "UTF8")
            {
                return [];
            }
            var dumpId = entries[reader.GetInt64(0)];
            var file = Path.Combine(dump, dumpId.ToString(CultureInfo.InvariantCulture) + ".dat");
            if (!File.Exists(file) || name.Any(char.IsControl) || columns?.Any(char.IsControl) == true)
            {
                continue;
            }
            tables.Add(new FrozenTable(dumpId, name, columns is null ? "" : "(" + columns + ")", file, new FileInfo(file).Length));
        }
        return tables;
    }

    /// <summary>
    /// Loads the tables' rows frozen: each in its own transaction that first truncates it, so COPY FREEZE applies. pg_restore
    /// loads them unfrozen, so the index builds that follow set a hint bit on every heap page, writing each page a
    /// second time and, with data checksums, a full-page image of it into WAL when a checkpoint came between (the
    /// load's own WAL brings one). Frozen rows need no hint bits and later vacuums skip their pages. Two psql scripts share the tables,
    /// largest first; each reads its tables' rows from its standard input, which this process writes at the pace
    /// <paramref name="priority"/> sets.
    /// </summary>
    private async Task LoadFrozenAsync(RestoreJob job, string scratch, IReadOnlyList<FrozenTable> tables,
        Dictionary<string, string> environment, RestorePriority priority, CancellationToken cancellationToken)
    {
        var workers = new[] { new List<FrozenTable>(), new List<FrozenTable>() };
        var sizes = new long[2];
        foreach (var table in tables.OrderByDescending(t => t.Bytes))
        {
            var worker = sizes[0] <= sizes[1] ? 0 : 1;
            sizes[worker] += table.Bytes;
            workers[worker].Add(table);
        }
        var clientEnvironment = new Dictionary<string, string>(environment) { ["PGCLIENTENCODING"] = "UTF8" };
        var runs = new List<Task<CommandResult>>();
        for (var i = 0; i < workers.Length; i++)
        {
            if (workers[i].Count == 0)
            {
                continue;
            }
            var script = new StringBuilder();
            foreach (var table in workers[i])
            {
                script.Append(CultureInfo.InvariantCulture, $"BEGIN;\nTRUNCATE ONLY {table.Name};\n")
                    .Append(CultureInfo.InvariantCulture, $"\\copy {table.Name} {table.Columns} FROM pstdin WITH (FREEZE)\n")
                    .Append("COMMIT;\n");
            }
            var path = Path.Combine(scratch, $"load-{i}.sql");
            await File.WriteAllTextAsync(path, script.ToString(), cancellationToken);
            CommandRunner.GiveToServerUser(path);
            var (program, arguments) = priority.Wrap(binaries.Value["psql"],
                ["-X", "-q", "-v", "ON_ERROR_STOP=1", .. LiveConnection(job.NewDatabase), "-f", path]);
            var feed = workers[i];
            runs.Add(CommandRunner.RunAsync(program, arguments, CommandRunner.ServerUser, TimeSpan.FromHours(6), clientEnvironment,
                cancellationToken, (stdin, token) => FeedTablesAsync(feed, stdin, priority.Pace, token)));
        }
        foreach (var result in await Task.WhenAll(runs))
        {
            Check(result, $"loading the rows into {job.NewDatabase}");
        }
    }

    /// <summary>
    /// Writes each table's rows in turn, each ended by the line "\." that ends a \copy's rows and nothing after it: pg_dump
    /// ends a data file with that line and two empty ones, which the next table's \copy would take for rows. A row cannot
    /// be that line (COPY writes a backslash in data as two).
    /// </summary>
    private static Task FeedTablesAsync(IEnumerable<FrozenTable> tables, Stream stdin, LoadPace pace,
        CancellationToken cancellationToken) =>
        Task.Factory.StartNew(() =>
        {
            foreach (var table in tables)
            {
                using var data = new FileStream(table.DataFile, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16,
                    FileOptions.SequentialScan);
                var (rows, ended) = RowsLength(data);
                data.Position = 0;
                pace.Copy(data, rows, stdin, cancellationToken);
                if (!ended)
                {
                    stdin.Write("\\.\n"u8);
                }
            }
        }, cancellationToken, TaskCreationOptions.LongRunning, TaskScheduler.Default);

    /// <summary>
    /// The length of a COPY data file up to and with its closing "\." line, or all of it when it has none (no rows, or
    /// rows alone).
    /// </summary>
    internal static (long Length, bool Ended) RowsLength(Stream data)
    {
        var tail = new byte[(int)Math.Min(data.Length, 64)];
        data.Position = data.Length - tail.Length;
        data.ReadExactly(tail);
        var end = tail.Length;
        while (end > 0 && tail[end - 1] == (byte)'\n')
        {
            end--;
        }
        var ended = end >= 2 && tail[end - 2] == (byte)'\\' && tail[end - 1] == (byte)'.' && end < tail.Length
            && (end == 2 ? tail.Length == data.Length : tail[end - 3] == (byte)'\n');
        return ended ? (data.Length - tail.Length + end + 1, true) : (data.Length, false);
    }
}
