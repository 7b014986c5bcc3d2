using Loomworks.Records;

namespace Loomworks.Operations;

/// <summary>
/// The operation log as the model <c>loomworks.ai.operation.log</c>, read-only: its table is a view over the log that
/// the operations migrations create (ids as integers, JSON as text); undo is reached through its methods action_undo
/// and action_undo_session. Operations registers it in <see cref="ModelRegistry"/>.
/// </summary>
public static class OperationLogModel
{
    public static ModelDef Definition { get; } = ModelRegistry.Register(new("loomworks.ai.operation.log",
        "loomworks_ai_operation_log_rows", "AI Operation Log",
        new[]
        {
            Field("session_id", FieldType.Char, "Session ID"),
            Field("agent_id", FieldType.Char, "Agent ID"),
            Field("user_id", FieldType.Many2one, "User") with { Relation = "res.users" },
            Field("tool_name", FieldType.Char, "Tool Name"),
            Field("operation_type", FieldType.Char, "Operation Type"),
            Field("model_name", FieldType.Char, "Model"),
            Field("record_ids", FieldType.Text, "Record IDs") with { Help = "JSON list of the ids of the operation's model it changed." },
            Field("values_before", FieldType.Text, "Values Before") with { Help = "JSON: the rows as they were, by id." },
            Field("values_after", FieldType.Text, "Values After") with { Help = "JSON: the rows as the operation left them, by id." },
            Field("state", FieldType.Selection, "State") with
            {
                Selection = [("pending", "Pending"), ("done", "Done"), ("failed", "Failed")],
            },
            Field("error_message", FieldType.Text, "Error Message"),
            Field("execution_time_ms", FieldType.Integer, "Execution Time (ms)"),
            Field("snapshot_id", FieldType.Integer, "Snapshot"),
            Field("undone", FieldType.Boolean, "Undone"),
            Field("undone_at", FieldType.Datetime, "Undone At"),
            Field("undone_by", FieldType.Integer, "Undone by Operation"),
            Field("undo_of", FieldType.Integer, "Undo of Operation"),
            Field("change_count", FieldType.Integer, "Row Changes"),
        }.Select(f => f with { ReadOnly = true }), order: "id desc"));

    /// <summary>Registers the model (once; later calls change nothing): every host that serves the ORM calls it at start.</summary>
    public static void Register() => _ = Definition;

    private static FieldDef Field(string name, FieldType type, string label) => new(name, type, label);
}
