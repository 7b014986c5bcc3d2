using System.Globalization;
using Loomworks.Operations;
using Loomworks.Records;
using Npgsql;

namespace Loomworks.Rpc;

/// <summary>
/// Where the external API meets the operation log: which calls are operations, how the context annotates them, and
/// the log model's methods action_undo and action_undo_session.
/// </summary>
public static class OperationCalls
{
    /// <summary>Most operations one action_undo call may name: the whole list is undone in one transaction.</summary>
    public const int MaxIds = 1000;

    private static readonly HashSet<string> Mutating = new(StringComparer.Ordinal) { "create", "write", "unlink" };

    /// <summary>True for the log model's own methods, which <see cref="RecordMethods"/> does not know.</summary>
    public static bool IsLogAction(ModelDef model, string method) =>
        model == OperationLogModel.Definition && method is "action_undo" or "action_undo_session";

    /// <summary>
    /// The operation a call is, or null for a read. Writes to the log itself are refused for everyone; API keys are
    /// not captured (see <see cref="ErpTenantSetup.Uncaptured"/>), so their calls are not operations either.
    /// </summary>
    public static OperationInfo? Describe(ModelDef model, string method, long uid, IReadOnlyDictionary<string, object?> context)
    {
        if (IsLogAction(model, method))
        {
            return Info(method, model.Name, uid, context);
        }
        if (!Mutating.Contains(method))
        {
            return null;
        }
        if (model == OperationLogModel.Definition)
        {
            throw OdooException.Access($"The operation log ({model.Name}) is read-only: its rows cannot be created, changed or deleted. " +
                "Use action_undo to revert an operation.");
        }
        return ErpTenantSetup.Uncaptured.Contains(model.Table) ? null : Info(method, model.Name, uid, context);
    }

    private static OperationInfo Info(string method, string model, long uid, IReadOnlyDictionary<string, object?> context) =>
        new(method, model, Annotation(context, OperationInfo.SessionKey), Annotation(context, OperationInfo.AgentKey), uid,
            Annotation(context, OperationInfo.ToolKey));

    private static string? Annotation(IReadOnlyDictionary<string, object?> context, string key) =>
        context.TryGetValue(key, out var value) ? value switch
        {
            null or false => null,
            string { Length: > 200 } => throw OdooException.Value($"context key {key} is longer than 200 characters"),
            string s => s,
            long l => l.ToString(CultureInfo.InvariantCulture),
            _ => throw OdooException.Type($"context key {key} must be a string, not {Domain.Show(value)}"),
        } : null;

    /// <summary>Runs action_undo or action_undo_session inside the call's transaction; the undo is the call's operation.</summary>
    public static async Task<object?> UndoAsync(RecordEnvironment env, NpgsqlTransaction transaction, string method,
        IList<object?> args, IDictionary<string, object?>? kwargs, OperationInfo info, CancellationToken ct)
    {
        env.Access.Check(OperationLogModel.Definition, "read");
        var positional = args.ToList();
        if (positional.Count == 0)
        {
            throw OdooException.Type(method == "action_undo"
                ? "action_undo() needs the operation ids as its first argument"
                : "action_undo_session() missing 1 required positional argument: 'session_id'");
        }
        var first = positional[0];
        positional.RemoveAt(0);
        var force = Force(method, positional, kwargs);
        var by = info with { OperationType = "undo" };
        if (method == "action_undo")
        {
            var ids = Ids(first);
            await CheckRightsAsync(env, transaction, "id = ANY($1)", ids.ToArray(), ct);
            // Newest first: undoing a later operation first clears the way for the earlier ones it depends on. All of
            // them go in one round trip.
            var undone = await UndoService.UndoAsync(transaction, ids.Distinct().OrderDescending().ToList(), force, by, ct);
            return undone.Select(r => (object?)r.UndoOperationId).ToList();
        }
        var session = first as string
            ?? throw OdooException.Type($"action_undo_session() session_id must be a string, not {Domain.Show(first)}");
        await CheckRightsAsync(env, transaction, "session_id = $1", session, ct);
        var results = await UndoService.UndoSessionAsync(transaction, session, force, by, ct);
        return results.Select(r => (object?)r.UndoOperationId).ToList();
    }

    /// <summary>An OperationException as the Odoo error a client expects: unknown ids are MissingError, bad input a
    /// ValueError, every other refusal a UserError; all name the problem.</summary>
    public static OdooException ToOdoo(OperationException e)
    {
        ArgumentNullException.ThrowIfNull(e);
        return e.Kind switch
        {
            OperationErrorKind.NotFound => OdooException.Missing(e.Message),
            OperationErrorKind.BadInput => OdooException.Value(e.Message),
            _ => OdooException.User(e.Message),
        };
    }

    private static bool Force(string method, List<object?> positional, IDictionary<string, object?>? kwargs)
    {
        if (positional.Count > 1)
        {
            throw OdooException.Type($"{method}() takes at most 2 positional arguments but {positional.Count + 1} were given");
        }
        var force = positional.Count == 1 ? positional[0] : null;
        foreach (var (key, value) in kwargs ?? new Dictionary<string, object?>())
        {
            if (key == "force" && positional.Count == 0)
            {
                force = value;
            }
            else if (key != "context")
            {
                throw OdooException.Type($"{method}() got an unexpected keyword argument '{key}'");
            }
        }
        return force switch
        {
            null or false => false,
            true => true,
            _ => throw OdooException.Type($"{method}() force must be True or False, not {Domain.Show(force)}"),
        };
    }

    private static List<long> Ids(object? value)
    {
        var ids = value switch
        {
            long id => [id],
            IList<object?> list => list
                .Select(v => v is long id ? id : throw OdooException.Type($"action_undo(): {Domain.Show(v)} is not an operation id"))
                .ToList(),
            _ => throw OdooException.Type($"action_undo(): {Domain.Show(value)} is not a list of operation ids"),
        };
        return ids.Count switch
        {
            0 => throw OdooException.Value("action_undo() needs at least one operation id"),
            > MaxIds => throw OdooException.Value($"action_undo() takes at most {MaxIds} operation ids, not {ids.Count}"),
            _ => ids,
        };
    }

    /// <summary>Undo creates, changes and deletes rows of the operations' models: the caller needs all three rights on each.</summary>
    private static async Task CheckRightsAsync(RecordEnvironment env, NpgsqlTransaction transaction, string where, object parameter,
        CancellationToken ct)
    {
        var models = new List<string>();
        await using (var command = new NpgsqlCommand(
            $"SELECT DISTINCT model_name FROM loomworks_ai_operation_log WHERE {where} AND model_name IS NOT NULL",
            transaction.Connection, transaction))
        {
            command.Parameters.AddWithValue(parameter);
            await using var reader = await command.ExecuteReaderAsync(ct);
            while (await reader.ReadAsync(ct))
            {
                models.Add(reader.GetString(0));
            }
        }
        foreach (var model in models.Select(ModelRegistry.Find).OfType<ModelDef>())
        {
            env.Access.Check(model, "write");
            env.Access.Check(model, "create");
            env.Access.Check(model, "unlink");
        }
        if (models.Any(m => ModelRegistry.Find(m) is null) && !env.Access.IsAdmin)
        {
            throw OdooException.Access("Only administrators may undo operations that are not on a model (rewinds and the like).");
        }
    }
}
