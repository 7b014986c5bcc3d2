
namespace Loomworks.Records;

/// <summary>fields_get, name_search and default_get: what a client asks before it reads or writes.</summary>
public sealed partial class RecordEnvironment
{
    public static Dictionary<string, object?> FieldsGet(ModelDef model, IReadOnlyList<string>? allFields, IReadOnlyList<string>? attributes)
    {
        var result = new Dictionary<string, object?>(StringComparer.Ordinal);
        var all = allFields is null || allFields.Count == 0;
        foreach (var field in model.FieldList.Where(f => !f.Hidden && (all || allFields!.Contains(f.Name))))
        {
            var description = new Dictionary<string, object?>(StringComparer.Ordinal)
            {
                ["type"] = field.TypeName,
                ["string"] = field.Label,
                ["help"] = field.Help ?? (object)false,
                ["required"] = field.Required,
                ["readonly"] = IrModels.IsReadOnly(field),
                ["store"] = field.HasColumn,
                ["searchable"] = field.HasColumn || field.Sql is not null || field.IsX2Many,
                ["sortable"] = field.HasColumn || field.Sql is not null,
                ["name"] = field.Name,
                ["company_dependent"] = false,
                ["manual"] = false,
                ["depends"] = new List<object?>(),
                ["exportable"] = true,
                ["groupable"] = field.HasColumn,
            };
            if (field.Relation is not null)
            {
                description["relation"] = field.Relation;
                description["context"] = new Dictionary<string, object?>();
                description["domain"] = new List<object?>();
            }
            if (field.InverseName is not null)
            {
                description["relation_field"] = field.InverseName;
            }
            if (field.Selection is not null)
            {
                description["selection"] = field.Selection.Select(s => (object?)new List<object?> { s.Value, s.Label }).ToList();
            }
            if (field.Type is FieldType.Char or FieldType.Text or FieldType.Html)
            {
                description["translate"] = false;
                description["trim"] = true;
            }
            if (attributes is { Count: > 0 })
            {
                description = description.Where(kv => attributes.Contains(kv.Key))
                    .ToDictionary(kv => kv.Key, kv => kv.Value, StringComparer.Ordinal);
            }
            result[field.Name] = description;
        }
        return result;
    }

    public async Task<List<object?>> NameSearchAsync(ModelDef model, string name, object? domain, string op, long? limit,
        CancellationToken ct)
    {
        var full = new List<object?>();
        if (domain is IList<object?> d)
        {
            full.AddRange(d);
        }
        else if (domain is not (null or false))
        {
            throw OdooException.Value($"Invalid domain {Domain.Show(domain)}");
        }
        if (name.Length > 0 || op is not ("ilike" or "like" or "=like" or "=ilike"))
        {
            if (full.Count > 0)
            {
                full.Insert(0, "&");
            }
            full.Add(new List<object?> { "display_name", op, name });
        }
        var ids = await SearchAsync(model, full, 0, limit, null, ct);
        var rows = await ReadAsync(model, ids, ["display_name"], ct);
        return rows.Select(r => (object?)new List<object?> { r["id"], r["display_name"] }).ToList();
    }

    public Dictionary<string, object?> DefaultGet(ModelDef model, IReadOnlyList<string> fields)
    {
        var result = new Dictionary<string, object?>(StringComparer.Ordinal);
        foreach (var name in fields)
        {
            var field = model.Field(name);
            if (field is null)
            {
                continue; // Odoo ignores unknown names in default_get.
            }
            if (Context.TryGetValue("default_" + name, out var fromContext))
            {
                result[name] = fromContext;
            }
            else if (field.Default is not null)
            {
                result[name] = field.Default;
            }
        }
        return result;
    }
}
