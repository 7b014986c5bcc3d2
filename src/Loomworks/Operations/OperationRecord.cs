using System.Text.Json;

namespace Loomworks.Operations;

/// <summary>One row of <c>loomworks_ai_operation_log</c> (the model <c>loomworks.ai.operation.log</c>).</summary>
public sealed record OperationRecord(
    long Id,
    string? SessionId,
    string? AgentId,
    long? UserId,
    string? ToolName,
    string OperationType,
    string? ModelName,
    IReadOnlyList<long> RecordIds,
    JsonElement? ValuesBefore,
    JsonElement? ValuesAfter,
    string State,
    string? ErrorMessage,
    int? ExecutionTimeMs,
    long? SnapshotId,
    bool Undone,
    DateTimeOffset? UndoneAt,
    long? UndoneBy,
    long? UndoOf,
    int ChangeCount,
    DateTimeOffset CreatedAt);

/// <summary>What to list; every field is optional and passed to SQL as a parameter.</summary>
public sealed record OperationFilter(
    string? SessionId = null,
    string? AgentId = null,
    string? ModelName = null,
    DateTimeOffset? Since = null,
    DateTimeOffset? Until = null,
    int Limit = OperationFilter.DefaultLimit)
{
    public const int DefaultLimit = 100;
    public const int MaxLimit = 1000;
}

/// <summary>What one undo did: the operation undone and the undo operation that did it (undo that to redo).</summary>
public sealed record UndoResult(long OperationId, long UndoOperationId, int RowsChanged);
