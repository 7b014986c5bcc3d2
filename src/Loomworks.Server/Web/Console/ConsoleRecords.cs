using System.Globalization;
using Loomworks.Records;
using Loomworks.Rpc;

namespace Loomworks.Server.Web.Console;

/// <summary>A field a record page shows: its name in the model, and whether the list shows it too.</summary>
public sealed record RecordField(FieldDef Definition, bool InList, bool Editable = true)
{
    public string Name => Definition.Name;
    public string Label => Definition.Label;
}

/// <summary>A model the console lists and edits: its fields, in the order the pages show them.</summary>
public sealed record RecordModel(string Slug, string Title, ModelDef Definition, IReadOnlyList<RecordField> Fields)
{
    public string Name => Definition.Name;
}

/// <summary>One page of records and whether there is another.</summary>
public sealed record RecordPage(IReadOnlyList<IReadOnlyDictionary<string, object?>> Rows, int Page, bool HasMore);

/// <summary>
/// Partners, products and sale orders by hand: every read and change goes through <see cref="RpcDispatcher.CallAsync"/>,
/// the record layer RPC uses, with the user's rights, and each change is an operation of the log (tool "console").
/// </summary>
public sealed class ConsoleRecords(RpcDispatcher dispatcher)
{
    public const int PageSize = 50;
    public const int MaxCharLength = 1000;
    public const int MaxTextLength = 20_000;

    public static readonly IReadOnlyList<RecordModel> Models =
    [
        Model("res.partner", "Partners", ("name", true), ("email", true), ("phone", true), ("city", true), ("is_company", true),
            ("street", false), ("zip", false), ("website", false)),
        Model("product.product", "Products", ("name", true), ("default_code", true), ("list_price", true), ("type", true),
            ("standard_price", false), ("sale_ok", false), ("description", false)),
        Model("sale.order", "Sale orders", ("name", true), ("partner_id", true), ("date_order", true), ("client_order_ref", true),
            ("state", true), ("amount_total", true), ("origin", false)),
    ];

    public static RecordModel Find(string? name) => Models.FirstOrDefault(m => m.Name == name)
        ?? throw new ConsoleRefusalException($"The console has no record pages for '{ConsoleErrors.Shorten(name ?? "")}'.");

    private static RecordModel Model(string name, string title, params (string Field, bool InList)[] fields)
    {
        var definition = ModelRegistry.Get(name);
        return new RecordModel(name, title, definition, fields.Select(f =>
        {
            var field = definition.Field(f.Field)!;
            return new RecordField(field, f.InList, !field.ReadOnly && !field.Computed);
        }).ToList());
    }

    public async Task<RecordPage> SearchAsync(ConsoleAccess access, RecordModel model, string? search, int page, CancellationToken ct)
    {
        search = ConsoleErrors.Text(search, "The search", 200);
        if (page is < 0 or > 100_000)
        {
            throw new ConsoleRefusalException("The page number is out of range.");
        }
        var domain = new List<object?>();
        if (search is not null)
        {
            domain.Add(new List<object?> { model.Definition.RecName, "ilike", search });
        }
        var fields = model.Fields.Where(f => f.InList).Select(f => (object?)f.Name).ToList();
        var rows = await CallAsync(access, model, "search_read", [domain],
            new(StringComparer.Ordinal) { ["fields"] = fields, ["offset"] = (long)page * PageSize, ["limit"] = (long)PageSize + 1 }, ct);
        var list = Rows(rows);
        return new RecordPage(list.Take(PageSize).ToList(), page, list.Count > PageSize);
    }

    public async Task<IReadOnlyDictionary<string, object?>> ReadAsync(ConsoleAccess access, RecordModel model, long id,
        CancellationToken ct)
    {
        var rows = Rows(await CallAsync(access, model, "read", [new List<object?> { id }],
            new(StringComparer.Ordinal) { ["fields"] = model.Fields.Select(f => (object?)f.Name).ToList() }, ct));
        return rows.Count == 1
            ? rows[0]
            : throw new ConsoleRefusalException($"There is no {model.Definition.Label.ToLowerInvariant()} {id}.");
    }

    /// <summary>Choices for a many2one field (id, display name), the first hundred by name.</summary>
    public async Task<IReadOnlyList<(long Id, string Name)>> ChoicesAsync(ConsoleAccess access, FieldDef field, CancellationToken ct)
    {
        var relation = ModelRegistry.Get(field.Relation!);
        var result = await dispatcher.CallAsync(access.User.Database, access.Uid, relation.Name, "name_search", [],
            new Dictionary<string, object?>(StringComparer.Ordinal) { ["limit"] = 100L, ["context"] = ConsoleOperations.Context() }, ct);
        return result is System.Collections.IEnumerable pairs
            ? pairs.OfType<IList<object?>>().Select(p => ((long)p[0]!, p[1] as string ?? "")).ToList()
            : [];
    }

    public async Task<long> CreateAsync(ConsoleAccess access, RecordModel model, IReadOnlyDictionary<string, string?> form,
        CancellationToken ct)
    {
        var values = Parse(model, form);
        var result = await CallAsync(access, model, "create", [values], null, ct);
        return result switch
        {
            long id => id,
            IList<object?> { Count: > 0 } ids when ids[0] is long first => first,
            _ => 0,
        };
    }

    public async Task UpdateAsync(ConsoleAccess access, RecordModel model, long id, IReadOnlyDictionary<string, string?> form,
        CancellationToken ct) =>
        await CallAsync(access, model, "write", [new List<object?> { id }, Parse(model, form)], null, ct);

    public async Task DeleteAsync(ConsoleAccess access, RecordModel model, long id, CancellationToken ct) =>
        await CallAsync(access, model, "unlink", [new List<object?> { id }], null, ct);

    /// <summary>The form's values as the record layer takes them, each checked against its field; a bad one is refused.</summary>
    public static Dictionary<string, object?> Parse(RecordModel model, IReadOnlyDictionary<string, string?> form)
    {
        var values = new Dictionary<string, object?>(StringComparer.Ordinal);
        foreach (var field in model.Fields.Where(f => f.Editable))
        {
            form.TryGetValue(field.Name, out var raw);
            var label = $"'{field.Label}'";
            var type = field.Definition.Type;
            if (type == FieldType.Boolean)
            {
                values[field.Name] = raw is "on" or "true";
                continue;
            }
            var text = ConsoleErrors.Text(raw, label, type is FieldType.Text or FieldType.Html ? MaxTextLength : MaxCharLength);
            if (text is null)
            {
                if (field.Definition.Required && field.Definition.Default is null)
                {
                    throw new ConsoleRefusalException($"{label} is required.");
                }
                if (field.Definition.Default is null)
                {
                    values[field.Name] = false;
                }
                continue;
            }
            values[field.Name] = type switch
            {
                FieldType.Float or FieldType.Monetary => double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var d)
                    && double.IsFinite(d)
                        ? d : throw new ConsoleRefusalException($"{label} must be a number such as 12.50, not '{Shown(text)}'."),
                FieldType.Integer => long.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n)
                    ? n : throw new ConsoleRefusalException($"{label} must be a whole number, not '{Shown(text)}'."),
                FieldType.Many2one => long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var id) && id > 0
                    ? id : throw new ConsoleRefusalException($"{label} must be chosen from the list."),
                FieldType.Selection => field.Definition.Selection!.Any(s => s.Value == text)
                    ? text : throw new ConsoleRefusalException($"{label} must be one of the choices offered, not '{Shown(text)}'."),
                FieldType.Datetime => DateTime.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal
                        | DateTimeStyles.AssumeUniversal, out var t)
                    ? Values.FormatDateTime(t)
                    : throw new ConsoleRefusalException($"{label} must be a date and time, not '{Shown(text)}'."),
                FieldType.Date => DateOnly.TryParse(text, CultureInfo.InvariantCulture, out var day)
                    ? Values.FormatDate(day) : throw new ConsoleRefusalException($"{label} must be a date, not '{Shown(text)}'."),
                _ => text,
            };
        }
        return values;
    }

    /// <summary>A value as a form field shows it.</summary>
    public static string FormValue(FieldDef field, object? value) => value switch
    {
        null or false when field.Type != FieldType.Boolean => "",
        IList<object?> { Count: > 0 } pair when field.Type == FieldType.Many2one =>
            Convert.ToString(pair[0], CultureInfo.InvariantCulture)!,
        string s when field.Type == FieldType.Datetime && Values.TryParseDateTime(s, out var t) =>
            t.ToString("yyyy-MM-dd'T'HH:mm", CultureInfo.InvariantCulture),
        double d => d.ToString(CultureInfo.InvariantCulture),
        _ => Convert.ToString(value, CultureInfo.InvariantCulture) ?? "",
    };

    /// <summary>A value as a list cell shows it.</summary>
    public static string Display(FieldDef field, object? value) => value switch
    {
        bool b when field.Type == FieldType.Boolean => b ? "Yes" : "No",
        null or false => "",
        IList<object?> { Count: > 1 } pair => pair[1] as string ?? "",
        string s when field.Type == FieldType.Selection => field.Selection?.FirstOrDefault(o => o.Value == s).Label ?? s,
        double d => d.ToString("0.00", CultureInfo.InvariantCulture),
        _ => Convert.ToString(value, CultureInfo.InvariantCulture) ?? "",
    };

    private Task<object?> CallAsync(ConsoleAccess access, RecordModel model, string method, IList<object?> args,
        Dictionary<string, object?>? kwargs, CancellationToken ct)
    {
        kwargs ??= new Dictionary<string, object?>(StringComparer.Ordinal);
        kwargs["context"] = ConsoleOperations.Context();
        return dispatcher.CallAsync(access.User.Database, access.Uid, model.Name, method, args, kwargs, ct);
    }

    /// <summary>The rows of search_read or read (a list of dictionaries, whatever the list's element type).</summary>
    private static List<IReadOnlyDictionary<string, object?>> Rows(object? result) => result is System.Collections.IEnumerable list
        ? list.OfType<IDictionary<string, object?>>().Select(d => (IReadOnlyDictionary<string, object?>)
            new Dictionary<string, object?>(d, StringComparer.Ordinal)).ToList()
        : [];

    private static string Shown(string text) => ConsoleErrors.Shorten(text);
}
