using Loomworks.Security;
using Loomworks.Records;
using Loomworks.Tests.Infrastructure;

namespace Loomworks.Tests.Records;

public sealed class DomainAndOrmTests(PostgresFixture postgres) : IAsyncLifetime
{
    private RecordsDatabase _db = null!;
    private long _acme, _alice, _bob, _carol;
    private static CancellationToken Ct => TestContext.Current.CancellationToken;
    private static ModelDef Partner => ModelRegistry.Partner;

    private static List<object?> L(params object?[] items) => [.. items];
    private static Dictionary<string, object?> D(params (string Key, object? Value)[] items) =>
        items.ToDictionary(i => i.Key, i => i.Value);

    public async ValueTask InitializeAsync()
    {
        _db = await RecordsDatabase.CreateAsync(postgres, "records_domain_orm");
        await _db.AdminAsync(async env =>
        {
            var be = await env.SearchAsync(ModelRegistry.Country, L(L("code", "=", "BE")), 0, null, null, Ct);
            _acme = await env.CreateOneAsync(Partner, D(("name", "Acme"), ("is_company", true), ("country_id", be[0]), ("email",
                "info@acme.example")), Ct);
            _alice = await env.CreateOneAsync(Partner, D(("name", "Alice"), ("parent_id", _acme), ("email", "alice@acme.example"), ("phone",
                "+32 1")), Ct);
            _bob = await env.CreateOneAsync(Partner, D(("name", "Bob"), ("parent_id", _alice), ("active", false)), Ct);
            _carol = await env.CreateOneAsync(Partner, D(("name", "Carol O'Hara"), ("credit_limit", 10.5)), Ct);
            return 0;
        });
    }

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;

    private Task<List<long>> Search(object? domain, Dictionary<string, object?>? context = null) =>
        _db.AdminAsync(env => env.SearchAsync(Partner, domain, 0, null, "id", Ct), context);

    [Fact]
    public async Task Migrations_create_every_stored_field_as_a_column_and_seed_countries()
    {
        foreach (var model in ModelRegistry.All)
        {
            foreach (var field in model.FieldList.Where(f => f.HasColumn))
            {
                var found = await postgres.ScalarAsync<long>(_db.Name,
                    $"SELECT count(*) FROM information_schema.columns WHERE table_name = '{model.Table}' AND column_name = '{field.Name}'");
                Assert.True(found == 1, $"{model.Name}.{field.Name} has no column in {model.Table}");
            }
        }
        Assert.True(await postgres.ScalarAsync<long>(_db.Name, "SELECT count(*) FROM res_country") >= 249);
        Assert.Equal(1, await TenantSchema.CountUsersAsync(await _db.DataSource.OpenConnectionAsync(Ct), Ct));
    }

    [Fact]
    public async Task Prefix_operators_implicit_and_negation_and_active()
    {
        Assert.Equal([_acme, _alice], (await Search(L(L("email", "ilike", "acme")))).Where(i => i >= _acme).ToList());
        Assert.Equal([_alice, _carol], await Search(L("|", L("name", "=", "Alice"), L("name", "=like", "Carol%"))));
        Assert.Equal([_alice], await Search(L(L("email", "!=", false), L("name", "not ilike", "acme"))));
        Assert.DoesNotContain(_bob, await Search(L(L("name", "=", "Bob"))));
        Assert.Equal([_bob], await Search(L(L("name", "=", "Bob")), new() { ["active_test"] = false }));
        Assert.Equal([_bob], await Search(L(L("name", "=", "Bob"), L("active", "=", false))));
        Assert.Equal([_carol], await Search(L("!", L("credit_limit", "=", false), L("credit_limit", ">", 10L))));
        Assert.Equal([_carol], await Search(L(L("name", "in", L("Carol O'Hara", "Nobody")))));
        Assert.Equal([_alice], await Search(L(L("name", "=", L("Alice")))));
        Assert.Equal([_carol], await Search(L(L("phone", "=", false), L("name", "<>", "Acme"), L("parent_id", "=?", false), L("id", ">=",
            _carol))));
    }

    [Fact]
    public async Task Dotted_paths_any_many2one_by_name_and_hierarchies()
    {
        Assert.Equal([_acme], await Search(L(L("country_id.code", "=", "BE"))));
        Assert.Equal([_alice], await Search(L(L("parent_id", "any", L(L("is_company", "=", true))))));
        Assert.Equal([_alice], await Search(L(L("parent_id", "=", "Acme"))));
        Assert.Equal([_acme], await Search(L(L("child_ids", "any", L(L("name", "=", "Alice"))))));
        Assert.Contains(_carol, await Search(L(L("parent_id", "not any", L(L("is_company", "=", true))))));
        var children = await Search(L(L("id", "child_of", _acme)), new() { ["active_test"] = false });
        Assert.Equal([_acme, _alice, _bob], children);
        Assert.Equal([_acme, _alice], await Search(L(L("id", "parent_of", _alice))));
        Assert.Equal([_acme], await Search(L(L("child_ids", "!=", false))));
    }

    [Theory]
    [InlineData("[[\"nope\", \"=\", 1]]", "Invalid field res.partner.nope")]
    [InlineData("[[\"name\", \"~\", 1]]", "Invalid operator '~'")]
    [InlineData("[\"|\", [\"name\", \"=\", 1]]", "syntactically not correct")]
    [InlineData("[[\"name\", \"=\"]]", "Invalid leaf")]
    [InlineData("[[\"credit_limit\", \"=\", \"1; DROP TABLE res_partner\"]]", "Invalid value")]
    [InlineData("[[\"name; DROP TABLE res_partner\", \"=\", 1]]", "Invalid field")]
    public async Task Bad_domains_are_value_errors_naming_the_problem(string json, string expected)
    {
        var domain = Loomworks.Rpc.JsonRpcCodec.ToWire(System.Text.Json.JsonDocument.Parse(json).RootElement);
        var e = await Assert.ThrowsAsync<OdooException>(() => Search(domain));
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
        Assert.Equal(1, e.FaultCode);
        Assert.Equal(4, await postgres.ScalarAsync<long>(_db.Name, $"SELECT count(*) FROM res_partner WHERE id >= {_acme}"));
    }

    [Theory]
    [InlineData("name; DROP TABLE res_partner")]
    [InlineData("name desc, (SELECT 1)")]
    [InlineData("name sideways")]
    [InlineData("password")]
    public async Task Order_is_validated_against_the_model(string order)
    {
        var e = await Assert.ThrowsAsync<OdooException>(() => _db.AdminAsync(env => env.SearchAsync(Partner, null, 0, null, order, Ct)));
        Assert.Contains("Invalid order", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Negative_limits_and_offsets_are_refused()
    {
        await Assert.ThrowsAsync<OdooException>(() => _db.AdminAsync(env => env.SearchAsync(Partner, null, 0, -1, null, Ct)));
        await Assert.ThrowsAsync<OdooException>(() => _db.AdminAsync(env => env.SearchAsync(Partner, null, -5, null, null, Ct)));
        Assert.NotEmpty(await _db.AdminAsync(env => env.SearchAsync(Partner, null, 0, long.MaxValue, null, Ct)));
    }

    [Fact]
    public async Task Read_gives_many2one_pairs_x2many_ids_and_false_for_empty()
    {
        var rows = await _db.AdminAsync(env => env.ReadAsync(Partner, [_alice, _acme], ["name", "parent_id", "child_ids", "phone",
            "comment", "display_name", "company_type"], Ct));
        Assert.Equal(_alice, rows[0]["id"]);
        Assert.Equal(L(_acme, "Acme"), rows[0]["parent_id"]);
        Assert.Equal("Acme, Alice", rows[0]["display_name"]);
        Assert.Equal(false, rows[0]["comment"]);
        Assert.Equal("person", rows[0]["company_type"]);
        Assert.Equal(L(_alice), rows[1]["child_ids"]);
        var e = await Assert.ThrowsAsync<OdooException>(() => _db.AdminAsync(env => env.ReadAsync(Partner, [999_999], null, Ct)));
        Assert.Equal(OdooErrorKind.MissingError, e.Kind);
    }

    [Fact]
    public async Task Sale_orders_with_command_tuples_compute_totals_and_cascade()
    {
        var (order, lines) = await _db.AdminAsync(async env =>
        {
            var product = await env.CreateOneAsync(ModelRegistry.Product,
                D(("name", "Widget"), ("default_code", "W1"), ("list_price", 5.0)), Ct);
            var order = await env.CreateOneAsync(ModelRegistry.SaleOrder, D(("partner_id", _acme), ("order_line", L(
                L(0L, 0L, D(("product_id", product), ("product_uom_qty", 3.0), ("price_unit", 5.0))),
                L(0L, 0L, D(("name", "Service"), ("product_uom_qty", 1.0), ("price_unit", 2.5), ("discount", 10.0)))))), Ct);
            var read = await env.ReadAsync(ModelRegistry.SaleOrder, [order], ["name", "amount_total", "order_line", "state"], Ct);
            return (order, read[0]);
        });
        Assert.Equal(17.25, lines["amount_total"]);
        Assert.Equal("draft", lines["state"]);
        Assert.Equal($"S{order:00000}", lines["name"]);
        var lineIds = ((List<object?>)lines["order_line"]!).Cast<long>().ToList();
        Assert.Equal(2, lineIds.Count);
        var lineRows = await _db.AdminAsync(env => env.ReadAsync(ModelRegistry.SaleOrderLine, lineIds, ["name", "price_subtotal",
            "price_total"], Ct));
        Assert.Equal(("Widget", 15.0, 15.0), ((string)lineRows[0]["name"]!, lineRows[0]["price_subtotal"], lineRows[0]["price_total"]));
        Assert.Equal(("Service", 2.25, 2.25), ((string)lineRows[1]["name"]!, lineRows[1]["price_subtotal"], lineRows[1]["price_total"]));
        var after = await _db.AdminAsync(async env =>
        {
            await env.WriteAsync(ModelRegistry.SaleOrder, [order],
                D(("order_line", L(L(2L, lineIds[1]), L(1L, lineIds[0], D(("product_uom_qty", 1.0)))))), Ct);
            return (await env.ReadAsync(ModelRegistry.SaleOrder, [order], ["amount_total", "order_line"], Ct))[0];
        });
        Assert.Equal(5.0, after["amount_total"]);
        await _db.AdminAsync(env => env.UnlinkAsync(ModelRegistry.SaleOrder, [order], Ct));
        Assert.Equal(0, await postgres.ScalarAsync<long>(_db.Name, $"SELECT count(*) FROM sale_order_line WHERE id = {lineIds[0]}"));
    }

    [Fact]
    public async Task A_partners_complete_name_follows_its_name_and_its_parents_name()
    {
        async Task<string> CompleteNameAsync(long id) =>
            (string)(await _db.AdminAsync(env => env.ReadAsync(Partner, [id], ["complete_name"], Ct)))[0]["complete_name"]!;
        await _db.AdminAsync(env => env.WriteAsync(Partner, [_alice], D(("email", "alice@new.example")), Ct));
        Assert.Equal("Acme, Alice", await CompleteNameAsync(_alice));
        await _db.AdminAsync(env => env.WriteAsync(Partner, [_acme], D(("name", "Acme Corp")), Ct));
        Assert.Equal("Acme Corp, Alice", await CompleteNameAsync(_alice));
        await _db.AdminAsync(env => env.WriteAsync(Partner, [_alice], D(("parent_id", _carol)), Ct));
        Assert.Equal("Carol O'Hara, Alice", await CompleteNameAsync(_alice));
        await _db.AdminAsync(env => env.WriteAsync(Partner, [_alice], D(("is_company", true)), Ct));
        Assert.Equal("Alice", await CompleteNameAsync(_alice));
    }

    [Fact]
    public async Task Order_lines_created_written_or_deleted_on_their_own_recompute_their_order()
    {
        decimal Total(Dictionary<string, object?> row) => System.Convert.ToDecimal(row["amount_total"],
            System.Globalization.CultureInfo.InvariantCulture);
        var (order, line) = await _db.AdminAsync(async env =>
        {
            var order = await env.CreateOneAsync(ModelRegistry.SaleOrder, D(("partner_id", _acme), ("name", "PO-7")), Ct);
            var line = await env.CreateOneAsync(ModelRegistry.SaleOrderLine,
                D(("order_id", order), ("name", "Desk"), ("product_uom_qty", 2.0), ("price_unit", 150.0), ("discount", 10.0)), Ct);
            return (order, line);
        });
        async Task<Dictionary<string, object?>> OrderAsync() =>
            (await _db.AdminAsync(env => env.ReadAsync(ModelRegistry.SaleOrder, [order], ["name", "amount_total"], Ct)))[0];
        var created = await OrderAsync();
        Assert.Equal("PO-7", created["name"]);
        Assert.Equal(270m, Total(created));

        await _db.AdminAsync(env => env.WriteAsync(ModelRegistry.SaleOrderLine, [line], D(("discount", 0.0)), Ct));
        Assert.Equal(300m, Total(await OrderAsync()));
        // A write of the order's own fields leaves its name and amounts as they were.
        await _db.AdminAsync(env => env.WriteAsync(ModelRegistry.SaleOrder, [order], D(("client_order_ref", "REF-1")), Ct));
        var written = await OrderAsync();
        Assert.Equal(("PO-7", 300m), ((string)written["name"]!, Total(written)));
        await _db.AdminAsync(env => env.UnlinkAsync(ModelRegistry.SaleOrderLine, [line], Ct));
        Assert.Equal(0m, Total(await OrderAsync()));
    }

    [Fact]
    public async Task Many2many_commands_link_replace_and_clear()
    {
        var groups = await _db.AdminAsync(async env =>
        {
            var uid = await env.CreateOneAsync(ModelRegistry.Users,
                D(("name", "M2M"), ("login", "m2m@example.test"), ("password", "pw-123456")), Ct);
            await env.WriteAsync(ModelRegistry.Users, [uid], D(("groups_id", L(L(6L, 0L, L(4L)), L(4L, 3L)))), Ct);
            var linked = (await env.ReadAsync(ModelRegistry.Users, [uid], ["groups_id"], Ct))[0]["groups_id"];
            await env.WriteAsync(ModelRegistry.Users, [uid], D(("groups_id", L(L(3L, 4L)))), Ct);
            var after = (await env.ReadAsync(ModelRegistry.Users, [uid], ["groups_id"], Ct))[0]["groups_id"];
            await env.WriteAsync(ModelRegistry.Users, [uid], D(("groups_id", L(L(5L)))), Ct);
            var cleared = (await env.ReadAsync(ModelRegistry.Users, [uid], ["groups_id"], Ct))[0]["groups_id"];
            return (linked, after, cleared);
        });
        Assert.Equal(2, ((List<object?>)groups.linked!).Count);
        Assert.Equal(L(3L), groups.after);
        Assert.Equal(L(), groups.cleared);
    }

    [Fact]
    public async Task Read_only_group_cannot_write_and_passwords_are_pbkdf2()
    {
        var uid = await _db.AdminAsync(env => env.CreateOneAsync(ModelRegistry.Users,
            D(("name", "Viewer"), ("login", "viewer"), ("password", "view-pass"), ("groups_id", L(L(6L, 0L, L(4L))))), Ct));
        var hash = await postgres.ScalarAsync<string>(_db.Name, $"SELECT password FROM res_users WHERE id = {uid}");
        Assert.StartsWith("$pbkdf2-sha512$600000$", hash, StringComparison.Ordinal);
        Assert.True(Passwords.Verify("view-pass", hash));
        Assert.False(Passwords.Verify("wrong", hash));
        Assert.NotEmpty(await _db.AsAsync(uid, env => env.SearchAsync(Partner, null, 0, 5, null, Ct)));
        var e = await Assert.ThrowsAsync<OdooException>(() =>
            _db.AsAsync(uid, env => env.WriteAsync(Partner, [_carol], D(("name", "X")), Ct)));
        Assert.Equal(4, e.FaultCode);
        Assert.Contains("res.partner", e.Message, StringComparison.Ordinal);
        Assert.Equal("Carol O'Hara", await postgres.ScalarAsync<string>(_db.Name, $"SELECT name FROM res_partner WHERE id = {_carol}"));
    }

    [Fact]
    public async Task Name_search_fields_get_and_default_get()
    {
        var found = await _db.AdminAsync(env => env.NameSearchAsync(Partner, "ali", null, "ilike", 10, Ct));
        Assert.Equal(L(L(_alice, "Acme, Alice")), found);
        var fields = RecordEnvironment.FieldsGet(Partner, null, ["type", "string", "relation"]);
        Assert.Equal("many2one", ((Dictionary<string, object?>)fields["country_id"]!)["type"]);
        Assert.Equal("res.country", ((Dictionary<string, object?>)fields["country_id"]!)["relation"]);
        Assert.False(RecordEnvironment.FieldsGet(ModelRegistry.Users, null, null).ContainsKey("password"));
        var defaults = await _db.AdminAsync(env => Task.FromResult(env.DefaultGet(Partner, ["active", "type", "name"])),
            new() { ["default_name"] = "N" });
        Assert.Equal(true, defaults["active"]);
        Assert.Equal("contact", defaults["type"]);
        Assert.Equal("N", defaults["name"]);
    }
}
