using System.Data;
using System.Diagnostics;
using System.Text.Json.Nodes;
using Loomworks.Operations;
using Loomworks.Records;
using Loomworks.Snapshots;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace Loomworks.Ai;

/// <summary>The tools that change records, undo them, and read the log and the snapshots.</summary>
public sealed partial class AgentToolRunner
{
    private async Task<JsonObject> ChangeAsync(AgentCaller caller, string agentId, string tool, AgentArguments args,
        CancellationToken ct)
    {
        var model = args.Model();
        var (method, positional) = tool switch
        {
            "create_records" => ("create", new List<object?> { args.Values("values", allowList: true) }),
            "update_records" => ("write", [args.Ids("ids"), args.Values("values", allowList: false)]),
            _ => ("unlink", new List<object?> { args.Ids("ids") }),
        };
        var requestedSession = args.OptionalText("session_id");
        if (model == OperationLogModel.Definition)
        {
            throw new AgentRefusalException("the operation log is read-only; use undo_operation or undo_session to take a change back");
        }
        if (args.Flag("dry_run"))
        {
            return await DryRunAsync(caller, model, method, positional, ct);
        }
        if (await quota.TryConsumeAsync(caller.Tenant, ct) is { } usage)
        {
            throw new AgentRefusalException(usage.RefusalMessage(caller.Tenant.Subdomain));
        }
        var session = requestedSession ?? AgentSessions.NewSessionId();
        var snapshot = await sessions.SnapshotForAsync(caller, session, ct);
        var info = new OperationInfo(method, model.Name, session, agentId, caller.Key.Uid, tool, snapshot.SnapshotId);
        var (operationId, result) = await InOperationAsync(caller, info, async (env, transaction) =>
        {
            var scope = OperationScope.Begin(transaction, info);
            var answer = await RecordMethods.CallAsync(env, model, method, positional, null, ct);
            return (await scope.CommitAsync(ct), answer);
        }, ct);
        var json = new JsonObject();
        if (method == "create")
        {
            json["ids"] = WireJson.ToJson(result is long one ? new List<object?> { one } : result);
        }
        else
        {
            json["ids"] = WireJson.ToJson(positional[0]);
        }
        json["operation_id"] = operationId;
        json["session_id"] = session;
        json["snapshot_id"] = snapshot.SnapshotId;
        if (snapshot.NoSnapshotReason is { } reason)
        {
            json["snapshot_note"] = reason;
        }
        return json;
    }

    /// <summary>The change in a transaction that is rolled back, reporting what the change capture saw, row by row.</summary>
    private static async Task<JsonObject> DryRunAsync(AgentCaller caller, ModelDef model, string method, List<object?> positional,
        CancellationToken ct)
    {
        await using var connection = await caller.Database.OpenConnectionAsync(ct);
        await using var transaction = await connection.BeginTransactionAsync(IsolationLevel.RepeatableRead, ct);
        try
        {
            var env = new RecordEnvironment(connection, transaction, caller.Key.Rights, null, caller.Attachments);
            var result = await RecordMethods.CallAsync(env, model, method, positional, null, ct);
            var (changes, total) = await DryRun.ChangesAsync(transaction, ct);
            var rows = new JsonArray();
            foreach (var change in changes)
            {
                rows.Add(new JsonObject
                {
                    ["table"] = change.Table,
                    ["key"] = WireJson.ToJson(change.Key),
                    ["kind"] = change.Kind,
                    ["before"] = WireJson.ToJson(change.Before),
                    ["after"] = WireJson.ToJson(change.After),
                });
            }
            var json = new JsonObject
            {
                ["dry_run"] = true,
                ["ids"] = WireJson.ToJson(method == "create" ? result is long one ? new List<object?> { one } : result : positional[0]),
                ["changes"] = rows,
                ["change_count"] = total,
            };
            if (total > changes.Count)
            {
                json["changes_truncated"] = $"{total} rows would change; the first {changes.Count} are listed";
            }
            return json;
        }
        finally
        {
            await OperationScope.RollbackIfOpenAsync(transaction);
        }
    }

    private async Task<JsonObject> UndoAsync(AgentCaller caller, string agentId, string tool, AgentArguments args, CancellationToken ct)
    {
        var force = args.Flag("force");
        var undoSession = tool == "undo_session" ? args.Text("session_id") : null;
        var operationId = tool == "undo_operation"
            ? args.Whole("operation_id", 1, long.MaxValue) ?? throw new AgentRefusalException("undo_operation needs 'operation_id'")
            : 0;
        var session = undoSession ?? args.OptionalText("session_id") ?? AgentSessions.NewSessionId();
        var info = new OperationInfo("undo", null, session, agentId, caller.Key.Uid, tool);
        var (_, results) = await InOperationAsync(caller, info, async (env, transaction) =>
        {
            await CheckUndoRightsAsync(env, transaction, undoSession, operationId, ct);
            var undone = undoSession is null
                ? await UndoService.UndoAsync(transaction, [operationId], force, info, ct)
                : await UndoService.UndoSessionAsync(transaction, undoSession, force, info, ct);
            await transaction.CommitAsync(ct);
            return (0L, undone);
        }, ct);
        var json = new JsonObject
        {
            ["operation_id"] = results[0].UndoOperationId,
            ["session_id"] = session,
            ["operations"] = new JsonArray(results.Select(r => (JsonNode)new JsonObject
            {
                ["undone_operation_id"] = r.OperationId, ["undo_operation_id"] = r.UndoOperationId, ["rows_changed"] = r.RowsChanged,
            }).ToArray()),
        };
        return json;
    }

    /// <summary>Undo creates, changes and deletes rows of the operations' models: the caller needs all three rights on each.</summary>
    private static async Task CheckUndoRightsAsync(RecordEnvironment env, NpgsqlTransaction transaction, string? session, long operationId,
        CancellationToken ct)
    {
        env.Access.Check(OperationLogModel.Definition, "read");
        await using var command = new NpgsqlCommand(session is null
            ? "SELECT DISTINCT model_name FROM loomworks_ai_operation_log WHERE id = $1"
            : "SELECT DISTINCT model_name FROM loomworks_ai_operation_log WHERE session_id = $1", transaction.Connection, transaction);
        command.Parameters.AddWithValue(session is null ? operationId : session);
        var models = new List<string?>();
        await using (var reader = await command.ExecuteReaderAsync(ct))
        {
            while (await reader.ReadAsync(ct))
            {
                models.Add(reader.IsDBNull(0) ? null : reader.GetString(0));
            }
        }
        foreach (var name in models)
        {
            if (name is not null && ModelRegistry.Find(name) is { } model)
            {
                env.Access.Check(model, "write");
                env.Access.Check(model, "create");
                env.Access.Check(model, "unlink");
            }
            else if (!env.Access.IsAdmin)
            {
                throw new AgentRefusalException("only administrators may undo operations that are not on a model (rewinds and the like)");
            }
        }
    }

    /// <summary>
    /// Runs one operation in a REPEATABLE READ transaction, retried on serialization failures and deadlocks; a call that
    /// fails for good is rolled back and logged as a failed operation.
    /// </summary>
    private async Task<(long OperationId, T Result)> InOperationAsync<T>(AgentCaller caller, OperationInfo info,
        Func<RecordEnvironment, NpgsqlTransaction, Task<(long, T)>> run, CancellationToken ct)
    {
        var started = Stopwatch.GetTimestamp();
        for (var attempt = 1; ; attempt++)
        {
            await using var connection = await caller.Database.OpenConnectionAsync(ct);
            await using var transaction = await connection.BeginTransactionAsync(IsolationLevel.RepeatableRead, ct);
            try
            {
                var env = new RecordEnvironment(connection, transaction, caller.Key.Rights, null, caller.Attachments);
                return await run(env, transaction);
            }
            catch (PostgresException e) when (e.SqlState is PostgresErrorCodes.SerializationFailure or PostgresErrorCodes.DeadlockDetected
                && attempt < MaxTries)
            {
                await OperationScope.RollbackIfOpenAsync(transaction);
                await Task.Delay(Random.Shared.Next(0, (1 << attempt) * 50), ct);
            }
            catch (Exception e) when (e is OdooException or OperationException or AgentRefusalException or PostgresException)
            {
                await OperationScope.RollbackIfOpenAsync(transaction);
                try
                {
                    await OperationScope.RecordFailureAsync(connection, info, RefusalMessage(e) ?? e.Message,
                        (int)Math.Min(int.MaxValue, Elapsed(started)), CancellationToken.None);
                }
                catch (NpgsqlException logFailure)
                {
                    logger.LogWarning("could not log the failed {Tool}: {Message}", info.ToolName, logFailure.Message);
                }
                throw;
            }
        }
    }

    private static async Task<JsonObject> ListOperationsAsync(AgentCaller caller, AgentArguments args, CancellationToken ct)
    {
        var filter = new OperationFilter(SessionId: args.OptionalText("session_id"), ModelName: args.OptionalText("model", 128),
            Limit: (int)(args.Whole("limit", 1, OperationFilter.MaxLimit) ?? OperationFilter.DefaultLimit));
        caller.Key.Rights.Check(OperationLogModel.Definition, "read");
        var operations = await new OperationLog(caller.Database).ListAsync(filter, ct);
        return new JsonObject
        {
            ["operations"] = new JsonArray(operations.Select(o => (JsonNode)new JsonObject
            {
                ["id"] = o.Id,
                ["session_id"] = o.SessionId,
                ["agent_id"] = o.AgentId,
                ["user_id"] = o.UserId,
                ["tool_name"] = o.ToolName,
                ["operation_type"] = o.OperationType,
                ["model"] = o.ModelName,
                ["record_ids"] = WireJson.ToJson(o.RecordIds),
                ["state"] = o.State,
                ["error_message"] = o.ErrorMessage,
                ["execution_time_ms"] = o.ExecutionTimeMs,
                ["snapshot_id"] = o.SnapshotId,
                ["undone"] = o.Undone,
                ["undo_of"] = o.UndoOf,
                ["change_count"] = o.ChangeCount,
                ["created_at"] = WireJson.ToJson(o.CreatedAt),
            }).ToArray()),
        };
    }

    private async Task<JsonObject> CreateSnapshotAsync(AgentCaller caller, AgentArguments args, CancellationToken ct)
    {
        var name = args.OptionalText("name", SnapshotService.MaxNameLength);
        if (!caller.Key.Rights.IsAdmin)
        {
            throw new AgentRefusalException("only an administrator's key may take a snapshot of the whole tenant; every change this key "
                + "makes "
                + "is logged and can be undone with undo_operation or undo_session");
        }
        var snapshot = await snapshots.CreateAsync(caller.Tenant.Subdomain, name, SnapshotTypes.Manual, ct);
        return new JsonObject { ["snapshots"] = new JsonArray(Snapshot(snapshot)) };
    }

    private async Task<JsonObject> ListSnapshotsAsync(AgentCaller caller, CancellationToken ct)
    {
        var list = await snapshots.ListAsync(caller.Tenant.Subdomain, ct);
        return new JsonObject { ["snapshots"] = new JsonArray(list.Select(s => (JsonNode)Snapshot(s)).ToArray()) };
    }

    private static JsonObject Snapshot(Snapshot s) => new()
    {
        ["id"] = s.Id,
        ["name"] = s.Name,
        ["kind"] = s.SnapshotType,
        ["state"] = s.State,
        ["created_at"] = WireJson.ToJson(s.CreatedAt),
        ["expires_at"] = WireJson.ToJson(s.ExpiresAt),
    };
}
