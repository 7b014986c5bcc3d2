using Npgsql;

namespace Loomworks.Records;

/// <summary>
/// Fills ir.model and ir.model.fields from the model registry before they are read: a model or field gets its row (and
/// its id, for good in this database) the first time it is seen, and its row follows the registry's labels after that.
/// </summary>
public static class IrModels
{
    /// <summary>The models the introspection lists, in the order their ids are given: the registry's, then its own two.</summary>
    public static IReadOnlyList<ModelDef> Listed => [.. ModelRegistry.All, ModelRegistry.IrModel, ModelRegistry.IrModelFields];

    /// <summary>What fields_get reports as readonly: read-only fields, computed ones without inverse, and the magic ones.</summary>
    public static bool IsReadOnly(FieldDef field) =>
        field.ReadOnly || (field.Computed && !field.Stored && !field.Inverse)
        || field.Name is "id" or "create_uid" or "create_date" or "write_uid" or "write_date";

    private const string Now = "now() at time zone 'utc'";

    // New rows are inserted with DO NOTHING, which locks nothing; rows are updated only where the registry says otherwise,
    // so a read of an unchanged registry writes nothing.
    private static readonly string ModelsSql = $"""
        INSERT INTO ir_model (model, name, info, "order", state, transient, create_uid, create_date, write_uid, write_date)
        SELECT u.model, u.name, u.info, u.ord, 'base', false, 1, {Now}, 1, {Now}
        FROM unnest($1::varchar[], $2::varchar[], $3::text[], $4::varchar[]) WITH ORDINALITY AS u(model, name, info, ord, n)
        ORDER BY u.n
        ON CONFLICT (model) DO NOTHING;
        UPDATE ir_model m SET name = u.name, info = u.info, "order" = u.ord, write_date = {Now}
        FROM unnest($1::varchar[], $2::varchar[], $3::text[], $4::varchar[]) AS u(model, name, info, ord)
        WHERE m.model = u.model AND (m.name, m.info, m."order") IS DISTINCT FROM (u.name, u.info, u.ord)
        """;

    private static readonly string FieldsSql = $"""
        INSERT INTO ir_model_fields (name, complete_name, model, model_id, field_description, help, ttype, relation, relation_field,
            relation_table, column1, column2, required, readonly, store, selectable, state, create_uid, create_date, write_uid,
            write_date)
        SELECT u.name, u.model || '.' || u.name, u.model, m.id, u.label, u.help, u.ttype, u.relation, u.relation_field,
            u.relation_table, u.column1, u.column2, u.required, u.readonly, u.store, u.selectable, 'base', 1, {Now}, 1, {Now}
        FROM unnest($1::varchar[], $2::varchar[], $3::varchar[], $4::text[], $5::varchar[], $6::varchar[], $7::varchar[],
            $8::varchar[], $9::varchar[], $10::varchar[], $11::boolean[], $12::boolean[], $13::boolean[], $14::boolean[])
            WITH ORDINALITY AS u(model, name, label, help, ttype, relation, relation_field, relation_table, column1, column2,
                required, readonly, store, selectable, n)
        JOIN ir_model m ON m.model = u.model
        ORDER BY u.n
        ON CONFLICT (model, name) DO NOTHING;
        UPDATE ir_model_fields f SET field_description = u.label, help = u.help, ttype = u.ttype, relation = u.relation,
            relation_field = u.relation_field, relation_table = u.relation_table, column1 = u.column1, column2 = u.column2,
            required = u.required, readonly = u.readonly, store = u.store, selectable = u.selectable, write_date = {Now}
        FROM unnest($1::varchar[], $2::varchar[], $3::varchar[], $4::text[], $5::varchar[], $6::varchar[], $7::varchar[],
            $8::varchar[], $9::varchar[], $10::varchar[], $11::boolean[], $12::boolean[], $13::boolean[], $14::boolean[])
            AS u(model, name, label, help, ttype, relation, relation_field, relation_table, column1, column2, required, readonly,
                store, selectable)
        WHERE f.model = u.model AND f.name = u.name
          AND (f.field_description, f.help, f.ttype, f.relation, f.relation_field, f.relation_table, f.column1, f.column2,
               f.required, f.readonly, f.store, f.selectable)
              IS DISTINCT FROM (u.label, u.help, u.ttype, u.relation, u.relation_field, u.relation_table, u.column1, u.column2,
               u.required, u.readonly, u.store, u.selectable)
        """;

    /// <summary>Brings both tables in line with the registry, in the caller's transaction.</summary>
    public static async Task SyncAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, CancellationToken ct)
    {
        var models = Listed;
        var fields = models.SelectMany(m => m.FieldList.Where(f => !f.Hidden).Select(f => (Model: m, Field: f))).ToList();
        // A parameter belongs to one command: each statement gets its own set of the same arrays.
        SqlBuilder ModelParameters()
        {
            var sql = new SqlBuilder();
            sql.Add(models.Select(m => m.Name).ToArray());
            sql.Add(models.Select(m => m.Label).ToArray());
            sql.Add(models.Select(m => (string?)null).ToArray());
            sql.Add(models.Select(m => m.Order).ToArray());
            return sql;
        }
        SqlBuilder FieldParameters()
        {
            var sql = new SqlBuilder();
            sql.Add(fields.Select(x => x.Model.Name).ToArray());
            sql.Add(fields.Select(x => x.Field.Name).ToArray());
            sql.Add(fields.Select(x => x.Field.Label).ToArray());
            sql.Add(fields.Select(x => x.Field.Help).ToArray());
            sql.Add(fields.Select(x => x.Field.TypeName).ToArray());
            sql.Add(fields.Select(x => x.Field.Relation).ToArray());
            sql.Add(fields.Select(x => x.Field.InverseName).ToArray());
            sql.Add(fields.Select(x => x.Field.RelationTable).ToArray());
            sql.Add(fields.Select(x => x.Field.Column1).ToArray());
            sql.Add(fields.Select(x => x.Field.Column2).ToArray());
            sql.Add(fields.Select(x => x.Field.Required).ToArray());
            sql.Add(fields.Select(x => IsReadOnly(x.Field)).ToArray());
            sql.Add(fields.Select(x => x.Field.HasColumn).ToArray());
            sql.Add(fields.Select(x => x.Field.HasColumn || x.Field.Sql is not null || x.Field.IsX2Many).ToArray());
            return sql;
        }
        await using var batch = new NpgsqlBatch(connection, transaction);
        foreach (var statement in ModelsSql.Split(";\n", StringSplitOptions.TrimEntries))
        {
            batch.BatchCommands.Add(ModelParameters().BatchCommand(statement));
        }
        foreach (var statement in FieldsSql.Split(";\n", StringSplitOptions.TrimEntries))
        {
            batch.BatchCommands.Add(FieldParameters().BatchCommand(statement));
        }
        await batch.ExecuteNonQueryAsync(ct);
    }
}
