
namespace Loomworks.Records;

/// <summary>The x2many commands of create and write (Odoo's 0 to 6): create, update, delete, link and unlink.</summary>
public sealed partial class RecordEnvironment
{
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
                        : throw OdooException.Value(
                            $"Invalid command {Domain.Show(item)} for {model.Name}.{field.Name}: it needs a list of ids");
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
            $"INSERT INTO \"{field.RelationTable}\" (\"{field.Column1}\", \"{field.Column2}\")"
                + $" SELECT {sql.Add(id)}, unnest({sql.Add(targets)}::integer[]) ON CONFLICT DO NOTHING",
            connection, transaction);
        await command.ExecuteNonQueryAsync(ct);
    }

    /// <summary>Commands 3, 5 and the removal half of 6: unlink relations (or, for required inverses, the lines themselves).</summary>
    private async Task DetachAsync(ModelDef model, FieldDef field, long id, long[]? only, CancellationToken ct, long[]? keep = null)
    {
        var sql = new SqlBuilder();
        var filter = (only is null ? "" : $" AND id = ANY({sql.Add(only)})")
            + (keep is null ? "" : $" AND NOT (id = ANY({sql.Add(keep)}))");
        if (field.Type == FieldType.Many2many)
        {
            var relFilter = filter.Replace(" id ", $" \"{field.Column2}\" ", StringComparison.Ordinal)
                .Replace("(id ", $"(\"{field.Column2}\" ", StringComparison.Ordinal);
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
}
