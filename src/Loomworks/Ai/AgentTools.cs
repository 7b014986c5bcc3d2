using System.Text.Json;
using System.Text.Json.Nodes;
using ModelContextProtocol.Protocol;

namespace Loomworks.Ai;

/// <summary>
/// The MCP tools Loomworks offers an agent: their names, what each argument is, what an agent can expect back and the
/// hints (read-only, destructive, idempotent) a client shows its user before a call.
/// </summary>
public static class AgentTools
{
    public const int DefaultLimit = 80;
    public const int MaxLimit = 1000;
    public const int MaxIds = 1000;

    private const string Model = "The technical model name, as list_models gives it, e.g. res.partner or sale.order.";
    private const string DomainHelp = "A filter in Odoo's domain syntax: a list of [field, operator, value] triples combined with "
        + "'&', '|', '!' in prefix notation, e.g. [[\"is_company\", \"=\", true], [\"name\", \"ilike\", \"acme\"]]. [] matches all.";
    private const string Fields = "The field names to return (describe_model lists them); omit for every stored field.";
    private const string Ids = "The record ids (at most 1000).";
    private const string Session = "Groups this change with others of the same agent task so that undo_session can take them all "
        + "back; omit to get a new session, whose id the result gives (pass it to the next calls of the same task).";
    private const string DryRun = "true: make the change in a transaction that is rolled back and report in `changes` every row it "
        + "would have inserted, updated or deleted (before and after); nothing is kept or logged.";
    private const string Values = "Field values: {field: value}. many2one takes an id; one2many/many2many take Odoo command lists "
        + "such as [[6, 0, [ids]]] or [[0, 0, {values}]].";

    private static readonly string[] ReadTools =
        ["list_models", "describe_model", "search_records", "count_records", "read_records", "aggregate_records", "list_operations",
            "list_snapshots"];

    /// <summary>The tools that change records; each call is one operation of the log and counts against the daily quota.</summary>
    public static readonly IReadOnlySet<string> Changing = new HashSet<string>(StringComparer.Ordinal)
    {
        "create_records", "update_records", "delete_records",
    };

    public static IReadOnlyList<Tool> All { get; } =
    [
        Define("list_models", "List the business models this user may read, with their labels and the rights the user has on each "
            + "(read, create, write, unlink). Start here to find the model names the other tools take.", new()),
        Define("describe_model", "Describe a model's fields: type, label, help, relation (for many2one/one2many/many2many), "
            + "required, readonly and the allowed values of selections. Use it before searching or writing a model.",
            new() { ["model"] = Text(Model) }, "model"),
        Define("search_records", "Find records matching a domain and return their fields in `records` (at most `limit`, default "
            + $"{DefaultLimit}). many2one fields read as [id, display name].", new()
        {
            ["model"] = Text(Model),
            ["domain"] = DomainSchema(),
            ["fields"] = Names(Fields),
            ["limit"] = Whole($"How many records at most (1 to {MaxLimit}, default {DefaultLimit}).", 1, MaxLimit),
            ["offset"] = Whole("How many matching records to skip first (for paging).", 0, int.MaxValue),
            ["order"] = Text("Sort order as in SQL over field names, e.g. \"name asc, id desc\"."),
        }, "model"),
        Define("count_records", "Count the records matching a domain; the answer is in `count`.",
            new() { ["model"] = Text(Model), ["domain"] = DomainSchema() }, "model"),
        Define("read_records", "Read records by id; the answer is in `records`.",
            new() { ["model"] = Text(Model), ["ids"] = IdList(Ids), ["fields"] = Names(Fields) }, "model", "ids"),
        Define("aggregate_records", "Group the records matching a domain and aggregate fields per group (Odoo's read_group); "
            + "the answer is in `groups`, one object per group with the groupby values, the aggregates and a __count.", new()
        {
            ["model"] = Text(Model),
            ["domain"] = DomainSchema(),
            ["groupby"] = Names("The fields to group by, e.g. [\"partner_id\"] or [\"date_order:month\"]."),
            ["fields"] = Names("The aggregates, as field:function, e.g. [\"amount_total:sum\", \"id:count\"]."),
            ["limit"] = Whole($"How many groups at most (1 to {MaxLimit}).", 1, MaxLimit),
            ["offset"] = Whole("How many groups to skip first.", 0, int.MaxValue),
            ["orderby"] = Text("Sort order of the groups, e.g. \"amount_total desc\"."),
        }, "model", "groupby", "fields"),
        Define("create_records", "Create one record (values: an object) or several (values: a list of objects); the new ids are in "
            + "`ids`. The change is logged as one operation (`operation_id`) of the session (`session_id`) and can be undone.", new()
        {
            ["model"] = Text(Model),
            ["values"] = new JsonObject
            {
                ["description"] = Values + " An object creates one record, a list of objects several.",
                ["anyOf"] = new JsonArray(new JsonObject { ["type"] = "object" },
                    new JsonObject { ["type"] = "array", ["items"] = new JsonObject { ["type"] = "object" } }),
            },
            ["session_id"] = Text(Session),
            ["dry_run"] = Flag(DryRun),
        }, "model", "values"),
        Define("update_records", "Write the same values on the records with these ids. Logged as one operation, undoable.", new()
        {
            ["model"] = Text(Model),
            ["ids"] = IdList(Ids),
            ["values"] = new JsonObject { ["type"] = "object", ["description"] = Values },
            ["session_id"] = Text(Session),
            ["dry_run"] = Flag(DryRun),
        }, "model", "ids", "values"),
        Define("delete_records", "Delete the records with these ids (rows that depend on them go too, as the model's relations say). "
            + "Logged as one operation: undo_operation brings every deleted row back with its id.", new()
        {
            ["model"] = Text(Model),
            ["ids"] = IdList(Ids),
            ["session_id"] = Text(Session),
            ["dry_run"] = Flag(DryRun),
        }, "model", "ids"),
        Define("list_operations", "List logged operations, newest first, in `operations`: who, which tool, which model and ids, "
            + "whether undone, and the pre-AI snapshot of its session.", new()
        {
            ["session_id"] = Text("Only this session's operations."),
            ["model"] = Text("Only operations on this model."),
            ["limit"] = Whole("How many at most (1 to 1000, default 100).", 1, 1000),
        }),
        Define("undo_operation", "Undo one operation: its rows go back to how they were before it (deleted rows return with their ids). "
            + "Refused, naming the later operation, when a later change touched the same rows, unless force is true. The undo is "
            + "itself an operation (`operation_id`), so undoing it redoes the change.", new()
        {
            ["operation_id"] = Whole("The operation to undo (list_operations and every change's result give it).", 1, long.MaxValue),
            ["force"] = Flag("true: undo even if later operations changed the same rows (their changes to those rows are lost)."),
            ["session_id"] = Text("The session the undo itself belongs to; omit for a new one."),
        }, "operation_id"),
        Define("undo_session", "Undo every operation of a session that is still in effect, newest first, in one transaction: the "
            + "records return to their state before the session. Refused when later changes outside it touched the same rows, "
            + "unless force is true.", new()
        {
            ["session_id"] = Text("The session to undo."),
            ["force"] = Flag("true: undo even over later changes by others to the same rows."),
        }, "session_id"),
        Define("create_snapshot", "Take a point-in-time snapshot of the whole tenant database (administrators only): a restore "
            + "point the tenant can be restored to, beyond what undo reaches. Answers the snapshot in `snapshots`.",
            new() { ["name"] = Text("A name to recognise the snapshot by (at most 200 characters).") }),
        Define("list_snapshots", "List the tenant's snapshots, newest first, in `snapshots`: id, name, kind (auto, manual, pre_ai), "
            + "state and time.", new()),
    ];

    private static Tool Define(string name, string description, JsonObject properties, params string[] required)
    {
        var schema = new JsonObject
        {
            ["type"] = "object",
            ["properties"] = properties,
            ["required"] = new JsonArray(required.Select(r => (JsonNode?)JsonValue.Create(r)).ToArray()),
            ["additionalProperties"] = false,
        };
        var readOnly = ReadTools.Contains(name);
        return new Tool
        {
            Name = name,
            Description = description,
            InputSchema = JsonSerializer.SerializeToElement(schema),
            Annotations = new ToolAnnotations
            {
                Title = name.Replace('_', ' '),
                ReadOnlyHint = readOnly,
                DestructiveHint = readOnly ? null : name is "delete_records" or "undo_operation" or "undo_session",
                IdempotentHint = readOnly ? true : name is "update_records" or "undo_session" ? true : false,
                OpenWorldHint = false,
            },
        };
    }

    private static JsonObject Text(string description) => new() { ["type"] = "string", ["description"] = description };

    private static JsonObject Flag(string description) => new() { ["type"] = "boolean", ["description"] = description };

    private static JsonObject Whole(string description, long minimum, long maximum) =>
        new() { ["type"] = "integer", ["minimum"] = minimum, ["maximum"] = maximum, ["description"] = description };

    private static JsonObject Names(string description) =>
        new() { ["type"] = "array", ["items"] = new JsonObject { ["type"] = "string" }, ["description"] = description };

    private static JsonObject IdList(string description) => new()
    {
        ["type"] = "array",
        ["items"] = new JsonObject { ["type"] = "integer", ["minimum"] = 1 },
        ["maxItems"] = MaxIds,
        ["description"] = description,
    };

    private static JsonObject DomainSchema() => new() { ["type"] = "array", ["description"] = DomainHelp };
}
