using System.Globalization;

namespace Loomworks.Records;

/// <summary>
/// Odoo's call_kw: binds positional and keyword arguments to the public ORM methods by their Python signatures and
/// calls them. Record methods (read, write, unlink, revoke) take the ids first, as in Odoo.
/// </summary>
public static class RecordMethods
{
    private sealed record Parameter(string Name, bool Required, object? Default = null, string? Alias = null);

    private sealed record Method(bool OnRecords, Parameter[] Parameters,
        Func<RecordEnvironment, ModelDef, IReadOnlyList<long>, Dictionary<string, object?>, CancellationToken, Task<object?>> Call,
        string? OnlyModel = null);

    private static readonly Dictionary<string, Method> Methods = new(StringComparer.Ordinal)
    {
        ["search"] = new(false, [new("domain", true, null, "args"), new("offset", false, 0L), new("limit", false), new("order", false)],
            async (env, m, _, a, ct) =>
                (await env.SearchAsync(m, a["domain"], Offset(a), Limit(a), Order(a), ct)).Cast<object?>().ToList()),
        ["search_count"] = new(false, [new("domain", true, null, "args"), new("limit", false)],
            async (env, m, _, a, ct) => await env.SearchCountAsync(m, a["domain"], Limit(a), ct)),
        ["search_read"] = new(false,
            [new("domain", false), new("fields", false), new("offset", false, 0L), new("limit", false), new("order", false),
                new("load", false)],
            async (env, m, _, a, ct) => await env.SearchReadAsync(m, a["domain"], Names(a, "fields"), Offset(a), Limit(a), Order(a), ct)),
        ["read_group"] = new(false,
            [new("domain", true), new("fields", true), new("groupby", true), new("offset", false, 0L), new("limit", false),
                new("orderby", false), new("lazy", false, true)],
            async (env, m, _, a, ct) => await env.ReadGroupAsync(m, a["domain"], Names(a, "fields") ?? [], Names(a, "groupby") ?? [],
                Offset(a), Limit(a), a["orderby"] switch
                {
                    null or false or "" => null,
                    string s => s,
                    var v => throw OdooException.Type($"orderby must be a string, not {Domain.Show(v)}"),
                }, Values.Truthy(a["lazy"]), ct)),
        ["read"] = new(true, [new("fields", false), new("load", false)],
            async (env, m, ids, a, ct) => await env.ReadAsync(m, ids, Names(a, "fields"), ct)),
        ["create"] = new(false, [new("vals_list", true, null, "vals")],
            async (env, m, _, a, ct) => await env.CreateAsync(m, a["vals_list"], ct)),
        ["write"] = new(true, [new("vals", true)],
            async (env, m, ids, a, ct) => await env.WriteAsync(m, ids, a["vals"] as IDictionary<string, object?>
                ?? throw OdooException.Type($"write() takes a dictionary of values, not {Domain.Show(a["vals"])}"), ct)),
        ["unlink"] = new(true, [],
            async (env, m, ids, _, ct) => await env.UnlinkAsync(m, ids, ct)),
        ["fields_get"] = new(false, [new("allfields", false), new("attributes", false)],
            (_, m, _, a, _) => Task.FromResult<object?>(RecordEnvironment.FieldsGet(m, Names(a, "allfields"), Names(a, "attributes")))),
        ["name_search"] = new(false,
            [new("name", false, ""), new("domain", false, null, "args"), new("operator", false, "ilike"), new("limit", false, 100L)],
            async (env, m, _, a, ct) =>
            {
                env.Access.Check(m, "read");
                var op = a["operator"] as string ?? throw OdooException.Type("name_search() operator must be a string");
                return await env.NameSearchAsync(m, a["name"] as string ?? "", a["domain"], op, Limit(a), ct);
            }),
        ["default_get"] = new(false, [new("fields_list", true, null, "fields")],
            (env, m, _, a, _) => Task.FromResult<object?>(env.DefaultGet(m, Names(a, "fields_list") ?? []))),
        ["check_access_rights"] = new(false, [new("operation", true), new("raise_exception", false, true)],
            (env, m, _, a, _) =>
            {
                var operation = a["operation"] as string ?? throw OdooException.Type("check_access_rights() operation must be a string");
                var allowed = env.Access.Allows(m.Name, operation);
                if (!allowed && Values.Truthy(a["raise_exception"]))
                {
                    env.Access.Check(m, operation);
                }
                return Task.FromResult<object?>(allowed);
            }),
        ["generate"] = new(false, [new("name", true), new("scope", false, "rpc"), new("expiration_date", false)],
            async (env, _, _, a, ct) => await ApiKeys.GenerateAsync(env, a["name"] as string ?? "", a["scope"] as string,
                a["expiration_date"] is string s && Values.TryParseDateTime(s, out var dt) ? dt : null, ct),
            OnlyModel: "res.users.apikeys"),
        ["revoke"] = new(true, [],
            async (env, _, ids, _, ct) => await ApiKeys.RevokeAsync(env, ids, ct),
            OnlyModel: "res.users.apikeys"),
    };

    /// <summary>Methods that never write: they need no write guard and may share the transaction the credential check used.</summary>
    private static readonly HashSet<string> ReadOnly = new(StringComparer.Ordinal)
    {
        "search", "search_count", "read", "search_read", "read_group", "fields_get", "name_search", "default_get", "check_access_rights",
    };

    public static bool IsReadOnly(string method) => ReadOnly.Contains(method);

    public static bool Exists(string model, string method) =>
        Methods.TryGetValue(method, out var m) && (m.OnlyModel is null || m.OnlyModel == model);

    public static async Task<object?> CallAsync(RecordEnvironment env, ModelDef model, string name, IList<object?> args,
        IDictionary<string, object?>? kwargs, CancellationToken ct)
    {
        if (!Methods.TryGetValue(name, out var method) || (method.OnlyModel is not null && method.OnlyModel != model.Name))
        {
            throw new OdooException(OdooErrorKind.ServerError, $"The method '{name}' does not exist on the model '{model.Name}'",
                "builtins.AttributeError");
        }
        var positional = args.ToList();
        IReadOnlyList<long> ids = [];
        if (method.OnRecords)
        {
            if (positional.Count == 0)
            {
                throw OdooException.Type($"{name}() needs the record ids as its first argument");
            }
            ids = Ids(positional[0], name);
            positional.RemoveAt(0);
        }
        var bound = Bind(name, method.Parameters, positional, kwargs);
        return await method.Call(env, model, ids, bound, ct);
    }

    private static Dictionary<string, object?> Bind(string name, Parameter[] parameters, List<object?> positional,
        IDictionary<string, object?>? kwargs)
    {
        if (positional.Count > parameters.Length)
        {
            throw OdooException.Type($"{name}() takes {parameters.Length + 1} positional arguments but {positional.Count + 1} were given");
        }
        var bound = new Dictionary<string, object?>(StringComparer.Ordinal);
        for (var i = 0; i < positional.Count; i++)
        {
            bound[parameters[i].Name] = positional[i];
        }
        foreach (var (key, value) in kwargs ?? new Dictionary<string, object?>())
        {
            if (key == "context")
            {
                continue;
            }
            var parameter = parameters.FirstOrDefault(p => p.Name == key || p.Alias == key)
                ?? throw OdooException.Type($"{name}() got an unexpected keyword argument '{key}'");
            if (!bound.TryAdd(parameter.Name, value))
            {
                throw OdooException.Type($"{name}() got multiple values for argument '{parameter.Name}'");
            }
        }
        foreach (var parameter in parameters)
        {
            if (!bound.ContainsKey(parameter.Name))
            {
                if (parameter.Required)
                {
                    throw OdooException.Type($"{name}() missing 1 required positional argument: '{parameter.Name}'");
                }
                bound[parameter.Name] = parameter.Default;
            }
        }
        return bound;
    }

    private static List<long> Ids(object? value, string method) => value switch
    {
        long id => [id],
        IList<object?> list => list
            .Select(v => v is long id ? id : throw OdooException.Type($"{method}(): {Domain.Show(v)} is not a record id"))
            .ToList(),
        null or false => [],
        _ => throw OdooException.Type($"{method}(): {Domain.Show(value)} is not a list of record ids"),
    };

    private static long Offset(Dictionary<string, object?> a) => a["offset"] switch
    {
        // Python truthiness: Odoo ignores any false-like offset, including the '' some clients send.
        null or false or "" => 0,
        long l => l,
        var v => throw OdooException.Type($"offset must be an integer, not {Domain.Show(v)}"),
    };

    private static long? Limit(Dictionary<string, object?> a) => a["limit"] switch
    {
        null or false or "" => null,
        long l => l,
        double d when d == Math.Floor(d) && Math.Abs(d) < 9.2e18 => (long)d,
        var v => throw OdooException.Type($"limit must be an integer, not {Domain.Show(v)}"),
    };

    private static string? Order(Dictionary<string, object?> a) => a["order"] switch
    {
        null or false => null,
        string s => s,
        var v => throw OdooException.Type($"order must be a string, not {Domain.Show(v)}"),
    };

    private static List<string>? Names(Dictionary<string, object?> a, string key) => a[key] switch
    {
        null or false => null,
        string s => [s],
        IList<object?> list => list
            .Select(v => v as string ?? throw OdooException.Type($"{key} must be a list of field names, not {Domain.Show(a[key])}"))
            .ToList(),
        var v => throw OdooException.Type($"{key} must be a list of field names, not {Domain.Show(v)}"),
    };

    internal static string Describe(object? value) => Convert.ToString(value, CultureInfo.InvariantCulture) ?? "";
}
