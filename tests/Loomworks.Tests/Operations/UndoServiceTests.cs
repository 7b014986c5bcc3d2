using Loomworks.Postgres;
using Loomworks.Operations;
using Loomworks.Tests.Infrastructure;
using Npgsql;

namespace Loomworks.Tests.Operations;

/// <summary>Change capture, the operation log and undo on real PostgreSQL, with tables shaped like the ERP core's.</summary>
public sealed class UndoServiceTests(PostgresFixture postgres)
{
    private static readonly OperationInfo Create = new("create", "sale.order", "s1", "agent-7", 2, "create_order");
    private static readonly CancellationToken None = CancellationToken.None;

    private Task<PooledDatabase> DatabaseAsync(string test) => ErpShape.CreateWithPartnersAsync(postgres, "ops_" + test);

    private static Task<long> OrderWithLinesAsync(PooledDatabase ds, OperationInfo? info = null) =>
        ErpShape.RunAsync(ds, info ?? Create, """
        WITH o AS (INSERT INTO sale_order (name, partner_id, amount_total, note) VALUES ('S00001', 1, 150.50, '{"a": [1, 2]}') RETURNING id)
        INSERT INTO sale_order_line (order_id, name, price_unit, product_uom_qty)
        SELECT id, l.name, l.price, 1.5 FROM o, (VALUES ('Desk', 100.25), ('Chair', 50.25)) l(name, price)
        """);

    [Fact]
    public async Task Capture_records_every_change_with_its_operation_and_changes_outside_one_under_no_logged_operation()
    {
        var ds = await DatabaseAsync("capture");
        var op = await OrderWithLinesAsync(ds);
        await ErpShape.ExecuteAsync(ds, "UPDATE res_partner SET email = 'deco@example.com' WHERE id = 2");

        Assert.Equal(3L, await ErpShape.ScalarAsync<long>(ds,
            $"SELECT count(*) FROM loomworks_change WHERE operation_id = {op} AND kind = 'I'"));
        Assert.Equal("""{"id": 2}""", await ErpShape.ScalarAsync<string>(ds,
            """
            SELECT row_key::text FROM loomworks_change c WHERE table_name = 'res_partner' AND kind = 'U'
              AND NOT EXISTS (SELECT 1 FROM loomworks_ai_operation_log l WHERE l.id = c.operation_id)
            """));
        var log = (await new OperationLog(ds).FindAsync(op, None))!;
        Assert.Equal("done", log.State);
        Assert.Equal(3, log.ChangeCount);
        Assert.Equal(["s1", "agent-7", "create_order"], new[] { log.SessionId, log.AgentId, log.ToolName });
        Assert.Single(log.RecordIds);
        Assert.Contains("S00001", log.ValuesAfter!.Value.GetRawText());
        Assert.Null(log.ValuesBefore);
    }

    [Fact]
    public async Task Installing_capture_twice_captures_each_change_once()
    {
        var ds = await DatabaseAsync("idempotent");
        await using (var connection = await ds.OpenConnectionAsync())
        {
            await ChangeCapture.InstallAsync(connection, ErpShape.Tables, None);
            Assert.Equal(ErpShape.Tables.Order(StringComparer.Ordinal), await ChangeCapture.CapturedTablesAsync(connection, None));
        }
        var op = await ErpShape.RunAsync(ds, Create, "INSERT INTO res_partner (name) VALUES ('Once')");
        Assert.Equal(1L, await ErpShape.ScalarAsync<long>(ds, $"SELECT count(*) FROM loomworks_change WHERE operation_id = {op}"));
    }

    [Fact]
    public async Task Undo_of_a_create_deletes_its_rows_and_is_itself_logged()
    {
        var ds = await DatabaseAsync("undo_create");
        var before = await ErpShape.StateAsync(ds);
        var op = await OrderWithLinesAsync(ds);

        var result = await new UndoService(ds).UndoAsync(op, force: false, null, None);

        Assert.Equal(before, await ErpShape.StateAsync(ds));
        Assert.Equal(3, result.RowsChanged);
        var log = new OperationLog(ds);
        var original = (await log.FindAsync(op, None))!;
        Assert.True(original.Undone);
        Assert.Equal(result.UndoOperationId, original.UndoneBy);
        var undo = (await log.FindAsync(result.UndoOperationId, None))!;
        Assert.Equal(("undo", op, "sale.order", 3), (undo.OperationType, undo.UndoOf!.Value, undo.ModelName!, undo.ChangeCount));
    }

    [Fact]
    public async Task Undo_of_an_unlink_brings_the_order_back_with_its_own_id_its_lines_and_its_values()
    {
        var ds = await DatabaseAsync("undo_unlink");
        await OrderWithLinesAsync(ds);
        var before = await ErpShape.StateAsync(ds);
        var unlink = await ErpShape.RunAsync(ds, Create with { OperationType = "unlink" }, "DELETE FROM sale_order WHERE name = 'S00001'");
        Assert.Equal(0L, await ErpShape.ScalarAsync<long>(ds, "SELECT count(*) FROM sale_order_line"));
        Assert.Equal(3L, await ErpShape.ScalarAsync<long>(ds, $"SELECT count(*) FROM loomworks_change WHERE operation_id = {unlink}"));

        await new UndoService(ds).UndoAsync(unlink, force: false, null, None);

        Assert.Equal(before, await ErpShape.StateAsync(ds));
        // The identity goes on from where it was: a new order does not collide with the restored ids.
        await ErpShape.ExecuteAsync(ds, "INSERT INTO sale_order (name) VALUES ('S00002')");
    }

    [Fact]
    public async Task Undo_of_a_partner_unlink_brings_back_its_many2many_links_and_undo_of_an_unlink_of_a_link_too()
    {
        var ds = await DatabaseAsync("undo_m2m");
        var before = await ErpShape.StateAsync(ds);
        var unlinkLink = await ErpShape.RunAsync(ds, new OperationInfo("write", "res.partner"),
            "DELETE FROM res_partner_res_partner_category_rel WHERE partner_id = 1 AND category_id = 2");
        var unlinkPartner = await ErpShape.RunAsync(ds, new OperationInfo("unlink", "res.partner"), "DELETE FROM res_partner WHERE id = 2");
        Assert.Equal(1L, await ErpShape.ScalarAsync<long>(ds, "SELECT count(*) FROM res_partner_res_partner_category_rel"));

        var undo = new UndoService(ds);
        await undo.UndoAsync(unlinkPartner, false, null, None);
        await undo.UndoAsync(unlinkLink, false, null, None);

        Assert.Equal(before, await ErpShape.StateAsync(ds));
    }

    [Fact]
    public async Task Undo_of_a_write_restores_the_old_values_and_undo_of_the_undo_redoes_it()
    {
        var ds = await DatabaseAsync("redo");
        var before = await ErpShape.StateAsync(ds);
        var write = await ErpShape.RunAsync(ds, new OperationInfo("write", "res.partner"),
            "UPDATE res_partner SET email = NULL, name = 'Renamed', active = false WHERE id = 1");
        var after = await ErpShape.StateAsync(ds);
        var undo = new UndoService(ds);

        var first = await undo.UndoAsync(write, false, null, None);
        Assert.Equal(before, await ErpShape.StateAsync(ds));
        var redo = await undo.UndoAsync(first.UndoOperationId, false, null, None);
        Assert.Equal(after, await ErpShape.StateAsync(ds));
        Assert.False((await new OperationLog(ds).FindAsync(write, None))!.Undone);
        await undo.UndoAsync(write, false, null, None);
        Assert.Equal(before, await ErpShape.StateAsync(ds));
        Assert.True((await new OperationLog(ds).FindAsync(redo.UndoOperationId, None))!.ChangeCount > 0);
    }

    [Fact]
    public async Task Undoing_twice_is_a_clear_error_that_names_the_undo()
    {
        var ds = await DatabaseAsync("twice");
        var op = await OrderWithLinesAsync(ds);
        var undo = new UndoService(ds);
        var first = await undo.UndoAsync(op, false, null, None);
        var state = await ErpShape.StateAsync(ds);

        var e = await Assert.ThrowsAsync<OperationException>(() => undo.UndoAsync(op, false, null, None));

        Assert.Equal(OperationErrorKind.AlreadyUndone, e.Kind);
        Assert.Contains($"operation {op} was already undone", e.Message);
        Assert.Contains($"by operation {first.UndoOperationId}", e.Message);
        Assert.Equal(state, await ErpShape.StateAsync(ds));
    }

    [Fact]
    public async Task A_later_write_or_delete_of_the_same_rows_is_named_and_force_overrides_it()
    {
        var ds = await DatabaseAsync("conflict");
        var create = await OrderWithLinesAsync(ds);
        var write = await ErpShape.RunAsync(ds, new OperationInfo("write", "sale.order.line"),
            "UPDATE sale_order_line SET price_unit = 1 WHERE name = 'Desk'");
        var unlink = await ErpShape.RunAsync(ds, new OperationInfo("unlink", "sale.order.line"),
            "DELETE FROM sale_order_line WHERE name = 'Chair'");
        var undo = new UndoService(ds);
        var state = await ErpShape.StateAsync(ds);

        var e = await Assert.ThrowsAsync<OperationException>(() => undo.UndoAsync(create, false, null, None));
        Assert.Equal(OperationErrorKind.Conflict, e.Kind);
        Assert.Matches($"operation ({write}|{unlink}) changed sale_order_line", e.Message);
        Assert.Equal(state, await ErpShape.StateAsync(ds));

        await undo.UndoAsync(write, false, null, None); // the unlink touched another line: no conflict
        var e2 = await Assert.ThrowsAsync<OperationException>(() => undo.UndoAsync(create, false, null, None));
        Assert.Contains($"operation {unlink} changed sale_order_line", e2.Message);
        Assert.Contains($"undo operation {unlink} first", e2.Message);
        await undo.UndoAsync(unlink, false, null, None);
        await undo.UndoAsync(create, false, null, None);
        Assert.Equal(0L, await ErpShape.ScalarAsync<long>(ds, "SELECT count(*) FROM sale_order"));

        var again = await OrderWithLinesAsync(ds);
        await ErpShape.ExecuteAsync(ds, "UPDATE sale_order SET state = 'sale'");
        var outside = await Assert.ThrowsAsync<OperationException>(() => undo.UndoAsync(again, false, null, None));
        Assert.Contains("outside any operation", outside.Message);
        await undo.UndoAsync(again, force: true, null, None);
        Assert.Equal(0L, await ErpShape.ScalarAsync<long>(ds, "SELECT count(*) FROM sale_order"));
    }

    [Fact]
    public async Task A_write_of_a_row_a_later_operation_deleted_is_refused_naming_that_deletion()
    {
        var ds = await DatabaseAsync("later_delete");
        var write = await ErpShape.RunAsync(ds, new OperationInfo("write", "res.partner"),
            "UPDATE res_partner SET name = 'X' WHERE id = 2");
        var unlink = await ErpShape.RunAsync(ds, new OperationInfo("unlink", "res.partner"), "DELETE FROM res_partner WHERE id = 2");

        var e = await Assert.ThrowsAsync<OperationException>(() => new UndoService(ds).UndoAsync(write, false, null, None));

        Assert.Contains($"operation {unlink} changed res_partner {{\"id\": 2}}", e.Message);
    }

    [Fact]
    public async Task Two_connections_undoing_the_same_operation_at_once_exactly_one_succeeds()
    {
        var ds = await DatabaseAsync("concurrent");
        for (var round = 0; round < 5; round++)
        {
            var op = await OrderWithLinesAsync(ds);
            var attempts = Enumerable.Range(0, 4).Select(_ => Task.Run(async () =>
            {
                try
                {
                    await new UndoService(ds).UndoAsync(op, false, null, None);
                    return "ok";
                }
                catch (OperationException e)
                {
                    return e.Kind.ToString();
                }
            })).ToArray();
            var outcomes = await Task.WhenAll(attempts);
            Assert.Single(outcomes, o => o == "ok");
            Assert.All(outcomes.Where(o => o != "ok"), o => Assert.Equal(nameof(OperationErrorKind.AlreadyUndone), o));
        }
        Assert.Equal(0L, await ErpShape.ScalarAsync<long>(ds, "SELECT count(*) FROM sale_order"));
        Assert.Equal(5L, await ErpShape.ScalarAsync<long>(ds,
            "SELECT count(*) FROM loomworks_ai_operation_log WHERE operation_type = 'undo'"));
    }

    [Fact]
    public async Task Session_undo_goes_newest_first_and_leaves_other_sessions_alone()
    {
        var ds = await DatabaseAsync("session");
        var before = await ErpShape.StateAsync(ds);
        var s = new OperationInfo("create", "sale.order", SessionId: "sess-a");
        await OrderWithLinesAsync(ds, s);
        await ErpShape.RunAsync(ds, s with { OperationType = "write" },
            "UPDATE sale_order_line SET product_uom_qty = 3 WHERE name = 'Desk'");
        await ErpShape.RunAsync(ds, s with { OperationType = "write" }, "UPDATE sale_order SET state = 'sale'");
        await ErpShape.RunAsync(ds, s with { OperationType = "unlink" }, "DELETE FROM sale_order_line WHERE name = 'Chair'");
        var other = await ErpShape.RunAsync(ds, new OperationInfo("write", "res.partner", SessionId: "sess-b"),
            "UPDATE res_partner SET name = 'B' WHERE id = 2");
        var otherState = await ErpShape.ScalarAsync<string>(ds, "SELECT name FROM res_partner WHERE id = 2");

        var results = await new UndoService(ds).UndoSessionAsync("sess-a", false, null, None);

        Assert.Equal(4, results.Count);
        Assert.True(results.Select(r => r.OperationId).SequenceEqual(results.Select(r => r.OperationId).OrderDescending()));
        Assert.Equal("B", otherState);
        await new UndoService(ds).UndoAsync(other, false, null, None);
        Assert.Equal(before, await ErpShape.StateAsync(ds));
        var e = await Assert.ThrowsAsync<OperationException>(() => new UndoService(ds).UndoSessionAsync("sess-a", false, null, None));
        Assert.Equal(OperationErrorKind.NotFound, e.Kind);
    }

    [Fact]
    public async Task Rewind_undoes_everything_after_the_time_and_refuses_before_the_log_covers()
    {
        var ds = await DatabaseAsync("rewind");
        await OrderWithLinesAsync(ds);
        var at = await ErpShape.ScalarAsync<DateTime>(ds, "SELECT clock_timestamp()");
        var state = await ErpShape.StateAsync(ds);
        var write = await ErpShape.RunAsync(ds, new OperationInfo("write", "sale.order"), "UPDATE sale_order SET amount_total = 1");
        await new UndoService(ds).UndoAsync(write, false, null, None);
        await ErpShape.RunAsync(ds, new OperationInfo("unlink", "sale.order"), "DELETE FROM sale_order");
        await ErpShape.RunAsync(ds, new OperationInfo("create", "res.partner"), "INSERT INTO res_partner (name) VALUES ('Late')");
        var undo = new UndoService(ds);

        var tooEarly = await Assert.ThrowsAsync<OperationException>(() =>
            undo.RewindAsync(new DateTimeOffset(2001, 1, 1, 0, 0, 0, TimeSpan.Zero), false, "acme", None));
        Assert.Equal(OperationErrorKind.NotCovered, tooEarly.Kind);
        Assert.Contains("loomworks restore acme --time 2001-01-01T00:00:00.000Z", tooEarly.Message);

        await undo.RewindAsync(new DateTimeOffset(at, TimeSpan.Zero), false, "acme", None);

        Assert.Equal(state, await ErpShape.StateAsync(ds));
        Assert.Empty(await undo.RewindAsync(new DateTimeOffset(at, TimeSpan.Zero), false, "acme", None));
        Assert.Equal(state, await ErpShape.StateAsync(ds));
    }

    [Fact]
    public async Task Rewind_over_changes_made_outside_any_operation_is_refused_unless_forced()
    {
        var ds = await DatabaseAsync("rewind_outside");
        var at = await ErpShape.ScalarAsync<DateTime>(ds, "SELECT clock_timestamp()");
        await ErpShape.RunAsync(ds, new OperationInfo("create", "res.partner"), "INSERT INTO res_partner (name) VALUES ('Op')");
        await ErpShape.ExecuteAsync(ds, "INSERT INTO res_partner (name) VALUES ('Outside')");
        var undo = new UndoService(ds);

        var e = await Assert.ThrowsAsync<OperationException>(() =>
            undo.RewindAsync(new DateTimeOffset(at, TimeSpan.Zero), false, "t", None));
        Assert.Contains("outside any operation", e.Message);
        Assert.Equal(4L, await ErpShape.ScalarAsync<long>(ds, "SELECT count(*) FROM res_partner"));

        Assert.Single(await undo.RewindAsync(new DateTimeOffset(at, TimeSpan.Zero), true, "t", None));
        Assert.Equal(["Azure Interior", "Deco Addict", "Outside"], await NamesAsync(ds));
    }

    [Fact]
    public async Task Retention_prunes_old_changes_and_their_operations_can_no_longer_be_undone_or_rewound()
    {
        var ds = await DatabaseAsync("retention");
        await ErpShape.ExecuteAsync(ds, "UPDATE loomworks_oplog_coverage SET covered_since = now() - interval '90 days'");
        var old = await OrderWithLinesAsync(ds);
        await ErpShape.ExecuteAsync(ds, $"""
            UPDATE loomworks_change SET changed_at = now() - interval '40 days' WHERE operation_id = {old};
            UPDATE loomworks_ai_operation_log SET created_at = now() - interval '40 days' WHERE id = {old};
            """);
        // A change made outside any operation, as old: pruned too, though no log row dates it.
        await ErpShape.ExecuteAsync(ds, """
            UPDATE res_partner SET email = 'outside@example.com' WHERE id = 1;
            UPDATE loomworks_change SET changed_at = now() - interval '40 days' WHERE new_row ->> 'email' = 'outside@example.com';
            """);
        var recent = await ErpShape.RunAsync(ds, new OperationInfo("create", "res.partner"),
            "INSERT INTO res_partner (name) VALUES ('New')");

        var log = new OperationLog(ds);
        var before = (await log.FindAsync(old, None))!;
        Assert.Equal(3, before.ChangeCount);

        Assert.Equal(4L, await OperationLogRetention.PruneAsync(ds, 30, None));
        Assert.Equal(0L, await ErpShape.ScalarAsync<long>(ds,
            "SELECT count(*) FROM loomworks_change WHERE new_row ->> 'email' = 'outside@example.com'"));

        // The log still says what the pruned operation changed: its summary was stored before its change rows went.
        var after = (await log.FindAsync(old, None))!;
        Assert.Equal(3, after.ChangeCount);
        Assert.Equal(before.RecordIds, after.RecordIds);
        Assert.Equal(before.ValuesAfter!.Value.GetRawText(), after.ValuesAfter!.Value.GetRawText());
        Assert.Null(after.ValuesBefore);
        Assert.Equal(1L, await ErpShape.ScalarAsync<long>(ds,
            $"SELECT count(*) FROM loomworks_ai_operation_log WHERE record_ids IS NOT NULL AND id IN ({old}, {recent})"));
        Assert.Equal(0L, await ErpShape.ScalarAsync<long>(ds, $"SELECT count(*) FROM loomworks_change WHERE operation_id = {old}"));
        Assert.Equal(1L, await ErpShape.ScalarAsync<long>(ds, $"SELECT count(*) FROM loomworks_change WHERE operation_id = {recent}"));
        var undo = new UndoService(ds);
        var e = await Assert.ThrowsAsync<OperationException>(() => undo.UndoAsync(old, false, null, None));
        Assert.Equal(OperationErrorKind.NotCovered, e.Kind);
        Assert.Contains("loomworks_oplog_retention_days", e.Message);
        var r = await Assert.ThrowsAsync<OperationException>(() => undo.RewindAsync(DateTimeOffset.UtcNow.AddDays(-35), false, "t", None));
        Assert.Contains("loomworks restore t --time", r.Message);
        await undo.UndoAsync(recent, false, null, None);
    }

    [Fact]
    public async Task A_failed_operation_is_logged_after_the_rollback_and_cannot_be_undone()
    {
        var ds = await DatabaseAsync("failed");
        await using var connection = await ds.OpenConnectionAsync();
        OperationScope scope;
        await using (var transaction = await connection.BeginTransactionAsync())
        {
            scope = OperationScope.Begin(transaction, Create);
            await using var bad = new NpgsqlCommand("INSERT INTO sale_order_line (order_id, name) VALUES (999, 'orphan')", connection);
            await Assert.ThrowsAsync<PostgresException>(() => bad.ExecuteNonQueryAsync());
            await transaction.RollbackAsync();
        }
        var failed = await scope.RecordFailureAsync("sale.order 999 does not exist", None);

        var log = (await new OperationLog(ds).FindAsync(failed, None))!;
        Assert.Equal(("failed", "sale.order 999 does not exist"), (log.State, log.ErrorMessage!));
        Assert.Null(scope.Id);
        Assert.Equal(1L, await ErpShape.ScalarAsync<long>(ds, "SELECT count(*) FROM loomworks_ai_operation_log"));
        var e = await Assert.ThrowsAsync<OperationException>(() => new UndoService(ds).UndoAsync(failed, false, null, None));
        Assert.Equal(OperationErrorKind.NotUndoable, e.Kind);
    }

    [Theory]
    [InlineData(0L)]
    [InlineData(-1L)]
    [InlineData(long.MinValue)]
    [InlineData(long.MaxValue)]
    [InlineData(424242L)]
    public async Task Unknown_zero_negative_and_huge_ids_are_clear_errors_and_change_nothing(long id)
    {
        var ds = await DatabaseAsync("bad_id_" + (id < 0 ? "neg" + (id == -1 ? "1" : "min") : id.ToString()));
        await OrderWithLinesAsync(ds);
        var state = await ErpShape.StateAsync(ds);

        var e = await Assert.ThrowsAsync<OperationException>(() => new UndoService(ds).UndoAsync(id, false, null, None));

        Assert.Contains(id <= 0 ? "positive whole number" : $"operation {id} does not exist", e.Message);
        Assert.Equal(state, await ErpShape.StateAsync(ds));
    }

    [Theory]
    [InlineData("res_partner; DROP TABLE sale_order")]
    [InlineData("\"res_partner\"")]
    [InlineData("loomworks_change")]
    [InlineData("no_such_table")]
    [InlineData("")]
    public async Task Capture_refuses_bad_table_names_and_creates_nothing(string table)
    {
        var ds = await DatabaseAsync("bad_table_" + Math.Abs(table.GetHashCode(StringComparison.Ordinal) % 1000));
        await using var connection = await ds.OpenConnectionAsync();
        await ChangeCapture.RemoveAsync(connection, ["res_partner"], None);

        await Assert.ThrowsAsync<ArgumentException>(() => ChangeCapture.InstallAsync(connection, [table], None));

        Assert.DoesNotContain("res_partner", await ChangeCapture.CapturedTablesAsync(connection, None));
        Assert.Equal(1L, await ErpShape.ScalarAsync<long>(ds, "SELECT count(*) FROM pg_class WHERE relname = 'sale_order'"));
    }

    [Fact]
    public async Task Listing_filters_are_parameters_so_sql_in_them_finds_nothing_and_breaks_nothing()
    {
        var ds = await DatabaseAsync("list");
        await OrderWithLinesAsync(ds);
        await ErpShape.RunAsync(ds, new OperationInfo("write", "res.partner", "s2", "agent-9"),
            "UPDATE res_partner SET name = 'Q' WHERE id = 2");
        var log = new OperationLog(ds);

        Assert.Single(await log.ListAsync(new OperationFilter(SessionId: "s2"), None));
        Assert.Single(await log.ListAsync(new OperationFilter(AgentId: "agent-7"), None));
        Assert.Single(await log.ListAsync(new OperationFilter(ModelName: "res.partner"), None));
        Assert.Equal(2, (await log.ListAsync(new OperationFilter(Since: DateTimeOffset.UtcNow.AddMinutes(-5)), None)).Count);
        Assert.Empty(await log.ListAsync(new OperationFilter(Until: DateTimeOffset.UtcNow.AddMinutes(-5)), None));
        Assert.Empty(await log.ListAsync(new OperationFilter(SessionId: "x' OR 1=1; DROP TABLE loomworks_change; --"), None));
        Assert.Equal(4L, await ErpShape.ScalarAsync<long>(ds,
            "SELECT count(*) FROM loomworks_change WHERE operation_id IN (SELECT id FROM loomworks_ai_operation_log)"));
        await Assert.ThrowsAsync<OperationException>(() => log.ListAsync(new OperationFilter(Limit: 0), None));
        await Assert.ThrowsAsync<OperationException>(() => log.ListAsync(new OperationFilter(Limit: 1_000_000), None));
        await Assert.ThrowsAsync<OperationException>(() => log.ListAsync(
            new OperationFilter(Since: DateTimeOffset.UtcNow, Until: DateTimeOffset.UtcNow.AddDays(-1)), None));
    }

    [Fact]
    public async Task A_database_without_the_operations_schema_is_a_clear_error()
    {
        await postgres.CreateDatabaseAsync("ops_no_schema");
        var ds = postgres.DataSource("ops_no_schema");

        var e = await Assert.ThrowsAsync<OperationException>(() => new UndoService(ds).UndoAsync(1, false, null, None));
        var l = await Assert.ThrowsAsync<OperationException>(() => new OperationLog(ds).ListAsync(new OperationFilter(), None));

        Assert.Equal(OperationErrorKind.LogMissing, e.Kind);
        Assert.Equal(OperationErrorKind.LogMissing, l.Kind);
    }

    private static async Task<List<string>> NamesAsync(PooledDatabase ds)
    {
        await using var command = ds.CreateCommand("SELECT name FROM res_partner ORDER BY id");
        await using var reader = await command.ExecuteReaderAsync();
        var names = new List<string>();
        while (await reader.ReadAsync())
        {
            names.Add(reader.GetString(0));
        }
        return names;
    }
}
