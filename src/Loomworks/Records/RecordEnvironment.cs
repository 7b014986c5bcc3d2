using Loomworks.Security;
using System.Globalization;
using System.Runtime.CompilerServices;
using Npgsql;
using NpgsqlTypes;

namespace Loomworks.Records;

/// <summary>
/// The ORM for one call: a transaction in a tenant database, the calling user and their rights, and the context.
/// Values in and out are wire values (long, double, bool, string, null, lists, dictionaries); empty values read as False.
/// </summary>
public sealed partial class RecordEnvironment(NpgsqlConnection connection, NpgsqlTransaction transaction, AccessRights access,
    IReadOnlyDictionary<string, object?>? context = null, AttachmentStorage? attachments = null)
{
    public long Uid => access.Uid;
    public AccessRights Access => access;
    public IReadOnlyDictionary<string, object?> Context { get; } = context ?? new Dictionary<string, object?>();
    public NpgsqlConnection Connection => connection;
    public NpgsqlTransaction Transaction => transaction;

    /// <summary>Where ir.attachment contents go; null in environments that store no files (their datas writes are refused).</summary>
    public AttachmentStorage? Attachments => attachments;

    private bool ActiveTest => !Context.TryGetValue("active_test", out var v) || Values.Truthy(v);

    /// <summary>
    /// True while a sale order's order_line commands run: the order's own recompute follows them, so the lines they
    /// create, write or delete leave the order's amounts alone (one recompute per call, not one per line).
    /// </summary>
    private bool _orderAmountsDeferred;

    // ---- search ---------------------------------------------------------------------------------------------------

    public async Task<List<long>> SearchAsync(ModelDef model, object? domain, long offset, long? limit, string? order,
        CancellationToken ct)
    {
        access.Check(model, "read");
        var sql = new SqlBuilder();
        var text = $"SELECT t0.id FROM \"{model.Table}\" t0 WHERE {Where(model, domain, "t0", sql)} ORDER BY {OrderBy(model, order, "t0")}"
            + Page(offset, limit, sql);
        return await QueryAsync(text, sql, async reader =>
        {
            var ids = new List<long>();
            while (await reader.ReadAsync(ct))
            {
                ids.Add(reader.GetInt32(0));
            }
            return ids;
        }, last: false, ct);
    }

    public async Task<long> SearchCountAsync(ModelDef model, object? domain, long? limit, CancellationToken ct)
    {
        access.Check(model, "read");
        var sql = new SqlBuilder();
        var inner = $"SELECT 1 FROM \"{model.Table}\" t0 WHERE {Where(model, domain, "t0", sql)}" + Page(0, limit, sql);
        return await QueryAsync($"SELECT count(*) FROM ({inner}) c", sql,
            async reader => await reader.ReadAsync(ct) ? reader.GetInt64(0) : 0, last: false, ct);
    }

    private string Where(ModelDef model, object? domain, string alias, SqlBuilder sql)
    {
        sql.ActiveTest = ActiveTest;
        var where = Domain.Compile(model, domain, alias, sql);
        if (model.HasActive && ActiveTest && !Domain.Mentions(domain, "active"))
        {
            where = $"{where} AND {alias}.active";
        }
        return where + RecordRule(model, alias, sql);
    }

    /// <summary>The record rules: API keys are visible to their owner only, unless the user is an administrator.</summary>
    private string RecordRule(ModelDef model, string alias, SqlBuilder sql) =>
        model == ModelRegistry.ApiKeys && !access.IsAdmin ? $" AND {alias}.user_id = {sql.Add(Uid)}" : "";

    private static string Page(long offset, long? limit, SqlBuilder sql)
    {
        if (offset < 0)
        {
            throw OdooException.Value($"Invalid offset {offset}: it must not be negative");
        }
        if (limit < 0)
        {
            throw OdooException.Value($"Invalid limit {limit}: it must not be negative");
        }
        var text = limit is > 0 ? " LIMIT " + sql.Add(limit.Value) : "";
        return offset > 0 ? text + " OFFSET " + sql.Add(offset) : text;
    }

    /// <summary>An ORDER BY built only from registry names: each part "field [asc|desc] [nulls first|last]".</summary>
    public static string OrderBy(ModelDef model, string? order, string alias)
    {
        var spec = string.IsNullOrWhiteSpace(order) ? model.Order : order;
        var parts = new List<string>();
        foreach (var rawPart in spec.Split(',', StringSplitOptions.TrimEntries))
        {
            var words = rawPart.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            var field = words.Length > 0 ? model.Field(words[0]) : null;
            var direction = words.Length > 1 ? words[1].ToUpperInvariant() : "ASC";
            var nulls = words.Length > 2 ? string.Join(' ', words[2..]).ToUpperInvariant() : null;
            if (field is null || field.Hidden || field.IsX2Many || words.Length > 4 || direction is not ("ASC" or "DESC")
                || nulls is not (null or "NULLS FIRST" or "NULLS LAST") || field.Type == FieldType.Binary)
            {
                throw OdooException.Value($"Invalid order {Domain.Show(order)} for model {model.Name}: '{rawPart}' is not a field with an optional asc/desc");
            }
            string expression;
            if (field.Type == FieldType.Many2one && field.Name != "id")
            {
                var comodel = ModelRegistry.Get(field.Relation!);
                var c = alias + "_" + field.Name;
                expression = $"(SELECT {string.Format(CultureInfo.InvariantCulture, comodel.Fields["display_name"].Sql!, c)} FROM \"{comodel.Table}\" {c} WHERE {c}.id = {Domain.Expression(field, alias)})";
            }
            else
            {
                expression = Domain.Expression(field, alias);
            }
            parts.Add($"{expression} {direction}" + (nulls is null ? "" : " " + nulls));
        }
        if (!parts.Any(p => p.StartsWith(alias + ".\"id\"", StringComparison.Ordinal)))
        {
            parts.Add(alias + ".\"id\" " + (spec.Contains("desc", StringComparison.OrdinalIgnoreCase) ? "DESC" : "ASC"));
        }
        return string.Join(", ", parts);
    }

    // ---- read -----------------------------------------------------------------------------------------------------

    public async Task<List<Dictionary<string, object?>>> SearchReadAsync(ModelDef model, object? domain, IReadOnlyList<string>? fields,
        long offset, long? limit, string? order, CancellationToken ct)
    {
        access.Check(model, "read");
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

    public async Task<List<Dictionary<string, object?>>> ReadAsync(ModelDef model, IReadOnlyList<long> ids, IReadOnlyList<string>? fieldNames,
        CancellationToken ct)
    {
        access.Check(model, "read");
        var fields = ResolveFields(model, fieldNames);
        if (ids.Count == 0)
        {
            return [];
        }
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
                columns.Add($"(SELECT {string.Format(CultureInfo.InvariantCulture, comodel.Fields["display_name"].Sql!, "c")} FROM \"{comodel.Table}\" c WHERE c.id = {Domain.Expression(field, "t0")})");
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
            ? $"SELECT c.\"{field.InverseName}\", c.id FROM \"{comodel.Table}\" c WHERE c.\"{field.InverseName}\" = ANY({sql.Add(ids)}){active} ORDER BY {OrderBy(comodel, null, "c")}"
            : $"SELECT r.\"{field.Column1}\", c.id FROM \"{field.RelationTable}\" r JOIN \"{comodel.Table}\" c ON c.id = r.\"{field.Column2}\" WHERE r.\"{field.Column1}\" = ANY({sql.Add(ids)}){active} ORDER BY {OrderBy(comodel, null, "c")}";
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
        FieldType.Date => raw is DateOnly d ? Values.FormatDate(d) : raw is DateTime dd ? Values.FormatDate(DateOnly.FromDateTime(dd)) : false,
        FieldType.Datetime => raw is DateTime dt ? Values.FormatDateTime(dt) : false,
        FieldType.Binary => raw is byte[] bytes ? System.Convert.ToBase64String(bytes) : false,
        _ => raw is null ? false : raw,
    };

    // ---- create / write / unlink -----------------------------------------------------------------------------------

    public async Task<object> CreateAsync(ModelDef model, object? valsOrList, CancellationToken ct)
    {
        switch (valsOrList)
        {
            case IDictionary<string, object?> vals:
                return await CreateOneAsync(model, vals, ct);
            case IList<object?> list:
                var ids = new List<object?>();
                foreach (var item in list)
                {
                    ids.Add(await CreateOneAsync(model, item as IDictionary<string, object?>
                        ?? throw OdooException.Type($"create() takes a dictionary or a list of dictionaries, not {Domain.Show(item)}"), ct));
                }
                return ids;
            default:
                throw OdooException.Type($"create() takes a dictionary or a list of dictionaries, not {Domain.Show(valsOrList)}");
        }
    }

    public async Task<long> CreateOneAsync(ModelDef model, IDictionary<string, object?> vals, CancellationToken ct)
    {
        access.Check(model, "create");
        if (model == ModelRegistry.ApiKeys)
        {
            throw OdooException.User("API keys are made with res.users.apikeys' generate method, which shows the key once.");
        }
        var values = new Dictionary<string, object?>(vals, StringComparer.Ordinal);
        foreach (var (key, value) in Context)
        {
            if (key.StartsWith("default_", StringComparison.Ordinal) && model.Field(key[8..]) is { } f && !values.ContainsKey(f.Name))
            {
                values[f.Name] = value;
            }
        }
        foreach (var field in model.FieldList.Where(f => f.Default is not null && !values.ContainsKey(f.Name)))
        {
            values[field.Name] = field.Default;
        }
        if (model == ModelRegistry.SaleOrder && !values.ContainsKey("date_order"))
        {
            values["date_order"] = Values.FormatDateTime(DateTime.UtcNow);
        }
        if (model == ModelRegistry.Users)
        {
            await PrepareUserAsync(values, ct);
        }
        if (model == ModelRegistry.Attachment)
        {
            await Records.Attachments.PrepareAsync(this, values, creating: true, ct);
        }
        var (columns, x2many) = Split(model, values, creating: true);
        foreach (var field in model.FieldList.Where(f => f.Required && f.HasColumn && !f.Computed))
        {
            if (!columns.TryGetValue(field.Name, out var v) || v is null)
            {
                throw MandatoryMissing(model, field);
            }
        }
        var sql = new SqlBuilder();
        var names = new List<string>();
        var placeholders = new List<string>();
        foreach (var (name, value) in columns)
        {
            names.Add("\"" + name + "\"");
            placeholders.Add(value is null ? "NULL" : sql.Add(value));
        }
        if (model == ModelRegistry.SaleOrderLine)
        {
            // A new line's stored computed fields go into its INSERT, computed from the values it is created with as
            // RecomputeAsync computes them from the columns: no UPDATE of the row just inserted.
            string Value(string field) => names.IndexOf("\"" + field + "\"") is var i and >= 0 && placeholders[i] != "NULL"
                ? $"CAST({placeholders[i]} AS double precision)" : "NULL";
            var subtotal = LineSubtotalSql(Value("product_uom_qty"), Value("price_unit"), Value("discount"));
            names.AddRange(["price_subtotal", "price_total"]);
            placeholders.AddRange([subtotal, subtotal]);
            if (columns.GetValueOrDefault("name") is null && names.IndexOf("\"product_id\"") is var p and >= 0 && placeholders[p] != "NULL")
            {
                var productName = $"(SELECT pp.name FROM product_product pp WHERE pp.id = {placeholders[p]})";
                if (names.IndexOf("\"name\"") is var n and >= 0)
                {
                    placeholders[n] = productName;
                }
                else
                {
                    names.Add("\"name\"");
                    placeholders.Add(productName);
                }
            }
        }
        names.AddRange(["create_uid", "write_uid", "create_date", "write_date"]);
        var uid = sql.Add(Uid);
        placeholders.AddRange([uid, uid, "now() at time zone 'utc'", "now() at time zone 'utc'"]);
        long id;
        await using (var command = sql.Command(
            $"INSERT INTO \"{model.Table}\" ({string.Join(", ", names)}) VALUES ({string.Join(", ", placeholders)}) RETURNING id",
            connection, transaction))
        {
            id = (int)(await command.ExecuteScalarAsync(ct))!;
        }
        foreach (var (field, commands) in x2many)
        {
            await ApplyCommandsAsync(model, field, id, commands, ct);
        }
        if (model == ModelRegistry.SaleOrderLine)
        {
            if (!_orderAmountsDeferred)
            {
                await RecomputeOrdersAsync([System.Convert.ToInt64(columns["order_id"], CultureInfo.InvariantCulture)], ct);
            }
        }
        else
        {
            await RecomputeAsync(model, [id], written: null, ct);
        }
        return id;
    }

    public async Task<bool> WriteAsync(ModelDef model, IReadOnlyList<long> ids, IDictionary<string, object?> vals, CancellationToken ct)
    {
        access.Check(model, "write");
        if (model == ModelRegistry.ApiKeys)
        {
            throw OdooException.User("API keys cannot be changed; revoke the key and generate a new one.");
        }
        var values = new Dictionary<string, object?>(vals, StringComparer.Ordinal);
        if (model == ModelRegistry.Users && values.TryGetValue("password", out var password))
        {
            values["password"] = password is string { Length: > 0 } p ? Passwords.Hash(p)
                : throw OdooException.User("Setting empty passwords is not allowed for security reasons!");
        }
        var distinct = ids.Distinct().ToArray();
        List<string> replaced = [];
        if (model == ModelRegistry.Attachment)
        {
            await EnsureExistAsync(model, distinct, ct);
            await Records.Attachments.PrepareAsync(this, values, creating: false, ct);
            replaced = values.ContainsKey("store_fname") ? await Records.Attachments.StoreFnamesAsync(this, distinct, ct) : [];
        }
        var (columns, x2many) = Split(model, values, creating: false);
        foreach (var (name, value) in columns)
        {
            if (value is null && model.Fields[name].Required)
            {
                throw MandatoryMissing(model, model.Fields[name]);
            }
        }
        await EnsureExistAsync(model, distinct, ct);
        if (distinct.Length == 0)
        {
            return true;
        }
        var sql = new SqlBuilder();
        var sets = columns.Select(c => $"\"{c.Key}\" = " + (c.Value is null ? "NULL" : sql.Add(c.Value))).ToList();
        sets.Add("write_uid = " + sql.Add(Uid));
        sets.Add("write_date = now() at time zone 'utc'");
        await using (var command = sql.Command(
            $"UPDATE \"{model.Table}\" SET {string.Join(", ", sets)} WHERE id = ANY({sql.Add(distinct)})", connection, transaction))
        {
            await command.ExecuteNonQueryAsync(ct);
        }
        foreach (var id in distinct)
        {
            foreach (var (field, commands) in x2many)
            {
                await ApplyCommandsAsync(model, field, id, commands, ct);
            }
        }
        await RecomputeAsync(model, distinct, [.. columns.Keys, .. x2many.Select(x => x.Item1.Name)], ct);
        Records.Attachments.MarkDereferenced(this, replaced);
        return true;
    }

    public async Task<bool> UnlinkAsync(ModelDef model, IReadOnlyList<long> ids, CancellationToken ct)
    {
        access.Check(model, "unlink");
        var distinct = ids.Distinct().ToArray();
        if (model == ModelRegistry.Users && distinct.Any(id => id is 1 or 2))
        {
            throw OdooException.User("You can not remove the admin user as it is used internally for resources created by Odoo (updates, module installation, ...)");
        }
        await EnsureExistAsync(model, distinct, ct);
        var orders = model == ModelRegistry.SaleOrderLine && !_orderAmountsDeferred
            ? await ScalarsAsync("SELECT DISTINCT order_id FROM sale_order_line WHERE id = ANY($1)", distinct, ct) : [];
        // Only the rows go, as in Odoo: the files are marked and left to the collector.
        var files = model == ModelRegistry.Attachment ? await Records.Attachments.StoreFnamesAsync(this, distinct, ct) : [];
        var sql = new SqlBuilder();
        await using (var command = sql.Command($"DELETE FROM \"{model.Table}\" WHERE id = ANY({sql.Add(distinct)})", connection, transaction))
        {
            await command.ExecuteNonQueryAsync(ct);
        }
        if (orders.Count > 0)
        {
            await RecomputeOrdersAsync(orders.ToArray(), ct);
        }
        Records.Attachments.MarkDereferenced(this, files);
        return true;
    }

    private async Task EnsureExistAsync(ModelDef model, long[] ids, CancellationToken ct)
    {
        var sql = new SqlBuilder();
        var text = $"SELECT t0.id FROM \"{model.Table}\" t0 WHERE t0.id = ANY({sql.Add(ids)}){RecordRule(model, "t0", sql)}";
        await using var command = sql.Command(text, connection, transaction);
        var found = new HashSet<long>();
        await using (var reader = await command.ExecuteReaderAsync(ct))
        {
            while (await reader.ReadAsync(ct))
            {
                found.Add(reader.GetInt32(0));
            }
        }
        var missing = ids.Where(id => !found.Contains(id)).ToList();
        if (missing.Count > 0)
        {
            throw OdooException.Missing(
                $"Record does not exist or has been deleted.\n(Record: {model.Name}({string.Join(", ", missing)},), User: {Uid})");
        }
    }

    private static OdooException MandatoryMissing(ModelDef model, FieldDef field) => OdooException.Validation(
        "The operation cannot be completed:\n- Create/update: a mandatory field is not set.\n" +
        $"- Delete: another model requires the record being deleted. If possible, archive it instead.\n\nModel: {model.Label} ({model.Name})\nField: {field.Label} ({field.Name})");

    /// <summary>Checks and converts client values: columns to parameter values, x2many fields to their commands.</summary>
    private static (Dictionary<string, object?> Columns, List<(FieldDef, object?)> X2Many) Split(ModelDef model,
        IDictionary<string, object?> values, bool creating)
    {
        var columns = new Dictionary<string, object?>(StringComparer.Ordinal);
        var x2many = new List<(FieldDef, object?)>();
        foreach (var (name, value) in values)
        {
            var field = model.Field(name);
            if (field is null || (field.Hidden && !(model == ModelRegistry.Users && name == "password")))
            {
                throw OdooException.Value($"Invalid field {Domain.Show(name)} on model {Domain.Show(model.Name)}");
            }
            if (name is "id" or "create_uid" or "create_date" or "write_uid" or "write_date" || field.Computed)
            {
                continue; // Odoo ignores values for magic and computed fields without an inverse.
            }
            if (field.IsX2Many)
            {
                x2many.Add((field, value));
                continue;
            }
            columns[name] = ToColumn(model, field, value);
        }
        _ = creating;
        return (columns, x2many);
    }

    private static object? ToColumn(ModelDef model, FieldDef field, object? value)
    {
        var bad = () => OdooException.Value(
            $"Wrong value for {model.Name}.{field.Name}: {Domain.Show(value)} is not a valid {field.TypeName}");
        if (value is null || (value is false && field.Type != FieldType.Boolean))
        {
            return field.Type switch { FieldType.Integer => 0L, FieldType.Float or FieldType.Monetary => 0.0, _ => null };
        }
        switch (field.Type)
        {
            case FieldType.Char or FieldType.Text or FieldType.Html:
                return value switch
                {
                    string s => s.Replace("\0", "", StringComparison.Ordinal),
                    long or double => System.Convert.ToString(value, CultureInfo.InvariantCulture),
                    _ => throw bad(),
                };
            case FieldType.Selection:
                return value is string sel && field.Selection!.Any(s => s.Value == sel) ? sel
                    : throw OdooException.Value($"Wrong value for {model.Name}.{field.Name}: {Domain.Show(value)}");
            case FieldType.Integer:
                return value switch
                {
                    long l when l is >= int.MinValue and <= int.MaxValue => (int)l,
                    bool b => b ? 1 : 0,
                    double d when d == Math.Floor(d) && Math.Abs(d) <= int.MaxValue => (int)d,
                    _ => throw bad(),
                };
            case FieldType.Many2one:
                return value switch
                {
                    long l when l is > 0 and <= int.MaxValue => (int)l,
                    IList<object?> { Count: > 0 } pair when pair[0] is long l && l is > 0 and <= int.MaxValue => (int)l,
                    _ => throw bad(),
                };
            case FieldType.Float or FieldType.Monetary:
            {
                var d = value switch
                {
                    long l => l,
                    double dd => dd,
                    bool b => b ? 1.0 : 0.0,
                    _ => throw bad(),
                };
                if (!double.IsFinite(d))
                {
                    throw bad();
                }
                return field.Type == FieldType.Monetary ? (object)(decimal)d : d;
            }
            case FieldType.Boolean:
                return Values.Truthy(value);
            case FieldType.Date:
                return value switch
                {
                    string s when s.Length >= 10 && DateOnly.TryParseExact(s[..10], Values.DateFormat, CultureInfo.InvariantCulture, DateTimeStyles.None, out var d) => d,
                    DateTime dt => DateOnly.FromDateTime(dt),
                    _ => throw bad(),
                };
            case FieldType.Datetime:
                return value switch
                {
                    string s when Values.TryParseDateTime(s, out var dt) => dt,
                    DateTime dt => DateTime.SpecifyKind(dt, DateTimeKind.Unspecified),
                    _ => throw bad(),
                };
            case FieldType.Binary:
                try
                {
                    return value switch
                    {
                        byte[] bytes => bytes,
                        string s => System.Convert.FromBase64String(s),
                        _ => throw bad(),
                    };
                }
                catch (FormatException)
                {
                    throw bad();
                }
            default:
                throw bad();
        }
    }

    // ---- x2many commands -------------------------------------------------------------------------------------------

    private async Task ApplyCommandsAsync(ModelDef model, FieldDef field, long id, object? commands, CancellationToken ct)
    {
        if (model == ModelRegistry.SaleOrder && field.Name == "order_line" && !_orderAmountsDeferred)
        {
            _orderAmountsDeferred = true;
            try
            {
                await ApplyCommandsAsync(model, field, id, commands, ct);
            }
            finally
            {
                _orderAmountsDeferred = false;
            }
            return;
        }
        var comodel = ModelRegistry.Get(field.Relation!);
        if (commands is null or false)
        {
            return;
        }
        if (commands is not IList<object?> list)
        {
            throw OdooException.Value($"Wrong value for {model.Name}.{field.Name}: {Domain.Show(commands)} is not a list of commands");
        }
        if (list.Count > 0 && list.All(c => c is long))
        {
            list = [new List<object?> { 6L, 0L, list }];
        }
        foreach (var item in list)
        {
            if (item is not IList<object?> { Count: > 0 } command || command[0] is not long code)
            {
                throw OdooException.Value($"Invalid command {Domain.Show(item)} for {model.Name}.{field.Name}");
            }
            long Arg() => command.Count > 1 && command[1] is long l ? l
                : throw OdooException.Value($"Invalid command {Domain.Show(item)} for {model.Name}.{field.Name}: it needs a record id");
            IDictionary<string, object?> Vals() => command.Count > 2 && command[2] is IDictionary<string, object?> d ? d
                : throw OdooException.Value($"Invalid command {Domain.Show(item)} for {model.Name}.{field.Name}: it needs values");
            switch (code)
            {
                case 0:
                {
                    var vals = new Dictionary<string, object?>(Vals(), StringComparer.Ordinal);
                    if (field.Type == FieldType.One2many)
                    {
                        vals[field.InverseName!] = id;
                        await CreateOneAsync(comodel, vals, ct);
                    }
                    else
                    {
                        await LinkAsync(field, id, [await CreateOneAsync(comodel, vals, ct)], ct);
                    }
                    break;
                }
                case 1:
                    await WriteAsync(comodel, [Arg()], Vals(), ct);
                    break;
                case 2:
                    await UnlinkAsync(comodel, [Arg()], ct);
                    break;
                case 3:
                    await DetachAsync(model, field, id, [Arg()], ct);
                    break;
                case 4:
                    if (field.Type == FieldType.One2many)
                    {
                        await WriteAsync(comodel, [Arg()], new Dictionary<string, object?> { [field.InverseName!] = id }, ct);
                    }
                    else
                    {
                        await LinkAsync(field, id, [Arg()], ct);
                    }
                    break;
                case 5:
                    await DetachAsync(model, field, id, null, ct);
                    break;
                case 6:
                {
                    var ids = command.Count > 2 && command[2] is IList<object?> l && l.All(v => v is long)
                        ? l.Cast<long>().ToArray()
                        : throw OdooException.Value($"Invalid command {Domain.Show(item)} for {model.Name}.{field.Name}: it needs a list of ids");
                    await DetachAsync(model, field, id, null, ct, keep: ids);
                    if (field.Type == FieldType.One2many)
                    {
                        if (ids.Length > 0)
                        {
                            await WriteAsync(comodel, ids, new Dictionary<string, object?> { [field.InverseName!] = id }, ct);
                        }
                    }
                    else
                    {
                        await LinkAsync(field, id, ids, ct);
                    }
                    break;
                }
                default:
                    throw OdooException.Value($"Invalid command {Domain.Show(item)} for {model.Name}.{field.Name}: unknown command {code}");
            }
        }
    }

    private async Task LinkAsync(FieldDef field, long id, long[] targets, CancellationToken ct)
    {
        if (targets.Length == 0)
        {
            return;
        }
        await EnsureExistAsync(ModelRegistry.Get(field.Relation!), targets.Distinct().ToArray(), ct);
        var sql = new SqlBuilder();
        await using var command = sql.Command(
            $"INSERT INTO \"{field.RelationTable}\" (\"{field.Column1}\", \"{field.Column2}\") SELECT {sql.Add(id)}, unnest({sql.Add(targets)}::integer[]) ON CONFLICT DO NOTHING",
            connection, transaction);
        await command.ExecuteNonQueryAsync(ct);
    }

    /// <summary>Commands 3, 5 and the removal half of 6: unlink relations (or, for required inverses, the lines themselves).</summary>
    private async Task DetachAsync(ModelDef model, FieldDef field, long id, long[]? only, CancellationToken ct, long[]? keep = null)
    {
        var sql = new SqlBuilder();
        var filter = (only is null ? "" : $" AND id = ANY({sql.Add(only)})") + (keep is null ? "" : $" AND NOT (id = ANY({sql.Add(keep)}))");
        if (field.Type == FieldType.Many2many)
        {
            var relFilter = filter.Replace(" id ", $" \"{field.Column2}\" ", StringComparison.Ordinal).Replace("(id ", $"(\"{field.Column2}\" ", StringComparison.Ordinal);
            await using var command = sql.Command(
                $"DELETE FROM \"{field.RelationTable}\" WHERE \"{field.Column1}\" = {sql.Add(id)}{relFilter}", connection, transaction);
            await command.ExecuteNonQueryAsync(ct);
            return;
        }
        var comodel = ModelRegistry.Get(field.Relation!);
        var inverse = comodel.Fields[field.InverseName!];
        var children = await ScalarsAsync(
            $"SELECT id FROM \"{comodel.Table}\" WHERE \"{inverse.Name}\" = {sql.Add(id)}{filter}", sql, ct);
        if (children.Count == 0)
        {
            return;
        }
        if (inverse.Required || inverse.OnDelete == "cascade")
        {
            await UnlinkAsync(comodel, children, ct);
        }
        else
        {
            await WriteAsync(comodel, children, new Dictionary<string, object?> { [inverse.Name] = false }, ct);
        }
        _ = model;
    }

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

    // ---- stored computed fields ------------------------------------------------------------------------------------

    /// <summary>
    /// The stored computed fields of <paramref name="ids"/> after a create (<paramref name="written"/> null) or after a
    /// write of the <paramref name="written"/> fields, which recomputes only what depends on them: a partner's complete
    /// name its name, parent and company flag, an order's amounts its lines (its name is set once, at create). A new
    /// line needs none (its INSERT computed them); a new order gets its name and its amounts in one UPDATE.
    /// </summary>
    private async Task RecomputeAsync(ModelDef model, long[] ids, IReadOnlyCollection<string>? written, CancellationToken ct)
    {
        bool Wrote(params string[] fields) => written is null || fields.Any(written.Contains);
        if (model == ModelRegistry.Partner && Wrote("name", "parent_id", "is_company"))
        {
            // Own names first, then the children whose complete name shows this one.
            await ExecuteAsync("""
                UPDATE res_partner p SET complete_name = CASE
                    WHEN p.parent_id IS NOT NULL AND NOT coalesce(p.is_company, false) AND par.name IS NOT NULL
                        THEN par.name || ', ' || coalesce(p.name, '') ELSE p.name END
                FROM res_partner p2 LEFT JOIN res_partner par ON par.id = p2.parent_id
                WHERE p.id = p2.id AND (p.id = ANY($1) OR p.parent_id = ANY($1))
                """, ids, ct);
        }
        else if (model == ModelRegistry.SaleOrderLine)
        {
            var subtotal = LineSubtotalSql("product_uom_qty", "price_unit", "discount");
            await ExecuteAsync($"""
                UPDATE sale_order_line SET price_subtotal = {subtotal}, price_total = {subtotal},
                    name = coalesce(name, (SELECT pp.name FROM product_product pp WHERE pp.id = product_id))
                WHERE id = ANY($1)
                """, ids, ct);
            if (!_orderAmountsDeferred)
            {
                await RecomputeOrdersAsync((await ScalarsAsync("SELECT DISTINCT order_id FROM sale_order_line WHERE id = ANY($1)", ids, ct)).ToArray(), ct);
            }
        }
        else if (model == ModelRegistry.SaleOrder && Wrote("order_line"))
        {
            await ExecuteAsync(written is null ? NewOrdersSql : OrderAmountsSql, ids, ct);
        }
    }

    /// <summary>A line's subtotal (and total: no taxes) from its quantity, unit price and discount, given as SQL expressions.</summary>
    private static string LineSubtotalSql(string quantity, string unitPrice, string discount) =>
        $"round((coalesce({quantity}, 0) * coalesce({unitPrice}, 0) * (1 - coalesce({discount}, 0) / 100.0))::numeric, 2)";

    private const string OrderAmountsSql = """
        UPDATE sale_order o SET amount_untaxed = s.total, amount_tax = 0, amount_total = s.total
        FROM (SELECT so.id, coalesce(sum(l.price_subtotal), 0) AS total FROM sale_order so
              LEFT JOIN sale_order_line l ON l.order_id = so.id WHERE so.id = ANY($1) GROUP BY so.id) s
        WHERE o.id = s.id
        """;

    /// <summary>New orders: their amounts, and the name S00042 from the id when the client left the default.</summary>
    private static readonly string NewOrdersSql = OrderAmountsSql.Replace(
        "SET amount_untaxed", "SET name = CASE WHEN o.name = 'New' THEN 'S' || lpad(o.id::text, 5, '0') ELSE o.name END, amount_untaxed",
        StringComparison.Ordinal);

    private Task RecomputeOrdersAsync(long[] orderIds, CancellationToken ct) => ExecuteAsync(OrderAmountsSql, orderIds, ct);

    private async Task ExecuteAsync(string text, long[] ids, CancellationToken ct)
    {
        await using var command = new NpgsqlCommand(text, connection, transaction);
        command.Parameters.Add(new NpgsqlParameter { Value = ids, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Integer });
        await command.ExecuteNonQueryAsync(ct);
    }

    // ---- users -----------------------------------------------------------------------------------------------------

    private async Task PrepareUserAsync(Dictionary<string, object?> values, CancellationToken ct)
    {
        if (values.TryGetValue("password", out var password))
        {
            values["password"] = password is string { Length: > 0 } p ? Passwords.Hash(p) : null;
        }
        if (values.GetValueOrDefault("partner_id") is null or false)
        {
            var partner = new Dictionary<string, object?>
            {
                ["name"] = values.GetValueOrDefault("name") ?? values.GetValueOrDefault("login"),
                ["email"] = values.GetValueOrDefault("email") ?? (values.GetValueOrDefault("login") is string l && l.Contains('@', StringComparison.Ordinal) ? l : null),
            };
            values["partner_id"] = await CreateOneAsync(ModelRegistry.Partner, partner, ct);
        }
        if (!values.ContainsKey("company_id"))
        {
            values["company_id"] = 1L;
        }
        if (!values.ContainsKey("groups_id"))
        {
            var groups = await ScalarsAsync("SELECT id FROM res_groups WHERE xml_id = 'base.group_user'", new SqlBuilder(), ct);
            values["groups_id"] = new List<object?> { new List<object?> { 6L, 0L, groups.Cast<object?>().ToList() } };
        }
    }

    // ---- introspection ---------------------------------------------------------------------------------------------

    public static Dictionary<string, object?> FieldsGet(ModelDef model, IReadOnlyList<string>? allFields, IReadOnlyList<string>? attributes)
    {
        var result = new Dictionary<string, object?>(StringComparer.Ordinal);
        foreach (var field in model.FieldList.Where(f => !f.Hidden && (allFields is null || allFields.Count == 0 || allFields.Contains(f.Name))))
        {
            var description = new Dictionary<string, object?>(StringComparer.Ordinal)
            {
                ["type"] = field.TypeName,
                ["string"] = field.Label,
                ["help"] = field.Help ?? (object)false,
                ["required"] = field.Required,
                ["readonly"] = field.ReadOnly || (field.Computed && !field.Stored && !field.Inverse) || field.Name is "id" or "create_uid" or "create_date" or "write_uid" or "write_date",
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
                description = description.Where(kv => attributes.Contains(kv.Key)).ToDictionary(kv => kv.Key, kv => kv.Value, StringComparer.Ordinal);
            }
            result[field.Name] = description;
        }
        return result;
    }

    public async Task<List<object?>> NameSearchAsync(ModelDef model, string name, object? domain, string op, long? limit, CancellationToken ct)
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
