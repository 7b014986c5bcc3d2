using System.Globalization;
using System.Runtime.CompilerServices;
using Npgsql;

namespace Loomworks.Records;

/// <summary>read and search_read: one select list per call, then the attachment contents and x2many ids it cannot read.</summary>
public sealed partial class RecordEnvironment
{
    public async Task<List<Dictionary<string, object?>>> SearchReadAsync(ModelDef model, object? domain, IReadOnlyList<string>? fields,
        long offset, long? limit, string? order, CancellationToken ct)
    {
        access.Check(model, "read");
        await SyncIntrospectionAsync(model, ct);
        var sql = new SqlBuilder();
        // Validated in the order search then read would: the domain, the order, the page, then the fields.
        var where = Where(model, domain, "t0", sql);
        var orderBy = OrderBy(model, order, "t0");
        var page = Page(offset, limit, sql);
        var resolved = ResolveFields(model, fields);
        // One statement does the search and the read: the rows arrive in the search's order.
        var (columns, scalar) = SelectList(model, resolved);
        var text = $"SELECT {columns} FROM \"{model.Table}\" t0 WHERE {where} ORDER BY {orderBy}" + page;
        var completes = NeedsCompletion(model, resolved);
        var ordered = await ReadRowsAsync(text, sql, scalar, last: CommitsWithRead && !completes, ct);
        if (completes)
        {
            await CompleteRowsAsync(model, resolved, ById(ordered), ct);
        }
        return ordered;
    }

    public static IReadOnlyList<FieldDef> ResolveFields(ModelDef model, IReadOnlyList<string>? names)
    {
        if (names is null || names.Count == 0)
        {
            return model.FieldList.Where(f => !f.Hidden).ToList();
        }
        var result = new List<FieldDef> { model.Fields["id"] };
        foreach (var name in names)
        {
            var field = model.Field(name);
            if (field is null || field.Hidden)
            {
                throw OdooException.Value($"Invalid field {Domain.Show(name)} on model {Domain.Show(model.Name)}");
            }
            if (field.Name != "id")
            {
                result.Add(field);
            }
        }
        return result;
    }

    public async Task<List<Dictionary<string, object?>>> ReadAsync(ModelDef model, IReadOnlyList<long> ids,
        IReadOnlyList<string>? fieldNames, CancellationToken ct)
    {
        access.Check(model, "read");
        var fields = ResolveFields(model, fieldNames);
        if (ids.Count == 0)
        {
            return [];
        }
        await SyncIntrospectionAsync(model, ct);
        var sql = new SqlBuilder();
        var (columns, scalar) = SelectList(model, fields);
        var distinct = ids.Distinct().ToArray();
        var text = $"SELECT {columns} FROM \"{model.Table}\" t0 WHERE t0.id = ANY({sql.Add(distinct)}){RecordRule(model, "t0", sql)}";
        var rows = ById(await ReadRowsAsync(text, sql, scalar, last: false, ct));
        var missing = distinct.Where(id => !rows.ContainsKey(id)).ToList();
        if (missing.Count > 0)
        {
            throw OdooException.Missing(
                $"Record does not exist or has been deleted.\n(Record: {model.Name}({string.Join(", ", missing)},), User: {Uid})");
        }
        await CompleteRowsAsync(model, fields, rows, ct);
        return distinct.Select(id => rows[id]).ToList();
    }

    /// <summary>The select list for <paramref name="fields"/> (id first) and the stored fields it reads, in column order.</summary>
    private static (string Columns, List<FieldDef> Scalar) SelectList(ModelDef model, IReadOnlyList<FieldDef> fields)
    {
        var columns = new List<string> { "t0.id" };
        var scalar = new List<FieldDef>();
        foreach (var field in fields)
        {
            if (field.IsX2Many || field.Name == "id" || Records.Attachments.IsFileField(model, field))
            {
                continue;
            }
            scalar.Add(field);
            columns.Add(Domain.Expression(field, "t0"));
            if (field.Type == FieldType.Many2one)
            {
                var comodel = ModelRegistry.Get(field.Relation!);
                // The name of a linked record is shown even without read access to its model, as Odoo does.
                var displayName = string.Format(CultureInfo.InvariantCulture, comodel.Fields["display_name"].Sql!, "c");
                columns.Add($"(SELECT {displayName} FROM \"{comodel.Table}\" c WHERE c.id = {Domain.Expression(field, "t0")})");
            }
        }
        return (string.Join(", ", columns), scalar);
    }

    /// <summary>
    /// Runs a statement whose columns are <see cref="SelectList"/>'s and that reads each record once (its rows come
    /// from the model's table alone); the rows in statement order.
    /// </summary>
    private async Task<List<Dictionary<string, object?>>> ReadRowsAsync(string text, SqlBuilder sql, List<FieldDef> scalar, bool last,
        CancellationToken ct) =>
        await QueryAsync(text, sql, reader => ReadRowsAsync(reader, scalar, ct), last, ct);

    private static Dictionary<long, Dictionary<string, object?>> ById(List<Dictionary<string, object?>> rows) =>
        rows.ToDictionary(row => (long)row["id"]!);

    private static async Task<List<Dictionary<string, object?>>> ReadRowsAsync(NpgsqlDataReader reader, List<FieldDef> scalar,
        CancellationToken ct)
    {
        var ordered = new List<Dictionary<string, object?>>();
        while (await reader.ReadAsync(ct))
        {
            ordered.Add(ReadRow(reader, scalar));
        }
        return ordered;
    }

    /// <summary>The current row as wire values; compiled optimized from its first call, as it runs for every value read.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static Dictionary<string, object?> ReadRow(NpgsqlDataReader reader, List<FieldDef> scalar)
    {
        var row = new Dictionary<string, object?>(scalar.Count + 1, StringComparer.Ordinal) { ["id"] = (long)reader.GetInt32(0) };
        var i = 1;
        foreach (var field in scalar)
        {
            var raw = reader.IsDBNull(i) ? null : reader.GetValue(i);
            i++;
            if (field.Type == FieldType.Many2one)
            {
                var name = reader.IsDBNull(i) ? "" : reader.GetString(i);
                i++;
                row[field.Name] = raw is null
                    ? false
                    : new List<object?> { System.Convert.ToInt64(raw, CultureInfo.InvariantCulture), name };
            }
            else
            {
                row[field.Name] = ToWire(field, raw);
            }
        }
        return row;
    }

    /// <summary>Whether <see cref="CompleteRowsAsync"/> runs statements of its own for these fields.</summary>
    private static bool NeedsCompletion(ModelDef model, IReadOnlyList<FieldDef> fields) =>
        model == ModelRegistry.Attachment || fields.Any(f => f.IsX2Many);

    /// <summary>Fills what the select list does not read: attachment contents and x2many ids.</summary>
    private async Task CompleteRowsAsync(ModelDef model, IReadOnlyList<FieldDef> fields, Dictionary<long, Dictionary<string, object?>> rows,
        CancellationToken ct)
    {
        if (rows.Count == 0)
        {
            return;
        }
        if (model == ModelRegistry.Attachment)
        {
            await Records.Attachments.ReadAsync(this, fields, rows, ct);
        }
        long[]? ids = null;
        foreach (var field in fields)
        {
            if (!field.IsX2Many)
            {
                continue;
            }
            ids ??= [.. rows.Keys];
            var links = await X2ManyIdsAsync(model, field, ids, ct);
            foreach (var (id, row) in rows)
            {
                row[field.Name] = links.TryGetValue(id, out var list) ? list.Cast<object?>().ToList() : new List<object?>();
            }
        }
    }

    private async Task<Dictionary<long, List<long>>> X2ManyIdsAsync(ModelDef model, FieldDef field, long[] ids, CancellationToken ct)
    {
        var comodel = ModelRegistry.Get(field.Relation!);
        var sql = new SqlBuilder();
        var active = comodel.HasActive && ActiveTest ? " AND c.active" : "";
        var text = field.Type == FieldType.One2many
            ? $"SELECT c.\"{field.InverseName}\", c.id FROM \"{comodel.Table}\" c"
                + $" WHERE c.\"{field.InverseName}\" = ANY({sql.Add(ids)}){active} ORDER BY {OrderBy(comodel, null, "c")}"
            : $"SELECT r.\"{field.Column1}\", c.id FROM \"{field.RelationTable}\" r"
                + $" JOIN \"{comodel.Table}\" c ON c.id = r.\"{field.Column2}\""
                + $" WHERE r.\"{field.Column1}\" = ANY({sql.Add(ids)}){active} ORDER BY {OrderBy(comodel, null, "c")}";
        _ = model;
        return await QueryAsync(text, sql, async reader =>
        {
            var result = new Dictionary<long, List<long>>();
            while (await reader.ReadAsync(ct))
            {
                var owner = (long)reader.GetInt32(0);
                if (!result.TryGetValue(owner, out var list))
                {
                    result[owner] = list = [];
                }
                list.Add(reader.GetInt32(1));
            }
            return result;
        }, last: false, ct);
    }

    private static object? ToWire(FieldDef field, object? raw) => field.Type switch
    {
        FieldType.Integer => raw is null ? 0L : System.Convert.ToInt64(raw, CultureInfo.InvariantCulture),
        FieldType.Float or FieldType.Monetary => raw is null ? 0.0 : System.Convert.ToDouble(raw, CultureInfo.InvariantCulture),
        FieldType.Boolean => raw is true,
        FieldType.Date => raw is DateOnly d ? Values.FormatDate(d)
            : raw is DateTime dd ? Values.FormatDate(DateOnly.FromDateTime(dd)) : false,
        FieldType.Datetime => raw is DateTime dt ? Values.FormatDateTime(dt) : false,
        FieldType.Binary => raw is byte[] bytes ? System.Convert.ToBase64String(bytes) : false,
        _ => raw is null ? false : raw,
    };
}
