using System.Globalization;
using Npgsql;

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

    // ---- search: the WHERE, ORDER BY and page that search, search_count and search_read share --------------------

    public async Task<List<long>> SearchAsync(ModelDef model, object? domain, long offset, long? limit, string? order,
        CancellationToken ct)
    {
        access.Check(model, "read");
        await SyncIntrospectionAsync(model, ct);
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
        await SyncIntrospectionAsync(model, ct);
        var sql = new SqlBuilder();
        var inner = $"SELECT 1 FROM \"{model.Table}\" t0 WHERE {Where(model, domain, "t0", sql)}" + Page(0, limit, sql);
        return await QueryAsync($"SELECT count(*) FROM ({inner}) c", sql,
            async reader => await reader.ReadAsync(ct) ? reader.GetInt64(0) : 0, last: false, ct);
    }

    private bool _introspectionSynced;

    /// <summary>Before ir.model or ir.model.fields is read: their rows brought in line with the registry, once per call.</summary>
    private async Task SyncIntrospectionAsync(ModelDef model, CancellationToken ct)
    {
        if (ModelRegistry.IsIntrospection(model) && !_introspectionSynced)
        {
            await IrModels.SyncAsync(connection, transaction, ct);
            _introspectionSynced = true;
        }
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
                throw OdooException.Value(
                    $"Invalid order {Domain.Show(order)} for model {model.Name}: '{rawPart}' is not a field with an optional asc/desc");
            }
            string expression;
            if (field.Type == FieldType.Many2one && field.Name != "id")
            {
                var comodel = ModelRegistry.Get(field.Relation!);
                var c = alias + "_" + field.Name;
                var displayName = string.Format(CultureInfo.InvariantCulture, comodel.Fields["display_name"].Sql!, c);
                expression = $"(SELECT {displayName} FROM \"{comodel.Table}\" {c} WHERE {c}.id = {Domain.Expression(field, alias)})";
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
}
