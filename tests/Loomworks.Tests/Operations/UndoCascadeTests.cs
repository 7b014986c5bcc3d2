using Loomworks.Postgres;
using System.Globalization;
using Loomworks.Operations;
using Loomworks.Records;
using Loomworks.Tests.Infrastructure;
using Loomworks.Tests.Records;
using Npgsql;

namespace Loomworks.Tests.Operations;

/// <summary>
/// Undo of deletes whose foreign-key actions (SET NULL, CASCADE) changed other rows, on a tenant database as every tenant
/// gets it: each must bring back the deleted rows and the links exactly, and undoing the undo must delete them again.
/// </summary>
public sealed class UndoCascadeTests(PostgresFixture postgres)
{
    private static readonly CancellationToken None = CancellationToken.None;

    /// <summary>Tables a foreign key with an ON DELETE action may point from without being captured, and why.</summary>
    private static readonly Dictionary<string, string> UncapturedChildren = new(StringComparer.Ordinal)
    {
        [ModelRegistry.ApiKeys.Table] = "a revoked key stays revoked",
        [WebSessionSchema.Table] = "a session ended by its user's deletion stays ended",
        ["ir_model_fields"] = "read-only introspection, rebuilt from the model registry when next read",
    };

    /// <summary>
    /// A new row of each table that a foreign key with an ON DELETE action points from or to: its columns and their
    /// values, {0} a number that keeps unique columns apart. The row's foreign key under test overrides its column.
    /// </summary>
    private static readonly Dictionary<string, Dictionary<string, string>> NewRow = new(StringComparer.Ordinal)
    {
        ["res_country"] = new() { ["name"] = "'Country {0}'" },
        ["res_partner"] = new() { ["name"] = "'Partner {0}'" },
        ["res_company"] = new() { ["name"] = "'Company {0}'" },
        ["res_groups"] = new() { ["name"] = "'Group {0}'" },
        ["res_users"] = new() { ["name"] = "'User {0}'", ["login"] = "'user{0}'", ["partner_id"] = "3" },
        ["res_groups_users_rel"] = new() { ["gid"] = "1", ["uid"] = "2" },
        ["res_company_users_rel"] = new() { ["cid"] = "1", ["user_id"] = "2" },
        ["ir_model_access"] = new() { ["name"] = "'access {0}'", ["model"] = "'res.partner'" },
        ["product_product"] = new() { ["name"] = "'Product {0}'" },
        ["sale_order"] = new() { ["name"] = "'S{0}'", ["partner_id"] = "3", ["date_order"] = "now()" },
        ["sale_order_line"] = new() { ["order_id"] = "(SELECT min(id) FROM sale_order)", ["name"] = "'Line {0}'" },
        ["ir_attachment"] = new() { ["name"] = "'Attachment {0}'" },
    };

    [Fact]
    public async Task Undo_of_deleting_the_middle_of_a_partner_chain_brings_it_back_as_its_childs_parent_and_redo_deletes_it_again()
    {
        var db = await SeededAsync("undo_cascade_chain", """
            INSERT INTO res_partner (id, name, is_company) VALUES (100, 'Grandparent', true);
            INSERT INTO res_partner (id, name, parent_id, email) VALUES (101, 'Parent', 100, 'parent@example.com');
            INSERT INTO res_partner (id, name, parent_id, phone) VALUES (102, 'Child', 101, '+1 555'), (103, 'Sibling', 101, NULL);
            """);
        var before = await StateAsync(db.DataSource);

        var unlink = await UnlinkAsync(db, ModelRegistry.Partner, 101);

        await AssertUndoAndRedoAsync(db.DataSource, unlink, before, emptied: "SELECT count(*) FROM res_partner WHERE parent_id = 101");
        Assert.Equal(2L, await ErpShape.ScalarAsync<long>(db.DataSource, "SELECT count(*) FROM res_partner WHERE parent_id = 101"));
    }

    [Fact]
    public async Task Undo_of_deleting_a_companys_partner_brings_the_partner_back_as_the_companys()
    {
        var db = await RecordsDatabase.CreateAsync(postgres, "undo_cascade_company_partner");
        var before = await StateAsync(db.DataSource);

        var unlink = await UnlinkAsync(db, ModelRegistry.Partner, 1);

        Assert.Null(await ErpShape.ScalarAsync<int?>(db.DataSource, "SELECT partner_id FROM res_company WHERE id = 1"));
        await AssertUndoAndRedoAsync(db.DataSource, unlink, before);
        Assert.Equal(1, await ErpShape.ScalarAsync<int>(db.DataSource, "SELECT partner_id FROM res_company WHERE id = 1"));
    }

    [Fact]
    public async Task Undo_of_deleting_a_company_and_its_partner_which_point_at_each_other_restores_both_and_all_that_pointed_at_them()
    {
        var db = await SeededAsync("undo_cascade_company", """
            INSERT INTO res_company (id, name, parent_id) VALUES (2, 'Branch', 1);
            INSERT INTO product_product (id, name, company_id) VALUES (10, 'Desk', 1);
            INSERT INTO sale_order (id, name, partner_id, date_order, company_id, user_id) VALUES (20, 'S00020', 3, now(), 1, 2);
            INSERT INTO sale_order_line (order_id, name, product_id, company_id, price_unit) VALUES (20, 'Desk', 10, 1, 99.5);
            INSERT INTO ir_attachment (name, company_id) VALUES ('Contract', 1);
            """);
        var before = await StateAsync(db.DataSource);

        // Deleting the company sets the partners', users', products', orders' and lines' company to NULL and removes
        // its users' links; the partner it pointed at, and which pointed at it, goes in the same operation.
        var unlink = await ErpShape.RunAsync(db.DataSource, new OperationInfo("unlink", "res.company"),
            "DELETE FROM res_company WHERE id = 1; DELETE FROM res_partner WHERE id = 1");

        await AssertUndoAndRedoAsync(db.DataSource, unlink, before, emptied: "SELECT count(*) FROM res_company_users_rel");
    }

    [Fact]
    public async Task Undo_of_deleting_an_order_brings_its_lines_back_and_of_deleting_a_user_its_groups_companies_and_links()
    {
        var db = await SeededAsync("undo_cascade_order_user", """
            INSERT INTO res_partner (id, name) VALUES (100, 'Seller');
            INSERT INTO res_users (id, name, login, partner_id, company_id) VALUES (10, 'Seller', 'seller', 100, 1);
            UPDATE res_partner SET user_id = 10 WHERE id IN (3, 100);
            INSERT INTO res_groups_users_rel (gid, uid) VALUES (3, 10), (4, 10);
            INSERT INTO res_company_users_rel (cid, user_id) VALUES (1, 10);
            INSERT INTO product_product (id, name) VALUES (10, 'Desk'), (11, 'Chair');
            INSERT INTO sale_order (id, name, partner_id, date_order, user_id) VALUES (20, 'S00020', 3, now(), 10);
            INSERT INTO sale_order_line (order_id, name, product_id, price_unit, product_uom_qty)
                VALUES (20, 'Desk', 10, 100.25, 2), (20, 'Chair', 11, 50.5, 4);
            """);
        var before = await StateAsync(db.DataSource);

        var order = await UnlinkAsync(db, ModelRegistry.SaleOrder, 20);
        await AssertUndoAndRedoAsync(db.DataSource, order, before, emptied: "SELECT count(*) FROM sale_order_line");

        var user = await UnlinkAsync(db, ModelRegistry.Users, 10);
        await AssertUndoAndRedoAsync(db.DataSource, user, before, emptied: "SELECT count(*) FROM res_groups_users_rel WHERE uid = 10");
    }

    [Fact]
    public async Task Undo_that_would_bring_a_row_back_whose_parent_a_later_operation_deleted_names_the_key_and_changes_nothing()
    {
        var db = await SeededAsync("undo_cascade_parent_gone", """
            INSERT INTO res_partner (id, name) VALUES (100, 'Parent');
            INSERT INTO res_partner (id, name, parent_id) VALUES (101, 'Child', 100);
            """);
        var child = await UnlinkAsync(db, ModelRegistry.Partner, 101);
        await UnlinkAsync(db, ModelRegistry.Partner, 100);
        var state = await StateAsync(db.DataSource);

        var e = await Assert.ThrowsAsync<OperationException>(() => new UndoService(db.DataSource).UndoAsync(child, false, null, None));

        Assert.Equal(OperationErrorKind.Failed, e.Kind);
        Assert.Contains("res_partner_parent_id_fkey", e.Message, StringComparison.Ordinal);
        Assert.Equal(state, await StateAsync(db.DataSource));
        Assert.False((await new OperationLog(db.DataSource).FindAsync(child, None))!.Undone);
    }

    [Fact]
    public async Task Every_foreign_key_with_an_on_delete_action_is_undone_with_its_links_and_redone()
    {
        var db = await RecordsDatabase.CreateAsync(postgres, "undo_cascade_every_key");
        var ds = db.DataSource;
        await ErpShape.ExecuteAsync(ds, "INSERT INTO sale_order (name, partner_id, date_order) VALUES ('S00001', 3, now())");
        var keys = new List<(string Name, string Child, string Column, string Parent, string Key, char Action, bool Deferrable)>();
        await using (var command = ds.CreateCommand("""
            SELECT c.conname, ch.relname, a.attname, p.relname, pa.attname, c.confdeltype::text, c.condeferrable
            FROM pg_constraint c
            JOIN pg_class ch ON ch.oid = c.conrelid JOIN pg_namespace n ON n.oid = ch.relnamespace
            JOIN pg_class p ON p.oid = c.confrelid
            JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
            JOIN pg_attribute pa ON pa.attrelid = c.confrelid AND pa.attnum = c.confkey[1]
            WHERE c.contype = 'f' AND n.nspname = 'public' AND cardinality(c.conkey) = 1
            ORDER BY c.conname
            """))
        await using (var reader = await command.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                keys.Add((reader.GetString(0), reader.GetString(1), reader.GetString(2), reader.GetString(3), reader.GetString(4),
                    reader.GetString(5)[0], reader.GetBoolean(6)));
            }
        }
        Assert.Equal(0L, await ErpShape.ScalarAsync<long>(ds,
            """
            SELECT count(*) FROM pg_constraint
            WHERE contype = 'f' AND cardinality(conkey) <> 1 AND connamespace = 'public'::regnamespace
            """));
        var acting = keys.Where(k => k.Action is 'n' or 'c' or 'd').ToList();
        Assert.Contains(acting, k => k.Name == "res_partner_parent_id_fkey" && k.Action == 'n');
        Assert.Contains(acting, k => k.Name == "sale_order_line_order_id_fkey" && k.Action == 'c');

        var failures = new List<string>();
        var number = 0;
        foreach (var key in acting)
        {
            if (!ErpTenantSetup.CapturedTables.Contains(key.Child))
            {
                Assert.True(UncapturedChildren.ContainsKey(key.Child),
                    $"{key.Name}: {key.Child} is not captured, so undo cannot bring its rows back");
                continue;
            }
            Assert.True(NewRow.ContainsKey(key.Parent) && NewRow.ContainsKey(key.Child),
                $"{key.Name}: add a new row of {key.Parent} and {key.Child}");
            number++;
            var parent = await ErpShape.ScalarAsync<int>(ds, $"{Insert(key.Parent, 2 * number, null, null)} RETURNING \"{key.Key}\"");
            await ErpShape.ExecuteAsync(ds, Insert(key.Child, 2 * number + 1, key.Column, parent.ToString(CultureInfo.InvariantCulture)));
            var linked = $"SELECT count(*) FROM \"{key.Child}\" WHERE \"{key.Column}\" = {parent}";
            var before = await StateAsync(ds);
            var delete = await ErpShape.RunAsync(ds, new OperationInfo("unlink", key.Parent.Replace('_', '.')),
                $"DELETE FROM \"{key.Parent}\" WHERE \"{key.Key}\" = {parent}");
            try
            {
                await AssertUndoAndRedoAsync(ds, delete, before, emptied: linked);
                Assert.Equal(1L, await ErpShape.ScalarAsync<long>(ds, linked));
            }
            catch (Exception e) when (e is OperationException or Xunit.Sdk.XunitException)
            {
                failures.Add($"{key.Name} ({key.Child}.{key.Column} -> {key.Parent}, ON DELETE {key.Action}): {e.Message}");
            }
        }
        Assert.True(failures.Count == 0, $"{failures.Count} of {number} foreign keys failed:\n{string.Join("\n", failures)}");
        Assert.True(number >= 15, $"only {number} foreign keys with an ON DELETE action were tried");
        // Undo defers the keys while it applies an inverse; one that cannot be deferred is checked row by row.
        Assert.Empty(keys.Where(k => !k.Deferrable).Select(k => k.Name));
    }

    /// <summary>
    /// Undoes <paramref name="operation"/> (the state is <paramref name="before"/> again, every column of every row),
    /// undoes that undo (the state is as the operation left it), then undoes the operation once more.
    /// </summary>
    /// <summary>A records database named <paramref name="name"/> with <paramref name="seed"/> run in it.</summary>
    private async Task<RecordsDatabase> SeededAsync(string name, string seed)
    {
        var db = await RecordsDatabase.CreateAsync(postgres, name);
        await ErpShape.ExecuteAsync(db.DataSource, seed);
        return db;
    }

    /// <summary>
    /// The operation changed the state; undo brings <paramref name="before"/> back, undo of the undo redoes it, undo
    /// again brings it back. <paramref name="emptied"/> counts what the operation's cascade removed: 0 before the undo.
    /// </summary>
    private static async Task AssertUndoAndRedoAsync(PooledDatabase ds, long operation, string? before, string? emptied = null)
    {
        if (emptied is not null)
        {
            Assert.Equal(0L, await ErpShape.ScalarAsync<long>(ds, emptied));
        }
        var after = await StateAsync(ds);
        Assert.NotEqual(before, after);
        var undo = new UndoService(ds);
        var undone = await undo.UndoAsync(operation, false, null, None);
        Assert.Equal(before, await StateAsync(ds));
        await undo.UndoAsync(undone.UndoOperationId, false, null, None);
        Assert.Equal(after, await StateAsync(ds));
        await undo.UndoAsync(operation, false, null, None);
        Assert.Equal(before, await StateAsync(ds));
    }

    /// <summary>Unlinks a record through the ORM as the admin, as one operation.</summary>
    private static async Task<long> UnlinkAsync(RecordsDatabase db, ModelDef model, long id)
    {
        await using var connection = await db.DataSource.OpenConnectionAsync();
        await using var transaction = await connection.BeginTransactionAsync();
        var scope = OperationScope.Begin(transaction, new OperationInfo("unlink", model.Name));
        var access = await AccessRights.LoadAsync(connection, transaction, 2, None);
        await new RecordEnvironment(connection, transaction, access).UnlinkAsync(model, [id], None);
        return await scope.CommitAsync(None);
    }

    private static string Insert(string table, int number, string? column, string? value)
    {
        var row = NewRow[table].ToDictionary(c => c.Key, c => string.Format(CultureInfo.InvariantCulture, c.Value, number));
        if (column is not null)
        {
            row[column] = value!;
        }
        return $"INSERT INTO \"{table}\" ({string.Join(", ", row.Keys.Select(c => $"\"{c}\""))}) VALUES ({string.Join(", ", row.Values)})";
    }

    /// <summary>Every row of every captured table, all columns, in a fixed order.</summary>
    private static Task<string?> StateAsync(PooledDatabase ds) => ErpShape.ScalarAsync<string>(ds,
        "SELECT concat_ws(E'\\n', " + string.Join(", ", ErpTenantSetup.CapturedTables.Select(t =>
            $"'{t}: ' || (SELECT string_agg(j::text, ',' ORDER BY j::text) FROM (SELECT to_jsonb(x) AS j FROM \"{t}\" x) r)")) + ")");
}
