using Loomworks.Configuration;
using Loomworks.Tenancy;

namespace Loomworks.Backups;

/// <summary>The gate in front of every database-manager call.</summary>
public interface IMasterPasswordCheck
{
    /// <summary>Throws <see cref="DatabaseManagerException"/> unless management is enabled and the password is right.</summary>
    Task CheckAsync(string? password, string clientAddress, CancellationToken cancellationToken);

    /// <summary>Throws unless management is enabled at all (list_db True and a master password set); no password asked.</summary>
    Task CheckEnabledAsync(CancellationToken cancellationToken);

    /// <summary>Checks <paramref name="oldPassword"/> and stores the hash of <paramref name="newPassword"/>.</summary>
    Task ChangeAsync(string? oldPassword, string newPassword, string clientAddress, CancellationToken cancellationToken);
}

/// <summary>
/// The database manager's view of the one master password (<see cref="MasterPassword"/>, shared with the admin API):
/// list_db = False switches the manager off, and the answers become the manager's own errors.
/// </summary>
public sealed class MasterPasswordGate(DatabaseManagerOptions options, MasterPassword master) : IMasterPasswordCheck
{
    public async Task CheckEnabledAsync(CancellationToken cancellationToken)
    {
        EnsureListDb();
        if (await master.StoredAsync(cancellationToken) is null)
        {
            throw Disabled();
        }
    }

    public async Task CheckAsync(string? password, string clientAddress, CancellationToken cancellationToken)
    {
        EnsureListDb();
        switch (await master.VerifyAsync(string.IsNullOrEmpty(password) ? null : password, clientAddress, cancellationToken))
        {
            case MasterPasswordResult.Accepted:
                return;
            case MasterPasswordResult.Disabled:
                throw Disabled();
            case MasterPasswordResult.RateLimited:
                throw new DatabaseManagerException(DatabaseManagerError.TooManyAttempts,
                    "too many wrong master passwords from this address; try again later")
                { RetryAfter = master.LockedFor(clientAddress) ?? MasterPassword.LockOut };
            default:
                throw new DatabaseManagerException(DatabaseManagerError.AccessDenied, "Access Denied: wrong master password");
        }
    }

    public async Task ChangeAsync(string? oldPassword, string newPassword, string clientAddress, CancellationToken cancellationToken)
    {
        await CheckAsync(oldPassword, clientAddress, cancellationToken);
        if (string.IsNullOrEmpty(newPassword))
        {
            throw new DatabaseManagerException(DatabaseManagerError.InvalidName, "the new master password must not be empty");
        }
        await master.ChangeAsync(newPassword, cancellationToken);
    }

    private void EnsureListDb()
    {
        if (!options.ListDatabases)
        {
            throw new DatabaseManagerException(DatabaseManagerError.Disabled,
                "the database manager has been disabled by the administrator (list_db = False)");
        }
    }

    private static DatabaseManagerException Disabled() => new(DatabaseManagerError.Disabled,
        "the database manager is disabled until a master password is set (admin_passwd in loomworks.conf)");
}
