using System.Data;
using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Loomworks.Operations;
using Loomworks.Records;
using Loomworks.Snapshots;
using Loomworks.Tenancy;
using Microsoft.Extensions.Logging;
using ModelContextProtocol.Protocol;
using Npgsql;

namespace Loomworks.Ai;

/// <summary>
/// Runs the MCP tools for an authenticated agent: reads in one REPEATABLE READ transaction with the user's rights,
/// changes as one operation of the log each (session, agent, tool, time, pre-AI snapshot) within the daily quota, dry
/// runs rolled back with the change capture's report. Every refusal is a tool result with isError and a message.
/// </summary>
public sealed partial class AgentToolRunner(AiOperationQuota quota, AgentSessions sessions, SnapshotService snapshots,
    ILogger<AgentToolRunner> logger)
{
    private const int MaxTries = 5;

    static AgentToolRunner() => OperationLogModel.Register();

    public async Task<CallToolResult> CallAsync(AgentCaller caller, string agentId, string tool,
        IDictionary<string, JsonElement>? arguments, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(caller);
        try
        {
            if (!AgentTools.All.Any(t => t.Name == tool))
            {
                throw new AgentRefusalException($"there is no tool '{AgentArguments.Show(tool ?? "")}'; tools/list names the tools");
            }
            var args = new AgentArguments(tool, arguments);
            // A remembered key is confirmed by the reads' first statement; anything else confirms it before it starts.
            if (!ReadsConfirmKey.Contains(tool) && !await caller.ConfirmKeyAsync(ct))
            {
                throw new SecurityStampChangedException();
            }
            var result = tool switch
            {
                "list_models" => await ReadAsync(caller, env => Task.FromResult(ListModels(env)), ct),
                "describe_model" => await ReadAsync(caller, env => Task.FromResult(DescribeModel(args.Model())), ct),
                "search_records" => await SearchAsync(caller, args, ct),
                "count_records" => await CountAsync(caller, args, ct),
                "read_records" => await ReadRecordsAsync(caller, args, ct),
                "aggregate_records" => await AggregateAsync(caller, args, ct),
                "create_records" or "update_records" or "delete_records" => await ChangeAsync(caller, agentId, tool, args, ct),
                "list_operations" => await ListOperationsAsync(caller, args, ct),
                "undo_operation" or "undo_session" => await UndoAsync(caller, agentId, tool, args, ct),
                "create_snapshot" => await CreateSnapshotAsync(caller, args, ct),
                _ => await ListSnapshotsAsync(caller, ct),
            };
            return Answer(result, isError: false);
        }
        catch (Exception e) when (RefusalMessage(e) is { } message)
        {
            return Answer(new JsonObject { ["error"] = message }, isError: true);
        }
    }

    /// <summary>The tools that run in <see cref="ReadAsync"/>, whose first statement reads the pending security stamp.</summary>
    private static readonly HashSet<string> ReadsConfirmKey = new(StringComparer.Ordinal)
    {
        "list_models", "describe_model", "search_records", "count_records", "read_records", "aggregate_records",
    };

    /// <summary>The result as structuredContent and as the same JSON in a text block, for clients that read only text.</summary>
    private static CallToolResult Answer(JsonObject result, bool isError) => new()
    {
        StructuredContent = JsonSerializer.SerializeToElement(result),
        Content = [new TextContentBlock { Text = isError ? (string)result["error"]! : result.ToJsonString() }],
        IsError = isError ? true : null,
    };

    /// <summary>What the agent is told when a call fails; null lets an unexpected failure through (logged, no detail).</summary>
    private string? RefusalMessage(Exception e) => e switch
    {
        AgentRefusalException r => r.Message,
        OdooException o => Explain(o),
        OperationException o => o.Message + (o.Kind == OperationErrorKind.Conflict
            ? " (pass force: true to undo anyway, or undo the later operation first)" : ""),
        SnapshotException s => s.Message,
        SecurityStampChangedException => "the API key's user, groups or keys changed while the call ran; nothing was done: call again",
        PostgresException p when p.SqlState.StartsWith("22", StringComparison.Ordinal) =>
            $"a value was refused by the database: {p.MessageText}; check the values against describe_model",
        PostgresException p when p.SqlState.StartsWith("23", StringComparison.Ordinal) => ConstraintMessage(p),
        OperationCanceledException => null,
        _ => Unexpected(e),
    };

    private string Unexpected(Exception e)
    {
        logger.LogError(e, "MCP tool call failed");
        return $"the server could not complete the call ({e.GetType().Name}); it is logged on the server. Nothing was changed.";
    }

    private static string Explain(OdooException e) => e.Kind switch
    {
        OdooErrorKind.AccessError or OdooErrorKind.AccessDenied =>
            e.Message + " (the API key's user lacks this right: ask an administrator, or use a model and action it allows)",
        OdooErrorKind.MissingError => e.Message + " (search_records finds the ids that exist)",
        _ => e.Message,
    };

    private static string ConstraintMessage(PostgresException e) => e.SqlState switch
    {
        PostgresErrorCodes.NotNullViolation => $"a required field is missing: {e.ColumnName ?? e.MessageText} (describe_model lists "
            + "the required fields)",
        PostgresErrorCodes.ForeignKeyViolation or PostgresErrorCodes.RestrictViolation =>
            "the change would leave a reference to a record that does not exist, or delete a record others still need: "
            + $"{e.ConstraintName ?? e.MessageText}; archive it (active = false) instead, or fix the reference",
        PostgresErrorCodes.UniqueViolation => $"a record with the same value already exists ({e.ConstraintName})",
        _ => $"the change breaks a rule of the model: {e.MessageText}",
    };

    // ---- reads ---------------------------------------------------------------------------------------------------

    private static JsonObject ListModels(RecordEnvironment env)
    {
        var models = new JsonArray();
        foreach (var model in ModelRegistry.All.Where(m => env.Access.Allows(m.Name, "read")).OrderBy(m => m.Name, StringComparer.Ordinal))
        {
            models.Add(new JsonObject
            {
                ["model"] = model.Name,
                ["name"] = model.Label,
                ["access"] = new JsonObject
                {
                    ["read"] = true,
                    ["create"] = env.Access.Allows(model.Name, "create"),
                    ["write"] = env.Access.Allows(model.Name, "write"),
                    ["unlink"] = env.Access.Allows(model.Name, "unlink"),
                },
            });
        }
        return new JsonObject { ["models"] = models };
    }

    private static readonly List<string> Attributes = ["type", "string", "help", "relation", "required", "readonly", "selection"];

    private static JsonObject DescribeModel(ModelDef model)
    {
        var fields = new JsonObject();
        foreach (var (name, value) in RecordEnvironment.FieldsGet(model, null, Attributes))
        {
            var described = (Dictionary<string, object?>)value!;
            var field = new JsonObject
            {
                ["type"] = (string)described["type"]!,
                ["label"] = (string)described["string"]!,
                ["help"] = described["help"] as string,
                ["relation"] = described.GetValueOrDefault("relation") as string,
                ["required"] = (bool)described["required"]!,
                ["readonly"] = (bool)described["readonly"]!,
            };
            if (described.TryGetValue("selection", out var selection))
            {
                field["selection"] = WireJson.ToJson(selection);
            }
            fields[name] = field;
        }
        return new JsonObject { ["model"] = model.Name, ["name"] = model.Label, ["fields"] = fields };
    }

    private static Task<JsonObject> SearchAsync(AgentCaller caller, AgentArguments args, CancellationToken ct)
    {
        var model = args.Model();
        var domain = args.Domain();
        var fields = args.Names("fields");
        var limit = args.Whole("limit", 1, AgentTools.MaxLimit) ?? AgentTools.DefaultLimit;
        var offset = args.Whole("offset", 0, int.MaxValue) ?? 0;
        var order = args.OptionalText("order");
        return ReadAsync(caller, async env =>
        {
            var records = await RecordMethods.CallAsync(env, model, "search_read", [],
                new Dictionary<string, object?>
                {
                    ["domain"] = domain, ["fields"] = fields, ["limit"] = limit, ["offset"] = offset, ["order"] = order,
                }, ct);
            return new JsonObject { ["records"] = WireJson.ToJson(records) };
        }, ct);
    }

    private static Task<JsonObject> CountAsync(AgentCaller caller, AgentArguments args, CancellationToken ct)
    {
        var model = args.Model();
        var domain = args.Domain();
        return ReadAsync(caller, async env =>
            new JsonObject { ["count"] = WireJson.ToJson(await RecordMethods.CallAsync(env, model, "search_count", [domain], null, ct)) },
            ct);
    }

    private static Task<JsonObject> ReadRecordsAsync(AgentCaller caller, AgentArguments args, CancellationToken ct)
    {
        var model = args.Model();
        var ids = args.Ids("ids");
        var fields = args.Names("fields");
        return ReadAsync(caller, async env =>
        {
            var records = await RecordMethods.CallAsync(env, model, "read", [ids],
                new Dictionary<string, object?> { ["fields"] = fields }, ct);
            return new JsonObject { ["records"] = WireJson.ToJson(records) };
        }, ct);
    }

    private static Task<JsonObject> AggregateAsync(AgentCaller caller, AgentArguments args, CancellationToken ct)
    {
        var model = args.Model();
        var domain = args.Domain();
        var groupby = args.Names("groupby") ?? throw new AgentRefusalException("aggregate_records needs 'groupby': a list of field names");
        var fields = args.Names("fields")
            ?? throw new AgentRefusalException("aggregate_records needs 'fields', e.g. [\"amount_total:sum\"]");
        var limit = args.Whole("limit", 1, AgentTools.MaxLimit);
        var offset = args.Whole("offset", 0, int.MaxValue) ?? 0;
        var orderby = args.OptionalText("orderby");
        if (!RecordMethods.Exists(model.Name, "read_group"))
        {
            throw new AgentRefusalException("aggregate_records is not available on this server yet (read_group is missing); "
                + "use search_records and add the values up instead");
        }
        return ReadAsync(caller, async env =>
        {
            var groups = await RecordMethods.CallAsync(env, model, "read_group", [],
                new Dictionary<string, object?>
                {
                    ["domain"] = domain, ["fields"] = fields, ["groupby"] = groupby, ["offset"] = offset, ["limit"] = limit,
                    ["orderby"] = orderby, ["lazy"] = false,
                }, ct);
            return new JsonObject { ["groups"] = WireJson.ToJson(groups) };
        }, ct);
    }

    /// <summary>Runs a read in one REPEATABLE READ transaction of the caller's database, with the key owner's rights.</summary>
    private static async Task<JsonObject> ReadAsync(AgentCaller caller, Func<RecordEnvironment, Task<JsonObject>> read,
        CancellationToken ct)
    {
        await using var connection = await caller.Database.OpenConnectionAsync(ct);
        await using var transaction = await connection.BeginTransactionAsync(IsolationLevel.RepeatableRead, ct);
        // A read that needs one statement sends COMMIT with it: one round trip to PostgreSQL, as JSON-RPC's reads.
        var env = new RecordEnvironment(connection, transaction, caller.Key.Rights, null, caller.Attachments)
        {
            CommitsWithRead = true,
            PendingStamp = caller.Pending,
        };
        var result = await read(env);
        await env.CommitAsync(ct);
        return result;
    }

    private static long Elapsed(long started) => (long)Stopwatch.GetElapsedTime(started).TotalMilliseconds;
}
