using Loomworks.Records;
using Loomworks.Tests.Infrastructure;

namespace Loomworks.Tests.Rpc;

/// <summary>
/// read_group over XML-RPC and JSON-RPC as Odoo answers it: groupby values, aggregates, counts, domains, date ranges and
/// order; refused with a ValueError or AccessError for what is not a field, not an aggregate, not groupable or not allowed.
/// </summary>
public sealed class ReadGroupTests(ReadGroupTests.Fixture fixture) : IClassFixture<ReadGroupTests.Fixture>, IDisposable
{
    public sealed class Fixture(PostgresFixture postgres) : IAsyncLifetime
    {
        public RpcServer Server { get; private set; } = null!;
        public PostgresFixture Postgres => postgres;

        // A body cap that lets a 100,000-term domain reach the ORM, which must refuse it itself.
        public async ValueTask InitializeAsync() => Server = await RpcServer.StartAsync(postgres, "rpc_read_group",
            new Dictionary<string, string>(), 12L * 1024 * 1024);

        public async ValueTask DisposeAsync() => await Server.DisposeAsync();
    }

    private static readonly string[] AmountSum = ["amount_total:sum"];
    private static readonly string[] PartnerOnly = ["partner_id"];

    private readonly RpcServer _server = fixture.Server;
    private readonly RpcClient _client = new(fixture.Server.Url);

    public void Dispose() => _client.Dispose();

    private Task<object?> CallAsync(string model, string method, List<object?> args, Dictionary<string, object?>? kwargs = null) =>
        _client.ObjectAsync(_server.Db, 2, "admin", model, method, args, kwargs);

    private async Task<long> CreateAsync(string model, Dictionary<string, object?> values) =>
        (long)(await CallAsync(model, "create", [values]))!;

    /// <summary>Two customers named after the test and three orders: A 100 (Jan 15) and 50 (Feb 3, confirmed), B 30 (Feb 20).</summary>
    private async Task<(long A, long B, List<object?> Domain)> SeedOrdersAsync(string prefix)
    {
        var a = await CreateAsync("res.partner", new() { ["name"] = prefix + "_a", ["city"] = "Ghent", ["is_company"] = true });
        var b = await CreateAsync("res.partner", new() { ["name"] = prefix + "_b" });
        async Task OrderAsync(long partner, string date, double amount, string state) =>
            await CreateAsync("sale.order", new()
            {
                ["partner_id"] = partner, ["date_order"] = date, ["state"] = state,
                ["order_line"] = new List<object?> { new List<object?> { 0L, 0L, new Dictionary<string, object?>
                {
                    ["name"] = "line", ["product_uom_qty"] = 1.0, ["price_unit"] = amount,
                } } },
            });
        await OrderAsync(a, "2026-01-15 10:00:00", 100, "draft");
        await OrderAsync(a, "2026-02-03 23:30:00", 50, "sale");
        await OrderAsync(b, "2026-02-20 08:00:00", 30, "draft");
        return (a, b, [new List<object?> { "partner_id.name", "=like", prefix + "_%" }]);
    }

    private async Task<List<Dictionary<string, object?>>> ReadGroupAsync(string model, List<object?> domain, List<object?> fields,
        List<object?> groupby, Dictionary<string, object?>? kwargs = null) =>
        ((List<object?>)(await CallAsync(model, "read_group", [domain, fields, groupby], kwargs))!)
            .Cast<Dictionary<string, object?>>().ToList();

    private async Task<FaultException> RefusedAsync(string model, List<object?> domain, List<object?> fields, List<object?> groupby,
        Dictionary<string, object?>? kwargs = null, long uid = 2, string password = "admin") =>
        await Assert.ThrowsAsync<FaultException>(() =>
            _client.ObjectAsync(_server.Db, uid, password, model, "read_group", [domain, fields, groupby], kwargs));

    [Fact]
    public async Task Orders_grouped_by_customer_carry_sums_counts_the_lazy_count_and_each_groups_domain()
    {
        var (a, b, domain) = await SeedOrdersAsync("rg_customer");
        var groups = await ReadGroupAsync("sale.order", domain, ["amount_total:sum", "id:count", "amount_untaxed", "name"],
            ["partner_id"]);

        Assert.Equal(2, groups.Count);
        var first = groups[0];
        Assert.Equal(new List<object?> { a, "rg_customer_a" }, first["partner_id"]);
        Assert.Equal(150.0, first["amount_total"]);
        Assert.Equal(150.0, first["amount_untaxed"]);
        Assert.Equal(2L, first["id"]);
        Assert.Equal(2L, first["partner_id_count"]);
        Assert.False(first.ContainsKey("name"));
        Assert.False(first.ContainsKey("__count"));
        Assert.Equal(new List<object?> { "&", domain[0], new List<object?> { "partner_id", "=", a } }, first["__domain"]);
        Assert.Equal(new List<object?> { b, "rg_customer_b" }, groups[1]["partner_id"]);
        Assert.Equal(30.0, groups[1]["amount_total"]);

        // The group's domain finds exactly the group's orders.
        var count = await CallAsync("sale.order", "search_count", [first["__domain"]]);
        Assert.Equal(2L, count);

        // JSON-RPC with keyword arguments: the same groups.
        var (_, body) = await _client.JsonRpcAsync("object", "execute_kw", _server.Db, 2, "admin", "sale.order", "read_group",
            Array.Empty<object>(), new Dictionary<string, object?>
            {
                ["domain"] = new object[] { new object[] { "partner_id.name", "=like", "rg_customer_%" } },
                ["fields"] = AmountSum, ["groupby"] = "partner_id", ["orderby"] = "amount_total desc",
            });
        var result = body.GetProperty("result");
        Assert.Equal(2, result.GetArrayLength());
        Assert.Equal(150.0, result[0].GetProperty("amount_total").GetDouble());
        Assert.Equal("rg_customer_a", result[0].GetProperty("partner_id")[1].GetString());
        Assert.Equal(2, result[0].GetProperty("partner_id_count").GetInt32());
    }

    [Fact]
    public async Task Datetimes_group_by_granularity_with_labels_ranges_and_domains_and_the_users_time_zone()
    {
        var (_, _, domain) = await SeedOrdersAsync("rg_dates");
        var months = await ReadGroupAsync("sale.order", domain, ["amount_total:sum"], ["date_order"]);
        Assert.Equal(["January 2026", "February 2026"], months.Select(g => g["date_order"]));
        Assert.Equal(new List<object?> { 100.0, 80.0 }, months.Select(g => g["amount_total"]).ToList());
        var range = (Dictionary<string, object?>)((Dictionary<string, object?>)months[1]["__range"]!)["date_order"]!;
        Assert.Equal("2026-02-01 00:00:00", range["from"]);
        Assert.Equal("2026-03-01 00:00:00", range["to"]);
        Assert.Equal(new List<object?>
        {
            "&", domain[0], "&", new List<object?> { "date_order", ">=", "2026-02-01 00:00:00" },
            new List<object?> { "date_order", "<", "2026-03-01 00:00:00" },
        }, months[1]["__domain"]);

        var expected = new Dictionary<string, string[]>
        {
            ["day"] = ["15 Jan 2026", "03 Feb 2026", "20 Feb 2026"],
            ["week"] = ["W3 2026", "W6 2026", "W8 2026"],
            ["quarter"] = ["Q1 2026"],
            ["year"] = ["2026"],
        };
        foreach (var (granularity, labels) in expected)
        {
            var groups = await ReadGroupAsync("sale.order", domain, [], ["date_order:" + granularity]);
            Assert.Equal(labels, groups.Select(g => (string)g["date_order:" + granularity]!));
            Assert.Equal(3L, groups.Sum(g => (long)g["date_order_count"]!));
        }

        // In Brussels (UTC+1 in February) the order of Feb 3, 23:30 UTC falls on Feb 4; the range is given back in UTC.
        var brussels = await ReadGroupAsync("sale.order", domain, [], ["date_order:day"],
            new() { ["context"] = new Dictionary<string, object?> { ["tz"] = "Europe/Brussels" } });
        Assert.Equal(["15 Jan 2026", "04 Feb 2026", "20 Feb 2026"], brussels.Select(g => (string)g["date_order:day"]!));
        var day = (Dictionary<string, object?>)((Dictionary<string, object?>)brussels[1]["__range"]!)["date_order:day"]!;
        Assert.Equal("2026-02-03 23:00:00", day["from"]);
        Assert.Equal("2026-02-04 23:00:00", day["to"]);
    }

    [Fact]
    public async Task Eager_grouping_counts_every_level_and_lazy_grouping_hands_the_rest_on_in_the_context()
    {
        var (a, _, domain) = await SeedOrdersAsync("rg_levels");
        var eager = await ReadGroupAsync("sale.order", domain, ["amount_total:sum"], ["partner_id", "state"],
            new() { ["lazy"] = false });
        Assert.Equal(3, eager.Count);
        Assert.All(eager, g => Assert.Equal(1L, g["__count"]));
        Assert.All(eager, g => Assert.False(g.ContainsKey("__context")));
        var confirmed = Assert.Single(eager, g => (string)g["state"]! == "sale");
        Assert.Equal(50.0, confirmed["amount_total"]);
        Assert.Equal(new List<object?>
        {
            "&", "&", domain[0], new List<object?> { "partner_id", "=", a }, new List<object?> { "state", "=", "sale" },
        }, confirmed["__domain"]);

        var lazy = await ReadGroupAsync("sale.order", domain, ["amount_total:sum"], ["partner_id", "state"]);
        Assert.Equal(2, lazy.Count);
        Assert.All(lazy, g => Assert.Equal(new Dictionary<string, object?> { ["group_by"] = new List<object?> { "state" } },
            g["__context"]));
        Assert.All(lazy, g => Assert.False(g.ContainsKey("state")));

        // No groupby: one group of everything, counted under __count.
        var all = Assert.Single(await ReadGroupAsync("sale.order", domain, ["amount_total:sum", "amount_total:avg"], []));
        Assert.Equal(3L, all["__count"]);
        Assert.Equal(180.0 / 3, (double)all["amount_total"]!, 6);
    }

    [Fact]
    public async Task Aggregates_orderby_limit_and_offset_and_selection_boolean_and_char_groups()
    {
        var (_, _, domain) = await SeedOrdersAsync("rg_aggregates");
        var groups = await ReadGroupAsync("sale.order", domain,
            ["biggest:max(amount_total)", "smallest:min(amount_total)", "customers:count_distinct(partner_id)", "first:min(date_order)"],
            ["state"], new() { ["orderby"] = "biggest desc" });
        Assert.Equal(["draft", "sale"], groups.Select(g => (string)g["state"]!));
        Assert.Equal(100.0, groups[0]["biggest"]);
        Assert.Equal(30.0, groups[0]["smallest"]);
        Assert.Equal(2L, groups[0]["customers"]);
        Assert.Equal("2026-01-15 10:00:00", groups[0]["first"]);

        var page = await ReadGroupAsync("sale.order", domain, ["amount_total:sum"], ["state"],
            new() { ["orderby"] = "state_count asc", ["limit"] = 1L, ["offset"] = 1L });
        Assert.Equal("draft", Assert.Single(page)["state"]);

        var partners = new List<object?> { new List<object?> { "name", "=like", "rg_aggregates_%" } };
        var byCompany = await ReadGroupAsync("res.partner", partners, [], ["is_company"], new() { ["orderby"] = "is_company desc" });
        Assert.Equal([true, false], byCompany.Select(g => g["is_company"]));
        Assert.Equal(new List<object?> { "&", partners[0], new List<object?> { "is_company", "=", false } }, byCompany[1]["__domain"]);
        var byCity = await ReadGroupAsync("res.partner", partners, [], ["city"], new() { ["orderby"] = "city" });
        Assert.Equal(["Ghent", false], byCity.Select(g => g["city"]));
        Assert.Equal(new List<object?> { "&", partners[0], new List<object?> { "city", "=", false } }, byCity[1]["__domain"]);
    }

    [Fact]
    public async Task Access_rights_and_record_rules_apply_as_they_do_to_search_read()
    {
        await SeedOrdersAsync("rg_access");
        var nobody = await CreateAsync("res.users", new()
        {
            ["name"] = "rg nobody", ["login"] = "rg_nobody", ["password"] = "rg-secret-1",
            ["groups_id"] = new List<object?> { new List<object?> { 6L, 0L, new List<object?>() } },
        });
        var fault = await RefusedAsync("sale.order", [], ["amount_total:sum"], ["partner_id"], uid: nobody, password: "rg-secret-1");
        Assert.Equal(4L, fault.Code);
        Assert.Contains("You are not allowed to access 'Sales Order' (sale.order) records.", fault.Message, StringComparison.Ordinal);

        // API keys: a user sees the groups of their own keys only.
        var internalUsers = new List<object?> { new List<object?> { "name", "=", "Internal User" } };
        var groupId = (long)((List<object?>)(await CallAsync("res.groups", "search", [internalUsers]))!)[0]!;
        var user = await CreateAsync("res.users", new()
        {
            ["name"] = "rg user", ["login"] = "rg_user", ["password"] = "rg-secret-2",
            ["groups_id"] = new List<object?> { new List<object?> { 6L, 0L, new List<object?> { groupId } } },
        });
        await _client.ObjectAsync(_server.Db, user, "rg-secret-2", "res.users.apikeys", "generate", ["rg own key"]);
        await CallAsync("res.users.apikeys", "generate", ["rg admin key"]);
        var seen = ((List<object?>)(await _client.ObjectAsync(_server.Db, user, "rg-secret-2", "res.users.apikeys", "read_group",
            [new List<object?>(), new List<object?>(), new List<object?> { "user_id" }]))!).Cast<Dictionary<string, object?>>().ToList();
        var only = Assert.Single(seen);
        Assert.Equal(user, ((List<object?>)only["user_id"]!)[0]);
    }

    [Theory]
    [InlineData("sale.order", "amount_total:sum", "no_such_field", "Invalid field 'no_such_field' on model 'sale.order'")]
    [InlineData("sale.order", "no_such_field:sum", "partner_id", "Invalid field 'no_such_field' on model 'sale.order'")]
    [InlineData("sale.order", "amount_total:sum); DROP TABLE sale_order; --", "partner_id", "Invalid field specification")]
    [InlineData("sale.order", "amount_total:sum(amount_total) FROM res_users --", "partner_id", "Invalid field specification")]
    [InlineData("sale.order", "amount_total:pg_sleep", "partner_id", "Invalid aggregate method 'pg_sleep'")]
    [InlineData("sale.order", "x:sum(name)", "partner_id", "Invalid aggregate method 'sum' for 'x:sum(name)'")]
    [InlineData("sale.order", "amount_total:sum", "order_line", "is not a stored field")]
    [InlineData("res.partner", "id:count", "company_type", "is not a stored field")]
    [InlineData("res.partner", "id:count", "image_1920", "is not a stored field")]
    [InlineData("res.users", "id:count", "password", "Invalid field 'password' on model 'res.users'")]
    [InlineData("res.partner", "id:count", "name:month", "Invalid groupby specification 'name:month'")]
    [InlineData("sale.order", "id:count", "date_order:fortnight", "Invalid groupby specification 'date_order:fortnight'")]
    [InlineData("sale.order", "id:count", "date_order:month:x", "Invalid field")]
    [InlineData("sale.order", "id:count", "partner_id\"; DROP TABLE sale_order; --", "Invalid field")]
    public async Task Hostile_fields_and_groupbys_are_refused_with_a_value_error_and_change_nothing(string model, string field,
        string groupby, string expected)
    {
        var before = await fixture.Postgres.ScalarAsync<long>(_server.Db, "SELECT count(*) FROM sale_order");
        var fault = await RefusedAsync(model, [], [field], [groupby]);
        Assert.Equal(1L, fault.Code);
        Assert.Contains(expected, fault.Message, StringComparison.Ordinal);
        Assert.Equal(before, await fixture.Postgres.ScalarAsync<long>(_server.Db, "SELECT count(*) FROM sale_order"));
        Assert.Equal(2L, (await _client.XmlAsync("/xmlrpc/2/common", "login", _server.Db, "admin", "admin")).Value);
    }

    [Theory]
    [InlineData("name desc", "order term 'name desc' is not a valid aggregate nor valid groupby")]
    [InlineData("amount_total; DROP TABLE sale_order", "is not a valid aggregate nor valid groupby")]
    [InlineData("partner_id sideways", "is not a valid aggregate nor valid groupby")]
    public async Task An_orderby_that_names_neither_a_groupby_nor_an_aggregate_is_refused(string orderby, string expected)
    {
        var fault = await RefusedAsync("sale.order", [], ["amount_total:sum"], ["partner_id"], new() { ["orderby"] = orderby });
        Assert.Equal(1L, fault.Code);
        Assert.Contains(expected, fault.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_domain_of_100000_terms_is_refused_with_an_odoo_value_error_and_the_server_keeps_answering()
    {
        var terms = Enumerable.Range(0, 100_000).Select(i => (object)new object[] { "id", "=", i }).ToArray();
        foreach (var method in new[] { "read_group", "search_read" })
        {
            object[] args = method == "read_group"
                ? [terms, AmountSum, PartnerOnly]
                : [terms];
            var (status, body) = await _client.JsonRpcAsync("object", "execute_kw", _server.Db, 2, "admin", "sale.order", method, args);
            Assert.Equal(200, status);
            var data = body.GetProperty("error").GetProperty("data");
            Assert.Equal("builtins.ValueError", data.GetProperty("name").GetString());
            Assert.Contains($"it has 100000 elements, at most {Domain.MaxElements} are accepted", data.GetProperty("message").GetString(),
                StringComparison.Ordinal);
        }
        // As deep as it is long: a chain of nots is refused by its nesting; a chain of ands as long is one level.
        var deep = Enumerable.Repeat((object)"!", 5_000).Append(new object[] { "id", "=", 1 }).ToArray();
        var (_, answer) = await _client.JsonRpcAsync("object", "execute_kw", _server.Db, 2, "admin", "sale.order", "read_group",
            new object[] { deep, Array.Empty<string>(), Array.Empty<string>() });
        Assert.Contains($"nested more than {Domain.MaxNesting} levels deep",
            answer.GetProperty("error").GetProperty("data").GetProperty("message").GetString(), StringComparison.Ordinal);
        var chain = Enumerable.Repeat((object)"&", 4_999).Concat(Enumerable.Range(0, 5_000).Select(i => new object[] { "id", "!=", -i }))
            .ToArray();
        (_, answer) = await _client.JsonRpcAsync("object", "execute_kw", _server.Db, 2, "admin", "sale.order", "read_group",
            new object[] { chain, Array.Empty<string>(), Array.Empty<string>() });
        var total = await fixture.Postgres.ScalarAsync<long>(_server.Db, "SELECT count(*) FROM sale_order");
        Assert.Equal(total, answer.GetProperty("result")[0].GetProperty("__count").GetInt64());
        Assert.Equal(2L, (await _client.XmlAsync("/xmlrpc/2/common", "login", _server.Db, "admin", "admin")).Value);
    }
}
