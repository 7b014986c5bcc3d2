using System.Globalization;
using Npgsql;

namespace Loomworks.Records;

/// <summary>
/// How the environment sends its statements: reads with the pending stamp check in front and COMMIT behind, and the
/// id lists that writes look up.
/// </summary>
public sealed partial class RecordEnvironment
{
    private const string Commit = "COMMIT";

    /// <summary>
    /// Set for a call that runs under remembered checks before the security stamp is read: the call's first statement
    /// reads the stamp too (one round trip for both), and <see cref="CommitAsync"/> reads it when no statement did.
    /// </summary>
    public PendingStampCheck? PendingStamp { get; init; }

    /// <summary>
    /// For a read-only call: a search_read that needs only one statement sends COMMIT with it, so that the call costs
    /// one round trip to PostgreSQL.
    /// </summary>
    public bool CommitsWithRead { get; init; }

    /// <summary>Whether the call's transaction is committed already (a read sent COMMIT with its statement).</summary>
    public bool Committed { get; private set; }

    /// <summary>Commits the call's transaction unless a read did; a stamp still pending is read in the same round trip.</summary>
    public async Task CommitAsync(CancellationToken ct)
    {
        if (Committed)
        {
            return;
        }
        if (PendingStamp is not { Matched: null } check)
        {
            await transaction.CommitAsync(ct);
        }
        else
        {
            await using var batch = new NpgsqlBatch(connection, transaction)
            {
                BatchCommands = { SecurityStamp.BatchCommand(), new(Commit) },
            };
            await using var reader = await batch.ExecuteReaderAsync(ct);
            check.Record(await SecurityStamp.ReadAsync(reader, ct));
        }
        Committed = true;
    }

    /// <summary>
    /// Runs one statement of the call and hands its rows to <paramref name="read"/>. The pending stamp check goes in
    /// front of it when the stamp has not been read yet; COMMIT goes behind it when <paramref name="last"/> says that
    /// nothing follows it in the call.
    /// </summary>
    private async Task<T> QueryAsync<T>(string text, SqlBuilder sql, Func<NpgsqlDataReader, Task<T>> read, bool last,
        CancellationToken ct)
    {
        var check = PendingStamp is { Matched: null } pending ? pending : null;
        await using var batch = new NpgsqlBatch(connection, transaction);
        if (check is not null)
        {
            batch.BatchCommands.Add(SecurityStamp.BatchCommand());
        }
        batch.BatchCommands.Add(sql.BatchCommand(text));
        if (last)
        {
            batch.BatchCommands.Add(new NpgsqlBatchCommand(Commit));
        }
        T result;
        await using (var reader = await batch.ExecuteReaderAsync(ct))
        {
            if (check is not null)
            {
                check.Record(await SecurityStamp.ReadAsync(reader, ct));
                await reader.NextResultAsync(ct);
            }
            result = await read(reader);
        }
        Committed |= last;
        return result;
    }

    /// <summary>The first column of every row of <paramref name="text"/>, whose one parameter is <paramref name="ids"/>.</summary>
    private async Task<List<long>> ScalarsAsync(string text, long[] ids, CancellationToken ct)
    {
        var sql = new SqlBuilder();
        sql.Add(ids);
        return await ScalarsAsync(text, sql, ct);
    }

    private async Task<List<long>> ScalarsAsync(string text, SqlBuilder sql, CancellationToken ct)
    {
        await using var command = sql.Command(text, connection, transaction);
        var list = new List<long>();
        await using var reader = await command.ExecuteReaderAsync(ct);
        while (await reader.ReadAsync(ct))
        {
            list.Add(System.Convert.ToInt64(reader.GetValue(0), CultureInfo.InvariantCulture));
        }
        return list;
    }
}
