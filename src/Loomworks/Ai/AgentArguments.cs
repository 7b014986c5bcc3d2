using System.Text.Json;
using Loomworks.Records;

namespace Loomworks.Ai;

/// <summary>A refusal of a tool call that the agent can act on: the message says what was wrong and what to do.</summary>
public sealed class AgentRefusalException(string message) : Exception(message);

/// <summary>
/// One call's arguments, checked against the tool's input schema before anything runs: unknown names, wrong types and
/// values out of range are refused with a message that names the argument.
/// </summary>
public sealed class AgentArguments
{
    private const int MaxTextLength = 200;
    private readonly string _tool;
    private readonly IReadOnlyDictionary<string, JsonElement> _values;

    public AgentArguments(string tool, IDictionary<string, JsonElement>? values)
    {
        _tool = tool;
        _values = new Dictionary<string, JsonElement>(values ?? new Dictionary<string, JsonElement>(), StringComparer.Ordinal);
        var schema = AgentTools.All.First(t => t.Name == tool).InputSchema.GetProperty("properties");
        var known = schema.EnumerateObject().Select(p => p.Name).ToList();
        foreach (var name in _values.Keys.Where(n => !known.Contains(n)))
        {
            var takes = known.Count == 0 ? "none" : string.Join(", ", known);
            throw new AgentRefusalException($"{tool} has no argument '{Show(name)}'; it takes: {takes}");
        }
    }

    public bool Has(string name) => _values.TryGetValue(name, out var v) && v.ValueKind is not JsonValueKind.Null;

    public string Text(string name, int maxLength = MaxTextLength) =>
        OptionalText(name, maxLength) ?? throw new AgentRefusalException($"{_tool} needs '{name}' (a string)");

    public string? OptionalText(string name, int maxLength = MaxTextLength)
    {
        if (!Has(name))
        {
            return null;
        }
        var value = _values[name];
        if (value.ValueKind != JsonValueKind.String || value.GetString() is not { Length: > 0 } text)
        {
            throw new AgentRefusalException($"'{name}' must be a non-empty string, not {Describe(value)}");
        }
        return text.Length <= maxLength ? text
            : throw new AgentRefusalException($"'{name}' is {text.Length} characters long; at most {maxLength} are accepted");
    }

    public long? Whole(string name, long minimum, long maximum)
    {
        if (!Has(name))
        {
            return null;
        }
        var value = _values[name];
        if (value.ValueKind != JsonValueKind.Number || !value.TryGetInt64(out var number) || number < minimum || number > maximum)
        {
            throw new AgentRefusalException($"'{name}' must be a whole number from {minimum} to {maximum}, not {Describe(value)}");
        }
        return number;
    }

    public bool Flag(string name)
    {
        if (!Has(name))
        {
            return false;
        }
        return _values[name].ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw new AgentRefusalException($"'{name}' must be true or false, not {Describe(_values[name])}"),
        };
    }

    public List<object?> Ids(string name)
    {
        if (!Has(name) || _values[name].ValueKind != JsonValueKind.Array)
        {
            throw new AgentRefusalException($"{_tool} needs '{name}': a list of record ids such as [1, 2, 3]");
        }
        var array = _values[name];
        var count = array.GetArrayLength();
        if (count is 0 or > AgentTools.MaxIds)
        {
            throw new AgentRefusalException($"'{name}' holds {count} ids; give 1 to {AgentTools.MaxIds} (split larger work into calls, "
                + "or use a domain with search_records to find fewer)");
        }
        var ids = new List<object?>(count);
        foreach (var item in array.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Number || !item.TryGetInt64(out var id) || id is < 1 or > int.MaxValue)
            {
                throw new AgentRefusalException($"'{name}' must hold positive whole numbers (record ids), not {Describe(item)}");
            }
            ids.Add(id);
        }
        return ids;
    }

    public List<object?>? Names(string name)
    {
        if (!Has(name))
        {
            return null;
        }
        var value = _values[name];
        if (value.ValueKind != JsonValueKind.Array || value.GetArrayLength() > 1000
            || value.EnumerateArray().Any(v => v.ValueKind != JsonValueKind.String || v.GetString()!.Length is 0 or > MaxTextLength))
        {
            throw new AgentRefusalException($"'{name}' must be a list of field names (strings), not {Describe(value)}");
        }
        return value.EnumerateArray().Select(v => (object?)v.GetString()).ToList();
    }

    /// <summary>The domain as the ORM takes it; the ORM checks its terms, fields and operators.</summary>
    public List<object?> Domain(string name = "domain")
    {
        if (!Has(name))
        {
            return [];
        }
        var value = _values[name];
        return value.ValueKind == JsonValueKind.Array ? (List<object?>)WireJson.ToWire(value)!
            : throw new AgentRefusalException($"'{name}' must be a list in Odoo's domain syntax such as [[\"name\", \"ilike\", \"acme\"]], "
                + $"not {Describe(value)}");
    }

    /// <summary>Field values: one object, or (where <paramref name="allowList"/>) a list of objects.</summary>
    public object Values(string name, bool allowList)
    {
        if (Has(name))
        {
            var value = _values[name];
            if (value.ValueKind == JsonValueKind.Object
                || (allowList && value.ValueKind == JsonValueKind.Array && value.GetArrayLength() is > 0 and <= AgentTools.MaxIds
                    && value.EnumerateArray().All(v => v.ValueKind == JsonValueKind.Object)))
            {
                return WireJson.ToWire(value)!;
            }
        }
        throw new AgentRefusalException(allowList
            ? $"'{name}' must be an object of field values, or a list of 1 to {AgentTools.MaxIds} such objects"
            : $"'{name}' must be an object of field values such as {{\"name\": \"Acme\"}}");
    }

    /// <summary>The model, which must be one the registry knows: unknown names are refused without reaching SQL.</summary>
    public ModelDef Model(string name = "model")
    {
        var model = Text(name, 128);
        return ModelRegistry.Find(model)
            ?? throw new AgentRefusalException($"there is no model '{Show(model)}'; list_models gives the model names this tenant has");
    }

    private static string Describe(JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.String => "the string \"" + Show(value.GetString()!) + "\"",
        JsonValueKind.Array => $"a list of {value.GetArrayLength()} items",
        JsonValueKind.Object => "an object",
        JsonValueKind.Number => value.GetRawText().Length <= 40 ? value.GetRawText() : "a very long number",
        _ => value.GetRawText(),
    };

    /// <summary>A name as it may be echoed back: printable and short.</summary>
    public static string Show(string text)
    {
        var printable = new string(text.Take(60).Select(c => char.IsControl(c) ? '?' : c).ToArray());
        return text.Length > 60 ? printable + "…" : printable;
    }
}
