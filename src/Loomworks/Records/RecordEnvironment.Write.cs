using Loomworks.Security;
using System.Globalization;

namespace Loomworks.Records;

/// <summary>create, write and unlink: rights, defaults and checks, the statement, then relations and computed fields.</summary>
public sealed partial class RecordEnvironment
{
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
                        ?? throw OdooException.Type(
                            $"create() takes a dictionary or a list of dictionaries, not {Domain.Show(item)}"), ct));
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
            throw OdooException.User("You can not remove the admin user as it is used internally for resources created by Odoo "
                + "(updates, module installation, ...)");
        }
        await EnsureExistAsync(model, distinct, ct);
        var orders = model == ModelRegistry.SaleOrderLine && !_orderAmountsDeferred
            ? await ScalarsAsync("SELECT DISTINCT order_id FROM sale_order_line WHERE id = ANY($1)", distinct, ct) : [];
        // Only the rows go, as in Odoo: the files are marked and left to the collector.
        var files = model == ModelRegistry.Attachment ? await Records.Attachments.StoreFnamesAsync(this, distinct, ct) : [];
        var sql = new SqlBuilder();
        await using (var command = sql.Command(
            $"DELETE FROM \"{model.Table}\" WHERE id = ANY({sql.Add(distinct)})", connection, transaction))
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
        "- Delete: another model requires the record being deleted. If possible, archive it instead.\n\n" +
        $"Model: {model.Label} ({model.Name})\nField: {field.Label} ({field.Name})");

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
                ["email"] = values.GetValueOrDefault("email")
                    ?? (values.GetValueOrDefault("login") is string l && l.Contains('@', StringComparison.Ordinal) ? l : null),
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
}
