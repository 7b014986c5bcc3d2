using System.Globalization;
using System.Text.Json;

namespace Loomworks.Server.Web.Console;

/// <summary>How the console writes operations, times and row values, and reads the times its forms send.</summary>
public static class OperationFormat
{
    public static string Time(DateTimeOffset t) => t.ToUniversalTime().ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture);

    /// <summary>A time as a datetime-local field takes it.</summary>
    public static string Field(DateTimeOffset t) =>
        t.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss", CultureInfo.InvariantCulture);

    public static string Records(IReadOnlyList<long> ids) => ids.Count switch
    {
        0 => "",
        <= 5 => string.Join(", ", ids),
        _ => $"{string.Join(", ", ids.Take(5))} and {ids.Count - 5} more",
    };

    public static string State(string state, bool undone, long? undoOf) =>
        state == "failed" ? "failed"
        : undone ? "undone"
        : undoOf is { } target ? $"undo of #{target}"
        : state;

    /// <summary>A time from a form (a datetime-local field, taken as UTC, or any ISO 8601 time); empty is none.</summary>
    public static DateTimeOffset? ParseTime(string? value, string what)
    {
        value = value?.Trim();
        if (string.IsNullOrEmpty(value))
        {
            return null;
        }
        return value.Length <= 40 && DateTimeOffset.TryParse(value, CultureInfo.InvariantCulture,
                DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var t)
            ? t
            : throw new ConsoleRefusalException(
                $"{what} must be a date and time such as 2026-01-31T14:00:00, not '{ConsoleErrors.Shorten(value)}'.");
    }

    /// <summary>The columns of a row change, with the value before and after; for an update only the columns it changed.</summary>
    public static IReadOnlyList<(string Column, string? Before, string? After)> Columns(JsonElement? before, JsonElement? after)
    {
        var names = new List<string>();
        foreach (var side in new[] { before, after })
        {
            if (side is { ValueKind: JsonValueKind.Object } o)
            {
                names.AddRange(o.EnumerateObject().Select(p => p.Name).Where(n => !names.Contains(n)));
            }
        }
        var rows = new List<(string, string?, string?)>();
        foreach (var name in names)
        {
            var b = Value(before, name);
            var a = Value(after, name);
            if (before is not null && after is not null && b == a)
            {
                continue;
            }
            if (before is null && a is null || after is null && b is null)
            {
                continue;
            }
            rows.Add((name, b, a));
        }
        return rows;
    }

    private static string? Value(JsonElement? row, string name)
    {
        if (row is not { ValueKind: JsonValueKind.Object } o || !o.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null)
        {
            return null;
        }
        var text = v.ValueKind == JsonValueKind.String ? v.GetString()! : v.GetRawText();
        return text.Length <= 300 ? text : text[..300] + "…";
    }
}
