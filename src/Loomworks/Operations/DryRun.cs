using System.Text.Json;
using Npgsql;

namespace Loomworks.Operations;

/// <summary>One row a change touched, as the change capture saw it: table, key, kind and the row before and after.</summary>
public sealed record CapturedChange(string Table, JsonElement Key, string Kind, JsonElement? Before, JsonElement? After);

/// <summary>
/// A change tried and taken back: the caller runs it in its transaction, reads what the capture triggers recorded
/// (cascades and relation rows included) and rolls back, so nothing stays and no operation is logged.
/// </summary>
public static class DryRun
{
    /// <summary>Most rows a dry run reports; past it the report says how many more there were.</summary>
    public const int MaxRows = 10_000;

    /// <summary>The changes captured so far in <paramref name="transaction"/>, oldest first, and how many in all.</summary>
    public static async Task<(IReadOnlyList<CapturedChange> Changes, long Total)> ChangesAsync(NpgsqlTransaction transaction,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(transaction);
        await using var command = new NpgsqlCommand("""
            SELECT table_name, row_key::text, kind, old_row::text, new_row::text, count(*) OVER ()
            FROM loomworks_change WHERE operation_id = nullif(current_setting('loomworks.operation_id', true), '')::bigint
            ORDER BY id LIMIT $1
            """, transaction.Connection, transaction);
        command.Parameters.AddWithValue(MaxRows);
        var changes = new List<CapturedChange>();
        long total = 0;
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            var kind = reader.GetChar(2) switch { 'I' => "insert", 'D' => "delete", _ => "update" };
            changes.Add(new CapturedChange(reader.GetString(0), Parse(reader.GetString(1))!.Value, kind,
                reader.IsDBNull(3) ? null : Parse(reader.GetString(3)), reader.IsDBNull(4) ? null : Parse(reader.GetString(4))));
            total = reader.GetInt64(5);
        }
        return (changes, total);
    }

    private static JsonElement? Parse(string json)
    {
        using var document = JsonDocument.Parse(json);
        return document.RootElement.Clone();
    }
}
