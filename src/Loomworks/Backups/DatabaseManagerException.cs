namespace Loomworks.Backups;

/// <summary>Why a database-manager call was refused; the HTTP, RPC and CLI faces map each to their own shape.</summary>
public enum DatabaseManagerError
{
    /// <summary>No master password is set, or list_db is False: the whole manager is off.</summary>
    Disabled,
    AccessDenied,
    TooManyAttempts,
    InvalidName,
    AlreadyExists,
    NotFound,
    InvalidBackup,

    /// <summary>The uploads in progress take all the places or space there is: the client may try again later.</summary>
    Busy,
    Failed,
}

/// <summary>A refused or failed database-manager call, with a message that names the problem.</summary>
public sealed class DatabaseManagerException(DatabaseManagerError error, string message, Exception? inner = null)
    : Exception(message, inner)
{
    public DatabaseManagerError Error { get; } = error;

    /// <summary>
    /// For <see cref="DatabaseManagerError.TooManyAttempts"/> and <see cref="DatabaseManagerError.Busy"/>: when the client
    /// may try again.
    /// </summary>
    public TimeSpan? RetryAfter { get; init; }
}
