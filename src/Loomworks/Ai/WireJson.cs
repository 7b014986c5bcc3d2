using System.Collections;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Loomworks.Records;

namespace Loomworks.Ai;

/// <summary>
/// Tool arguments (JSON) to the ORM's wire values (long, double, bool, string, null, lists, dictionaries) and the ORM's
/// answers back to JSON, so a tool speaks the same values an Odoo JSON-RPC client does.
/// </summary>
public static class WireJson
{
    public static object? ToWire(JsonElement element) => element.ValueKind switch
    {
        JsonValueKind.Null or JsonValueKind.Undefined => null,
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        JsonValueKind.String => element.GetString(),
        JsonValueKind.Number => element.TryGetInt64(out var whole) ? whole : element.GetDouble(),
        JsonValueKind.Array => element.EnumerateArray().Select(ToWire).ToList(),
        _ => element.EnumerateObject().Aggregate(new Dictionary<string, object?>(StringComparer.Ordinal), (d, p) =>
        {
            d[p.Name] = ToWire(p.Value);
            return d;
        }),
    };

    public static JsonNode? ToJson(object? value) => value switch
    {
        null => null,
        JsonNode node => node.DeepClone(),
        JsonElement element => JsonNode.Parse(element.GetRawText()),
        string s => JsonValue.Create(s),
        bool b => JsonValue.Create(b),
        long l => JsonValue.Create(l),
        int i => JsonValue.Create(i),
        double d when double.IsFinite(d) => JsonValue.Create(d),
        double d => JsonValue.Create(d.ToString(CultureInfo.InvariantCulture)),
        decimal m => JsonValue.Create(m),
        DateTime t => JsonValue.Create(Values.FormatDateTime(t)),
        DateTimeOffset t => JsonValue.Create(t.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture)),
        DateOnly d => JsonValue.Create(Values.FormatDate(d)),
        byte[] bytes => JsonValue.Create(Convert.ToBase64String(bytes)),
        IDictionary<string, object?> map => Object(map),
        IEnumerable list => new JsonArray(list.Cast<object?>().Select(ToJson).ToArray()),
        _ => JsonValue.Create(Convert.ToString(value, CultureInfo.InvariantCulture)),
    };

    private static JsonObject Object(IDictionary<string, object?> map)
    {
        var json = new JsonObject();
        foreach (var (key, value) in map)
        {
            json[key] = ToJson(value);
        }
        return json;
    }
}
