using Loomworks.Operations;
using Loomworks.Postgres;
using Loomworks.Tests.Infrastructure;
using Npgsql;

namespace Loomworks.Tests.Operations;

/// <summary>Statement-level capture, completion at commit, undo of many operations in one statement, and the upgrade
/// of a tenant that still has the row-level capture of migration 2001.</summary>
public sealed class StatementCaptureTests(PostgresFixture postgres)
{
    private static readonly CancellationToken None = CancellationToken.None;

    private Task<PooledDatabase> DatabaseAsync(string test) => ErpShape.CreateWithPartnersAsync(postgres, "stmtcap_" + test);

    /// <summary>
    /// A tenant as it was before migration <paramref name="version"/>: the operations schema up to it, capture triggers
    /// as migration 2004 installed them, two partners, two categories and two links.
    /// </summary>
    private async Task<PooledDatabase> TenantBeforeAsync(string test, int version)
    {
        var database = await postgres.CreateDatabaseAsync("stmtcap_" + test);
        await postgres.ExecuteAsync(database, ErpShape.Sql);
        var ds = postgres.DataSource(database);
        await using (var connection = await ds.OpenConnectionAsync())
        {
            await SchemaMigrator.ApplyAsync(connection, OperationsSchema.All.Where(m => m.Version < version), None);
            await using var install = new NpgsqlCommand(CaptureOf2004.InstallSql(ErpShape.Tables), connection);
            await install.ExecuteNonQueryAsync();
        }
        await ErpShape.ExecuteAsync(ds, """
            INSERT INTO res_partner (name) VALUES ('Azure Interior'), ('Deco Addict');
            INSERT INTO res_partner_category (name) VALUES ('Vendor'), ('Prospect');
            INSERT INTO res_partner_res_partner_category_rel VALUES (1, 1), (2, 1);
            """);
        return ds;
    }

    [Fact]
    public async Task A_statement_touching_many_rows_captures_each_changed_row_once_and_undo_restores_them_all()
    {
        var ds = await DatabaseAsync("many_rows");
        var create = await ErpShape.RunAsync(ds, new OperationInfo("create", "res.partner"),
            "INSERT INTO res_partner (name, email) SELECT 'P' || i, CASE WHEN i % 2 = 0 THEN 'p' || i || '@example.com' END FROM " +
            "generate_series(1, 500) i");
        var before = await ErpShape.StateAsync(ds);
        // Half the rows already have active = true and no email: those are unchanged and must not be captured.
        var write = await ErpShape.RunAsync(ds, new OperationInfo("write", "res.partner"),
            "UPDATE res_partner SET email = coalesce(email, 'none'), active = true WHERE name LIKE 'P%'");

        Assert.Equal(500L, await ErpShape.ScalarAsync<long>(ds, $"SELECT count(*) FROM loomworks_change WHERE operation_id = {create}"));
        Assert.Equal(250L, await ErpShape.ScalarAsync<long>(ds,
            $"SELECT count(*) FROM loomworks_change WHERE operation_id = {write} AND kind = 'U'"));
        Assert.Equal(250L, await ErpShape.ScalarAsync<long>(ds,
            $"SELECT count(DISTINCT row_key) FROM loomworks_change WHERE operation_id = {write} AND old_row ->> 'id' = new_row ->> 'id'"));
        var log = (await new OperationLog(ds).FindAsync(write, None))!;
        Assert.Equal(("done", 250, 250), (log.State, log.ChangeCount, log.RecordIds.Count));

        var undo = new UndoService(ds);
        await undo.UndoAsync(write, false, null, None);
        Assert.Equal(before, await ErpShape.StateAsync(ds));
        await undo.UndoAsync(create, false, null, None);
        Assert.Equal(2L, await ErpShape.ScalarAsync<long>(ds, "SELECT count(*) FROM res_partner"));
    }

    [Fact]
    public async Task An_update_of_ignored_columns_only_captures_nothing_and_draws_no_operation_id_while_a_mixed_one_is_captured_whole()
    {
        var ds = await DatabaseAsync("ignored");
        await ErpShape.ExecuteAsync(ds, "SELECT loomworks_install_capture('res_partner', '{email}')");
        await using (var connection = await ds.OpenConnectionAsync())
        await using (var transaction = await connection.BeginTransactionAsync())
        {
            await using var command = new NpgsqlCommand(
                "UPDATE res_partner SET email = 'stamp@example.com'; SELECT coalesce(current_setting('loomworks.operation_id', true), '')",
                    connection, transaction);
            Assert.Equal("", await command.ExecuteScalarAsync());
            await transaction.CommitAsync();
        }
        var stamped = await ErpShape.RunAsync(ds, new OperationInfo("write", "res.partner"),
            "UPDATE res_partner SET email = 'again@example.com'");
        var before = await ErpShape.StateAsync(ds);
        var renamed = await ErpShape.RunAsync(ds, new OperationInfo("write", "res.partner"),
            "UPDATE res_partner SET email = 'new@example.com', name = name || '!' WHERE id = 1");

        Assert.Equal(0L, await ErpShape.ScalarAsync<long>(ds, $"SELECT count(*) FROM loomworks_change WHERE operation_id = {stamped}"));
        Assert.Equal("U again@example.com new@example.com Azure Interior!", await ErpShape.ScalarAsync<string>(ds, $"""
            SELECT string_agg(concat_ws(' ', kind::text, old_row ->> 'email', new_row ->> 'email', new_row ->> 'name'), ',')
            FROM loomworks_change WHERE operation_id = {renamed}
            """));
        await new UndoService(ds).UndoAsync(renamed, false, null, None);
        Assert.Equal(before, await ErpShape.StateAsync(ds));
    }

    [Fact]
    public async Task An_update_of_a_key_is_captured_as_a_deletion_and_an_insertion_and_undo_puts_the_old_key_back()
    {
        var ds = await DatabaseAsync("key_update");
        var before = await ErpShape.StateAsync(ds);
        var op = await ErpShape.RunAsync(ds, new OperationInfo("write", "res.partner"),
            "UPDATE res_partner_res_partner_category_rel SET category_id = 2 WHERE partner_id = 2 AND category_id = 1");

        Assert.Equal("D,I", await ErpShape.ScalarAsync<string>(ds,
            $"SELECT string_agg(kind::text, ',' ORDER BY id) FROM loomworks_change WHERE operation_id = {op}"));
        await new UndoService(ds).UndoAsync(op, false, null, None);
        Assert.Equal(before, await ErpShape.StateAsync(ds));
    }

    [Fact]
    public async Task Undo_of_a_100_operation_session_restores_exactly_the_prior_state_in_one_transaction()
    {
        var ds = await DatabaseAsync("session_100");
        var before = await ErpShape.StateAsync(ds);
        var s = new OperationInfo("create", "sale.order", SessionId: "big");
        for (var i = 0; i < 100; i++)
        {
            var sql = (i % 4) switch
            {
                0 or 1 => $"""
                    WITH o AS (INSERT INTO sale_order (name, partner_id, amount_total) VALUES ('S{i}', 1, {i}) RETURNING id)
                    INSERT INTO sale_order_line (order_id, name, price_unit) SELECT id, l, 5 FROM o, unnest(ARRAY['a', 'b']) l
                    """,
                2 => $"UPDATE sale_order SET state = 'sale', amount_total = amount_total + 1 WHERE id = (SELECT max(id) FROM sale_order)",
                _ => i % 8 == 3
                    ? "DELETE FROM sale_order WHERE id = (SELECT min(id) FROM sale_order)"
                    : "DELETE FROM res_partner_res_partner_category_rel WHERE partner_id = 1 AND category_id = 2; UPDATE res_partner SET " +
                        "name = name || '!' WHERE id = 2",
            };
            await ErpShape.RunAsync(ds, s with { OperationType = i % 4 == 3 ? "unlink" : "write" }, sql);
        }
        var other = await ErpShape.RunAsync(ds, new OperationInfo("create", "res.partner", SessionId: "other"),
            "INSERT INTO res_partner (name) VALUES ('Other')");
        var otherState = await ErpShape.StateAsync(ds);

        var results = await new UndoService(ds).UndoSessionAsync("big", false, null, None);

        Assert.Equal(100, results.Count);
        Assert.True(results.Select(r => r.OperationId).SequenceEqual(results.Select(r => r.OperationId).OrderDescending()));
        Assert.Equal(100L, await ErpShape.ScalarAsync<long>(ds,
            "SELECT count(*) FROM loomworks_ai_operation_log WHERE session_id = 'big' AND undone AND undo_of IS NULL"));
        Assert.Equal(0L, await ErpShape.ScalarAsync<long>(ds, "SELECT count(*) FROM loomworks_ai_operation_log WHERE state = 'pending'"));
        Assert.NotEqual(otherState, await ErpShape.StateAsync(ds));
        await new UndoService(ds).UndoAsync(other, false, null, None);
        Assert.Equal(before, await ErpShape.StateAsync(ds));
    }

    [Fact]
    public async Task A_refusal_in_the_middle_of_a_session_undo_leaves_every_operation_as_it_was()
    {
        var ds = await DatabaseAsync("session_refused");
        var s = new OperationInfo("write", "res.partner", SessionId: "half");
        var first = await ErpShape.RunAsync(ds, s, "UPDATE res_partner SET name = 'A1' WHERE id = 1");
        await ErpShape.RunAsync(ds, s, "UPDATE res_partner SET name = 'B1' WHERE id = 2");
        var later = await ErpShape.RunAsync(ds, new OperationInfo("write", "res.partner"),
            "UPDATE res_partner SET email = 'x' WHERE id = 1");
        var state = await ErpShape.StateAsync(ds);

        var e = await Assert.ThrowsAsync<OperationException>(() => new UndoService(ds).UndoSessionAsync("half", false, null, None));

        Assert.Equal(OperationErrorKind.Conflict, e.Kind);
        Assert.Contains($"operation {first} cannot be undone: operation {later} changed res_partner {{\"id\": 1}}", e.Message);
        Assert.Equal(state, await ErpShape.StateAsync(ds));
        Assert.Equal(0L, await ErpShape.ScalarAsync<long>(ds,
            "SELECT count(*) FROM loomworks_ai_operation_log WHERE undone OR operation_type = 'undo'"));
    }

    [Fact]
    public async Task A_change_that_bypassed_capture_is_refused_by_name_unless_forced()
    {
        var ds = await DatabaseAsync("uncaptured");
        var s = new OperationInfo("write", "res.partner", SessionId: "bypass");
        var write = await ErpShape.RunAsync(ds, s, "UPDATE res_partner SET name = 'Mine' WHERE id = 2");
        await ErpShape.ExecuteAsync(ds, """
            BEGIN;
            SET LOCAL session_replication_role = replica;
            UPDATE res_partner SET email = 'bypassed@example.com' WHERE id = 2;
            COMMIT;
            """);
        var undo = new UndoService(ds);

        var e = await Assert.ThrowsAsync<OperationException>(() => undo.UndoSessionAsync("bypass", false, null, None));
        Assert.Equal(OperationErrorKind.Conflict, e.Kind);
        Assert.Contains($"operation {write} cannot be undone: res_partner {{\"id\": 2}} was changed afterwards without being captured",
            e.Message);
        Assert.Equal("Mine", await ErpShape.ScalarAsync<string>(ds, "SELECT name FROM res_partner WHERE id = 2"));

        await undo.UndoAsync(write, force: true, null, None);
        Assert.Equal(("Deco Addict", "bypassed@example.com"),
            (await ErpShape.ScalarAsync<string>(ds, "SELECT name FROM res_partner WHERE id = 2"),
            await ErpShape.ScalarAsync<string>(ds, "SELECT email FROM res_partner WHERE id = 2")));
    }

    [Fact]
    public async Task An_operation_is_logged_once_at_commit_counting_every_change_and_a_rollback_leaves_nothing()
    {
        var ds = await DatabaseAsync("complete_at_commit");
        long id;
        await using (var connection = await ds.OpenConnectionAsync())
        {
            await using var transaction = await connection.BeginTransactionAsync();
            var scope = OperationScope.Begin(transaction, new OperationInfo("write", "res.partner"));
            await Execute(connection, "UPDATE res_partner SET name = 'X' WHERE id = 1");
            await Execute(connection, "UPDATE res_partner SET name = 'Y' WHERE id = 2");
            // Nothing is in the log until the commit, which writes the row complete: no update of it ever follows.
            Assert.Equal(0L, await Scalar<long>(connection, "SELECT count(*) FROM loomworks_ai_operation_log"));
            id = await scope.CommitAsync(None);
            Assert.Equal(id, scope.Id);
        }
        var log = (await new OperationLog(ds).FindAsync(id, None))!;
        Assert.Equal(("done", 2), (log.State, log.ChangeCount));
        Assert.Equal([1L, 2L], log.RecordIds);
        Assert.NotNull(log.ExecutionTimeMs);
        Assert.Contains("\"Deco Addict\"", log.ValuesBefore!.Value.GetRawText());
        Assert.Equal(2L, await ErpShape.ScalarAsync<long>(ds, $"SELECT count(*) FROM loomworks_change WHERE operation_id = {id}"));
        // The first tuple of the table's first page: a row inserted and then completed by an update would be the second.
        Assert.Equal("(0,1)", await ErpShape.ScalarAsync<string>(ds, $"SELECT ctid::text FROM loomworks_ai_operation_log WHERE id = {id}"));

        await using (var connection = await ds.OpenConnectionAsync())
        {
            await using var transaction = await connection.BeginTransactionAsync();
            var scope = OperationScope.Begin(transaction, new OperationInfo("write", "res.partner"));
            await Execute(connection, "UPDATE res_partner SET name = 'Z' WHERE id = 1");
            await transaction.RollbackAsync();
            Assert.Null(scope.Id);
        }
        Assert.Equal(1L, await ErpShape.ScalarAsync<long>(ds, "SELECT count(*) FROM loomworks_ai_operation_log"));
        Assert.Equal(0L, await ErpShape.ScalarAsync<long>(ds, "SELECT count(*) FROM loomworks_change WHERE new_row ->> 'name' = 'Z'"));
    }

    [Fact]
    public async Task An_operation_whose_commit_fails_leaves_no_log_row_and_its_failure_can_be_logged()
    {
        var ds = await DatabaseAsync("commit_fails");
        await ErpShape.ExecuteAsync(ds, "CREATE TABLE commit_check (partner integer REFERENCES res_partner DEFERRABLE INITIALLY DEFERRED)");
        await using var connection = await ds.OpenConnectionAsync();
        var transaction = await connection.BeginTransactionAsync();
        var scope = OperationScope.Begin(transaction, new OperationInfo("write", "res.partner"));
        await Execute(connection, "UPDATE res_partner SET name = 'Lost' WHERE id = 1");
        await Execute(connection, "INSERT INTO commit_check VALUES (999)");
        // The foreign key is checked at COMMIT, after the log row was written in the same round trip.
        var e = await Assert.ThrowsAsync<PostgresException>(() => scope.CommitAsync(None));
        Assert.Equal(PostgresErrorCodes.ForeignKeyViolation, e.SqlState);
        Assert.Null(scope.Id);
        await OperationScope.RollbackIfOpenAsync(transaction);
        await transaction.DisposeAsync();

        var failed = await scope.RecordFailureAsync(e.MessageText, None);
        Assert.Equal(1L, await Scalar<long>(connection, "SELECT count(*) FROM loomworks_ai_operation_log"));
        var log = (await new OperationLog(ds).FindAsync(failed, None))!;
        Assert.Equal(("failed", 0), (log.State, log.ChangeCount));
        Assert.Empty(log.RecordIds);
        Assert.Equal(0L, await Scalar<long>(connection, "SELECT count(*) FROM loomworks_change WHERE new_row ->> 'name' = 'Lost'"));
        Assert.NotEqual("Lost", await Scalar<string>(connection, "SELECT name FROM res_partner WHERE id = 1"));
    }

    [Fact]
    public async Task A_tenant_with_row_level_capture_is_upgraded_to_statement_triggers_capturing_each_change_once()
    {
        var database = await postgres.CreateDatabaseAsync("stmtcap_upgrade");
        var ds = postgres.DataSource(database);
        await using (var connection = await ds.OpenConnectionAsync())
        {
            await SchemaMigrator.ApplyAsync(connection, ErpTenantSetup.All.Where(m => m.Version <= 2002), None);
            Assert.Equal(1L, await Scalar<long>(connection,
                $"SELECT count(*) FROM pg_trigger WHERE tgname = '{ChangeCapture.TriggerName}' AND tgrelid = 'res_partner'::regclass"));
            await SchemaMigrator.ApplyAsync(connection, ErpTenantSetup.All, None);
            Assert.Equal(ErpTenantSetup.CapturedTables, await ChangeCapture.CapturedTablesAsync(connection, None));
            Assert.Equal(0L, await Scalar<long>(connection,
                $"SELECT count(*) FROM pg_trigger WHERE tgname = '{ChangeCapture.TriggerName}'"));
            Assert.Equal(3L * ErpTenantSetup.CapturedTables.Count, await Scalar<long>(connection,
                "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'loomworks_capture_%' AND tgname <> 'loomworks_capture_update_key' " +
                "AND NOT tgisinternal"));
        }
        var op = await ErpShape.RunAsync(ds, new OperationInfo("write", "res.partner"),
            "UPDATE res_partner SET name = 'Renamed' WHERE id = (SELECT min(id) FROM res_partner)");
        Assert.Equal(1L, await ErpShape.ScalarAsync<long>(ds, $"SELECT count(*) FROM loomworks_change WHERE operation_id = {op}"));
        // A login stamps login_date only: bookkeeping, not captured; a real change of the user still is.
        var changes = await ErpShape.ScalarAsync<long>(ds, "SELECT count(*) FROM loomworks_change");
        await ErpShape.ExecuteAsync(ds, "UPDATE res_users SET login_date = now() WHERE id = (SELECT min(id) FROM res_users)");
        Assert.Equal(changes, await ErpShape.ScalarAsync<long>(ds, "SELECT count(*) FROM loomworks_change"));
        await ErpShape.ExecuteAsync(ds,
            "UPDATE res_users SET signature = 'hi', login_date = now() WHERE id = (SELECT min(id) FROM res_users)");
        Assert.Equal(changes + 1, await ErpShape.ScalarAsync<long>(ds, "SELECT count(*) FROM loomworks_change"));
        await new UndoService(ds).UndoAsync(op, false, null, None);
        Assert.NotEqual("Renamed", await ErpShape.ScalarAsync<string>(ds,
            "SELECT name FROM res_partner WHERE id = (SELECT min(id) FROM res_partner)"));
    }

    [Fact]
    public async Task A_tenant_logging_operations_at_commit_by_trigger_is_upgraded_keeping_its_log_and_undo()
    {
        var database = await postgres.CreateDatabaseAsync("stmtcap_writeonce");
        var ds = postgres.DataSource(database);
        long old;
        await using (var connection = await ds.OpenConnectionAsync())
        {
            await SchemaMigrator.ApplyAsync(connection, ErpTenantSetup.All.Where(m => m.Version <= 2004), None);
            // An operation as the previous schema logged it: the row inserted first, completed by the deferred trigger.
            await using (var transaction = await connection.BeginTransactionAsync())
            {
                old = await Scalar<long>(connection, """
                    WITH o AS (INSERT INTO loomworks_ai_operation_log (operation_type, model_name, started_at)
                               VALUES ('write', 'res.partner', clock_timestamp()) RETURNING id)
                    SELECT id FROM o, set_config('loomworks.operation_id', (SELECT id FROM o)::text, true)
                    """);
                await Execute(connection, "UPDATE res_partner SET name = 'Old way' WHERE id = (SELECT min(id) FROM res_partner)");
                await transaction.CommitAsync();
            }
            await Execute(connection, "UPDATE res_partner SET email = 'outside@example.com' WHERE id = (SELECT max(id) FROM res_partner)");
            Assert.Equal(1L, await Scalar<long>(connection, "SELECT count(*) FROM loomworks_change WHERE operation_id IS NULL"));
            await SchemaMigrator.ApplyAsync(connection, ErpTenantSetup.All, None);
            Assert.Equal(0L, await Scalar<long>(connection,
                "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'loomworks_ai_operation_log'::regclass AND NOT tgisinternal"));
        }
        var log = new OperationLog(ds);
        var before = (await log.FindAsync(old, None))!;
        Assert.Equal(("done", 1), (before.State, before.ChangeCount));
        Assert.Single(before.RecordIds);
        Assert.Contains("Old way", before.ValuesAfter!.Value.GetRawText(), StringComparison.Ordinal);

        var op = await ErpShape.RunAsync(ds, new OperationInfo("write", "res.partner"),
            "UPDATE res_partner SET name = 'New way' WHERE id = (SELECT min(id) FROM res_partner)");
        Assert.True(op > old);
        var logged = (await log.FindAsync(op, None))!;
        Assert.Equal((1, before.RecordIds[0]), (logged.ChangeCount, logged.RecordIds.Single()));
        Assert.Contains("Old way", logged.ValuesBefore!.Value.GetRawText(), StringComparison.Ordinal);
        // The model reads the same summary as the REST listing.
        Assert.Contains("New way", await ErpShape.ScalarAsync<string>(ds,
            $"SELECT values_after FROM loomworks_ai_operation_log_rows WHERE id = {op}"),
            StringComparison.Ordinal);

        var undo = new UndoService(ds);
        var conflict = await Assert.ThrowsAsync<OperationException>(() => undo.UndoAsync(old, false, null, None));
        Assert.Contains($"operation {op} changed res_partner", conflict.Message, StringComparison.Ordinal);
        await undo.UndoAsync(op, false, null, None);
        await undo.UndoAsync(old, false, null, None);
        Assert.NotEqual("Old way", await ErpShape.ScalarAsync<string>(ds,
            "SELECT name FROM res_partner WHERE id = (SELECT min(id) FROM res_partner)"));
        // Outside changes from before the upgrade (null id) and after it (an id no log row has) both block a rewind.
        await ErpShape.ExecuteAsync(ds, "UPDATE res_partner SET email = 'again@example.com' WHERE id = (SELECT max(id) FROM res_partner)");
        await ErpShape.ExecuteAsync(ds, "UPDATE loomworks_oplog_coverage SET covered_since = now() - interval '1 day'");
        var rewind = await Assert.ThrowsAsync<OperationException>(() =>
            undo.RewindAsync(DateTimeOffset.UtcNow.AddMinutes(-5), false, "t", None));
        Assert.Equal((1L, 1L), (
            await ErpShape.ScalarAsync<long>(ds, "SELECT count(*) FROM loomworks_change WHERE operation_id IS NULL"),
            await ErpShape.ScalarAsync<long>(ds, """
                SELECT count(*) FROM loomworks_change c WHERE c.operation_id IS NOT NULL
                AND NOT EXISTS (SELECT 1 FROM loomworks_ai_operation_log l WHERE l.id = c.operation_id)
                """)));
        Assert.Contains("2 row change(s)", rewind.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_update_that_changes_some_keys_captures_every_deletion_first_and_undo_restores_them()
    {
        var ds = await DatabaseAsync("key_move");
        var ids = await ErpShape.ScalarAsync<int[]>(ds,
            "WITH n AS (INSERT INTO res_partner (name) VALUES ('M1'), ('M2'), ('M3') RETURNING id) " +
            "SELECT array_agg(id ORDER BY id) FROM n");
        var before = await ErpShape.StateAsync(ds);
        // One statement: the first row moves to a new key, the second is renamed in place, the third is left as it is.
        var op = await ErpShape.RunAsync(ds, new OperationInfo("write", "res.partner"), $"""
            UPDATE res_partner SET id = CASE WHEN id = {ids![0]} THEN id + 1000 ELSE id END,
                                   name = CASE WHEN id = {ids[2]} THEN name ELSE name || '!' END
            WHERE id = ANY(ARRAY[{ids[0]}, {ids[1]}, {ids[2]}])
            """);

        Assert.Equal($"D {ids[0]},I {ids[0] + 1000},U {ids[1]}", await ErpShape.ScalarAsync<string>(ds,
            "SELECT string_agg(kind::text || ' ' || (row_key ->> 'id'), ',' ORDER BY id) FROM loomworks_change WHERE operation_id = " +
            $"{op}"));
        await new UndoService(ds).UndoAsync(op, false, null, None);
        Assert.Equal(before, await ErpShape.StateAsync(ds));
        // Naming the key without changing it is an update like any other.
        var same = await ErpShape.RunAsync(ds, new OperationInfo("write", "res.partner"),
            $"UPDATE res_partner SET id = id, name = 'M' WHERE id = {ids[1]}");
        Assert.Equal($"U {ids[1]}", await ErpShape.ScalarAsync<string>(ds,
            "SELECT string_agg(kind::text || ' ' || (row_key ->> 'id'), ',' ORDER BY id) FROM loomworks_change WHERE operation_id = " +
            $"{same}"));
    }

    [Fact]
    public async Task A_tenant_upgraded_to_the_cheaper_capture_undoes_changes_captured_before_and_after_the_upgrade()
    {
        var ds = await TenantBeforeAsync("cheaper", 2008);
        await ErpShape.ExecuteAsync(ds, """
            INSERT INTO sale_order (name, partner_id) VALUES ('S0', 1), ('S1', 2);
            INSERT INTO sale_order_line (order_id, name) VALUES (1, 'a'), (1, 'b'), (2, 'c');
            """);
        var before = await ErpShape.StateAsync(ds);
        var s = new OperationInfo("write", "sale.order", SessionId: "upgrade");
        await ErpShape.RunAsync(ds, s,
            "WITH o AS (INSERT INTO sale_order (name, partner_id) VALUES ('S2', 1) RETURNING id) " +
            "INSERT INTO sale_order_line (order_id, name) SELECT id, 'd' FROM o");
        await ErpShape.RunAsync(ds, s, "UPDATE sale_order SET state = 'sale', amount_total = 7 WHERE id = 1");
        await ErpShape.RunAsync(ds, s, "UPDATE res_partner_res_partner_category_rel SET category_id = 2 WHERE partner_id = 2");
        // Children deleted before their parent: undo brings them back row by row, reading each change by its id.
        await ErpShape.RunAsync(ds, s, "DELETE FROM sale_order_line WHERE order_id = 2; DELETE FROM sale_order WHERE id = 2");

        await using (var connection = await ds.OpenConnectionAsync())
        {
            await SchemaMigrator.ApplyAsync(connection, OperationsSchema.All, None);
            Assert.Equal(0L, await Scalar<long>(connection,
                "SELECT count(*) FROM pg_constraint WHERE conrelid = 'loomworks_change'::regclass AND contype IN ('p', 'c')"));
        }
        await ErpShape.RunAsync(ds, s, "UPDATE sale_order SET name = 'S0 renamed' WHERE id = 1");
        await ErpShape.RunAsync(ds, s, "DELETE FROM sale_order WHERE id = 1");
        await ErpShape.RunAsync(ds, s, "DELETE FROM res_partner_res_partner_category_rel WHERE partner_id = 1");

        var results = await new UndoService(ds).UndoSessionAsync("upgrade", false, null, None);

        Assert.Equal(7, results.Count);
        Assert.Equal(before, await ErpShape.StateAsync(ds));
    }

    [Fact]
    public async Task A_tenant_upgraded_to_hashed_row_lookups_finds_conflicts_and_undoes_exactly_across_the_upgrade()
    {
        var ds = await TenantBeforeAsync("rowhash", 2009);
        await ErpShape.ExecuteAsync(ds, """
            INSERT INTO sale_order (name, partner_id) VALUES ('S0', 1);
            INSERT INTO sale_order_line (order_id, name) VALUES (1, 'a');
            """);
        var before = await ErpShape.StateAsync(ds);
        var s = new OperationInfo("write", "sale.order", SessionId: "rowhash");
        await ErpShape.RunAsync(ds, s,
            "WITH o AS (INSERT INTO sale_order (name, partner_id) VALUES ('S1', 2) RETURNING id) " +
            "INSERT INTO sale_order_line (order_id, name) SELECT id, 'b' FROM o");
        var linked = await ErpShape.RunAsync(ds, s,
            "UPDATE res_partner SET name = 'Azure' WHERE id = 1; INSERT INTO res_partner_res_partner_category_rel VALUES (1, 2)");
        var renamed = await ErpShape.RunAsync(ds, new OperationInfo("write", "res.partner"),
            "UPDATE res_partner SET name = 'Deco' WHERE id = 2");

        await using (var connection = await ds.OpenConnectionAsync())
        {
            await SchemaMigrator.ApplyAsync(connection, OperationsSchema.All, None);
            Assert.Equal(0L, await Scalar<long>(connection,
                "SELECT count(*) FROM loomworks_change WHERE row_hash IS DISTINCT FROM loomworks_row_hash(table_name, row_key)"));
            Assert.Equal(0L, await Scalar<long>(connection, "SELECT count(*) FROM pg_class WHERE relname = 'loomworks_change_row'"));
            // Migration 2010 moved the tables keyed by one column to the capture functions per event; relations keep theirs.
            Assert.Equal("res_partner_res_partner_category_rel:loomworks_capture_statement,sale_order:loomworks_capture_updated",
                await Scalar<string>(connection, """
                SELECT string_agg(t.tgrelid::regclass || ':' || t.tgfoid::regproc, ',' ORDER BY t.tgrelid::regclass::text)
                FROM pg_trigger t WHERE t.tgname = 'loomworks_capture_update'
                  AND t.tgrelid IN ('sale_order'::regclass, 'res_partner_res_partner_category_rel'::regclass)
                """));
            // Every function that looks a change up by its row goes through the hash (the migration edits earlier text).
            Assert.Equal(0L, await Scalar<long>(connection, """
                SELECT count(*) FROM pg_proc WHERE proname IN ('loomworks_undo', 'loomworks_uncaptured_change',
                    'loomworks_operation_conflicts', 'loomworks_capture_change', 'loomworks_capture_statement')
                    AND prosrc NOT LIKE '%loomworks_row_hash(%'
                """));
        }

        // A row changed before the upgrade and again after it: the later operation is found and named.
        var emailed = await ErpShape.RunAsync(ds, new OperationInfo("write", "res.partner"),
            "UPDATE res_partner SET email = 'deco@example.com' WHERE id = 2");
        var undo = new UndoService(ds);
        var e = await Assert.ThrowsAsync<OperationException>(() => undo.UndoAsync(renamed, false, null, None));
        Assert.Equal(OperationErrorKind.Conflict, e.Kind);
        Assert.Contains($"operation {renamed} cannot be undone: operation {emailed} changed res_partner {{\"id\": 2}}", e.Message);
        // A relation row (a key of two columns) linked before the upgrade and unlinked after it.
        var unlinked = await ErpShape.RunAsync(ds, new OperationInfo("unlink", "res.partner"),
            "DELETE FROM res_partner_res_partner_category_rel WHERE partner_id = 1 AND category_id = 2");
        var relation = await Assert.ThrowsAsync<OperationException>(() => undo.UndoAsync(linked, false, null, None));
        Assert.Equal(OperationErrorKind.Conflict, relation.Kind);
        Assert.Contains($"operation {unlinked} changed res_partner_res_partner_category_rel", relation.Message);

        await ErpShape.RunAsync(ds, s,
            "UPDATE sale_order SET state = 'sale' WHERE name = 'S1'; DELETE FROM sale_order_line WHERE name = 'a'");
        await ErpShape.RunAsync(ds, s, "INSERT INTO res_partner (name) VALUES ('Gemini Furniture')");
        await undo.UndoAsync(emailed, false, null, None);
        await undo.UndoAsync(renamed, false, null, None);
        await undo.UndoAsync(unlinked, false, null, None);
        var results = await undo.UndoSessionAsync("rowhash", false, null, None);

        Assert.Equal(4, results.Count);
        Assert.Equal(before, await ErpShape.StateAsync(ds));
    }

    private static async Task Execute(NpgsqlConnection connection, string sql)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }

    private static async Task<T> Scalar<T>(NpgsqlConnection connection, string sql)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        return (T)(await command.ExecuteScalarAsync())!;
    }
}
