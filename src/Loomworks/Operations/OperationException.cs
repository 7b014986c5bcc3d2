namespace Loomworks.Operations;

/// <summary>Why an undo, rewind or listing was refused.</summary>
public enum OperationErrorKind
{
    NotFound,
    AlreadyUndone,
    NotUndoable,
    Conflict,
    NotCovered,
    Failed,
    LogMissing,
    BadInput,
}

/// <summary>A refusal from the operation log whose message says what happened and what to do; nothing was changed.</summary>
public sealed class OperationException(OperationErrorKind kind, string message, Exception? inner = null)
    : Exception(message, inner)
{
    public OperationErrorKind Kind { get; } = kind;
}
