using Loomworks.Records;
using Loomworks.Tests.Infrastructure;

namespace Loomworks.Tests.Rpc;

/// <summary>
/// ir.model and ir.model.fields as integrations read them from Odoo: every model and field of the registry, with ids
/// that stay put in the tenant, readable by internal and read-only users, and refused to every writer.
/// </summary>
public sealed class IrModelTests(IrModelTests.Fixture fixture) : IClassFixture<IrModelTests.Fixture>, IDisposable
{
    public sealed class Fixture(PostgresFixture postgres) : RpcServerFixture(postgres, "rpc_ir_model");

    private readonly RpcServer _server = fixture.Server;
    private readonly RpcClient _client = new(fixture.Server.Url);

    public void Dispose() => _client.Dispose();

    private Task<object?> CallAsync(string model, string method, List<object?> args, Dictionary<string, object?>? kwargs = null) =>
        _client.ObjectAsync(_server.Db, 2, "admin", model, method, args, kwargs);

    private async Task<List<Dictionary<string, object?>>> SearchReadAsync(string model, List<object?> domain, params string[] fields) =>
        ((List<object?>)(await CallAsync(model, "search_read", [domain],
            new() { ["fields"] = fields.Cast<object?>().ToList() }))!).Cast<Dictionary<string, object?>>().ToList();

    private static List<object?> Term(string field, string op, object? value) => [new List<object?> { field, op, value }];

    private Task<long> CountAsync(string table) => fixture.Postgres.ScalarAsync<long>(_server.Db, $"SELECT count(*) FROM {table}");

    [Fact]
    public async Task Ir_model_lists_every_registry_model_and_its_ids_stay_the_same()
    {
        var models = await SearchReadAsync("ir.model", [], "model", "name", "state", "transient", "info");
        Assert.Equal(ModelRegistry.All.Count + 2, models.Count);
        var partner = Assert.Single(models, m => (string)m["model"]! == "res.partner");
        Assert.Equal("Contact", partner["name"]);
        Assert.Equal("base", partner["state"]);
        Assert.Equal(false, partner["transient"]);
        Assert.Contains(models, m => (string)m["model"]! == "ir.model.fields");
        Assert.Equal(models.Select(m => (string)m["model"]!).Order(StringComparer.Ordinal), models.Select(m => (string)m["model"]!));

        // Read again, counted, read by id: the same ids.
        var again = await SearchReadAsync("ir.model", [], "model");
        Assert.Equal(models.Select(m => m["id"]), again.Select(m => m["id"]));
        Assert.Equal((long)models.Count, await CallAsync("ir.model", "search_count", [new List<object?>()]));
        var read = (List<object?>)(await CallAsync("ir.model", "read",
            [new List<object?> { partner["id"] }, new List<object?> { "field_id" }]))!;
        var fieldIds = (List<object?>)((Dictionary<string, object?>)read[0]!)["field_id"]!;
        Assert.Equal(ModelRegistry.Partner.FieldList.Count(f => !f.Hidden), fieldIds.Count);

        // A row that drifted from the registry is set right under the same id.
        await fixture.Postgres.ExecuteAsync(_server.Db, "UPDATE ir_model SET name = 'Drifted' WHERE model = 'res.partner'");
        var fixedRow = Assert.Single(await SearchReadAsync("ir.model", Term("model", "=", "res.partner"), "name"));
        Assert.Equal(partner["id"], fixedRow["id"]);
        Assert.Equal("Contact", fixedRow["name"]);
    }

    [Fact]
    public async Task Ir_model_fields_describes_types_relations_and_flags_as_fields_get_does()
    {
        var fields = await SearchReadAsync("ir.model.fields", Term("model", "=", "sale.order"),
            "name", "field_description", "ttype", "relation", "relation_field", "required", "readonly", "store", "model_id", "help");
        var byName = fields.ToDictionary(f => (string)f["name"]!);
        Assert.Equal(ModelRegistry.SaleOrder.FieldList.Count, byName.Count);
        var partner = byName["partner_id"];
        Assert.Equal("many2one", partner["ttype"]);
        Assert.Equal("res.partner", partner["relation"]);
        Assert.Equal(true, partner["required"]);
        Assert.Equal("Customer", partner["field_description"]);
        Assert.Equal("Sales Order", ((List<object?>)partner["model_id"]!)[1]);
        Assert.Equal("one2many", byName["order_line"]["ttype"]);
        Assert.Equal("order_id", byName["order_line"]["relation_field"]);
        Assert.Equal(false, byName["order_line"]["store"]);
        Assert.Equal(true, byName["amount_total"]["readonly"]);
        Assert.Equal("monetary", byName["amount_total"]["ttype"]);

        var described = (Dictionary<string, object?>)(await CallAsync("sale.order", "fields_get", []))!;
        foreach (var (name, row) in byName)
        {
            var description = (Dictionary<string, object?>)described[name]!;
            Assert.Equal(description["type"], row["ttype"]);
            Assert.Equal(description["readonly"], row["readonly"]);
            Assert.Equal(description["help"], row["help"]);
        }

        // Secrets stay out: the password of res.users is not a field a client can see.
        Assert.Empty(await SearchReadAsync("ir.model.fields",
            ["&", .. Term("model", "=", "res.users"), .. Term("name", "=", "password")], "name"));

        // Grouped like any model: the types of the partner's fields.
        var groups = ((List<object?>)(await CallAsync("ir.model.fields", "read_group",
            [Term("model", "=", "res.partner"), new List<object?>(), new List<object?> { "ttype" }]))!).Cast<Dictionary<string, object?>>();
        Assert.Equal(ModelRegistry.Partner.FieldList.Count(f => !f.Hidden), groups.Sum(g => (long)g["ttype_count"]!));
    }

    [Fact]
    public async Task Read_only_users_read_them_users_without_groups_do_not_and_nobody_writes_them()
    {
        var readOnlyGroup = await fixture.Postgres.ScalarAsync<int>(_server.Db, "SELECT id FROM res_groups WHERE xml_id = $1",
            TenantSchema.ReadOnlyGroup);
        async Task<long> UserAsync(string login, List<object?> groups) => (long)(await CallAsync("res.users", "create",
        [
            new Dictionary<string, object?>
            {
                ["name"] = login, ["login"] = login, ["password"] = login + "-secret",
                ["groups_id"] = new List<object?> { new List<object?> { 6L, 0L, groups } },
            },
        ]))!;
        var reader = await UserAsync("irm_reader", [(long)readOnlyGroup]);
        var rows = await _client.ObjectAsync(_server.Db, reader, "irm_reader-secret", "ir.model", "search_read",
            [Term("model", "=", "sale.order")], new() { ["fields"] = new List<object?> { "name" } });
        Assert.Equal("Sales Order", ((Dictionary<string, object?>)Assert.Single((List<object?>)rows!)!)["name"]);

        var nobody = await UserAsync("irm_nobody", []);
        var denied = await Assert.ThrowsAsync<FaultException>(() => _client.ObjectAsync(_server.Db, nobody, "irm_nobody-secret",
            "ir.model.fields", "search_read", [new List<object?>()]));
        Assert.Equal(4L, denied.Code);
        Assert.Contains("You are not allowed to access 'Fields' (ir.model.fields) records.", denied.Message, StringComparison.Ordinal);

        var before = (await CountAsync("ir_model"), await CountAsync("ir_model_fields"));
        var id = (long)((List<object?>)(await CallAsync("ir.model", "search", [Term("model", "=", "res.partner")]))!)[0]!;
        var fieldId = (long)((List<object?>)(await CallAsync("ir.model.fields", "search", [Term("model", "=", "res.partner")]))!)[0]!;
        (string Model, string Method, List<object?> Args, string Verb)[] writes =
        [
            ("ir.model", "create", [new Dictionary<string, object?> { ["model"] = "x_custom", ["name"] = "Custom" }], "create"),
            ("ir.model", "write", [new List<object?> { id }, new Dictionary<string, object?> { ["name"] = "Renamed" }], "modify"),
            ("ir.model", "unlink", [new List<object?> { id }], "delete"),
            ("ir.model.fields", "write",
                [new List<object?> { fieldId }, new Dictionary<string, object?> { ["required"] = true }], "modify"),
            ("ir.model.fields", "unlink", [new List<object?> { fieldId }], "delete"),
        ];
        foreach (var (model, method, args, verb) in writes)
        {
            var fault = await Assert.ThrowsAsync<FaultException>(() => CallAsync(model, method, args));
            Assert.Equal(4L, fault.Code);
            var label = model == "ir.model" ? "Models" : "Fields";
            Assert.StartsWith($"You are not allowed to {verb} '{label}' ({model}) records.", fault.Message, StringComparison.Ordinal);
        }
        Assert.Equal(false, await CallAsync("ir.model", "check_access_rights", ["write", false]));
        Assert.Equal(before, (await CountAsync("ir_model"), await CountAsync("ir_model_fields")));
        Assert.Equal("Contact", Assert.Single(await SearchReadAsync("ir.model", Term("id", "=", id), "name"))["name"]);
    }

    [Theory]
    [InlineData("ir.model", "no_such_field", "Invalid field 'no_such_field' on model 'ir.model'")]
    [InlineData("ir.model.fields", "name\"; DROP TABLE ir_model; --", "Invalid field")]
    public async Task Hostile_reads_are_refused_and_leave_the_tables_whole(string model, string field, string expected)
    {
        var fault = await Assert.ThrowsAsync<FaultException>(() =>
            CallAsync(model, "search_read", [new List<object?>()], new() { ["fields"] = new List<object?> { field } }));
        Assert.Equal(1L, fault.Code);
        Assert.Contains(expected, fault.Message, StringComparison.Ordinal);

        Assert.Empty(await SearchReadAsync(model, Term(model == "ir.model" ? "model" : "name", "=", "x'; DROP TABLE ir_model; --"), "id"));
        var quoted = await Assert.ThrowsAsync<FaultException>(() =>
            CallAsync("ir.model'; DROP TABLE ir_model; --", "search", [new List<object?>()]));
        Assert.Contains("doesn't exist", quoted.Message, StringComparison.Ordinal);
        Assert.True(await CountAsync("ir_model") >= ModelRegistry.All.Count);
    }
}
