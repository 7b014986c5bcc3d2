using Loomworks.Configuration;
using Loomworks.Postgres;
using Loomworks.Records;
using Microsoft.AspNetCore.Http;
using Npgsql;

namespace Loomworks.Rpc;

/// <summary>A tenant database an RPC call works in: its name, its connection pool and where its attachment files go.</summary>
public sealed record RpcDatabase(string Name, PooledDatabase DataSource)
{
    public AttachmentStorage? Attachments { get; init; }
}

/// <summary>Finds the tenant database of a call (from the db argument, or the request when db is null).</summary>
public interface IRpcDatabases
{
    /// <summary>The database, or an <see cref="OdooException"/> of kind AccessDenied when it is unknown or not active.</summary>
    Task<RpcDatabase> OpenAsync(HttpContext http, string? db, CancellationToken ct);

    /// <summary>The databases the db service's list shows to this request (dbfilter and db_name applied).</summary>
    Task<IReadOnlyList<string>> ListAsync(HttpContext http, CancellationToken ct);

    /// <summary>Whether a tenant database of that name exists, in whatever state (the db service's db_exist).</summary>
    Task<bool> ExistsAsync(string db, CancellationToken ct);
}

/// <summary>The db service calls that create or destroy tenants; provided by the tenant provisioner.</summary>
public interface IRpcDatabaseManager
{
    /// <summary>Runs a management call (create_database, drop, …) after the master password check; null when unsupported.</summary>
    Task<object?> CallAsync(HttpContext http, string method, IList<object?> args, CancellationToken ct);
}

/// <summary>Checked before an ORM method that may write (tenant limits); throws an <see cref="OdooException"/> to refuse.</summary>
public interface IRpcWriteGuard
{
    Task CheckAsync(RpcDatabase database, string model, string method, IList<object?> args, CancellationToken ct);
}

/// <summary>Until a tenant provisioner is registered: management calls answer that they are not available here.</summary>
public sealed class UnavailableDatabaseManager : IRpcDatabaseManager
{
    public Task<object?> CallAsync(HttpContext http, string method, IList<object?> args, CancellationToken ct) =>
        throw OdooException.User(
            $"The database manager call '{method}' is not available on this server: no tenant provisioner is configured.");
}

/// <summary>Limits of the RPC endpoints.</summary>
public sealed class RpcOptions
{
    /// <summary>Largest request body accepted, in bytes (Odoo's default is 128 MiB); larger bodies get 413.</summary>
    public long MaxBodyBytes { get; set; } = 128L * 1024 * 1024;

    /// <summary>Whether the db service lists databases (Odoo's list_db).</summary>
    public bool ListDatabases { get; set; } = true;

    /// <summary>Whether error answers carry the exception's stack (development only).</summary>
    public bool Debug { get; set; }

    /// <summary>The memory all request bodies being read at once may hold (loomworks_rpc_bodies_in_flight_mb).</summary>
    public long BodiesInFlightBytes { get; set; } = 256L * 1024 * 1024;

    /// <summary>Wrong passwords for one login before it cools down, and for how long (loomworks_login_cooldown_*).</summary>
    public int LoginCooldownAfter { get; set; } = 10;

    public TimeSpan LoginCooldownDuration { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>The binder: the RPC keys of loomworks.conf.</summary>
    public static RpcOptions From(LoomworksSettings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        return new RpcOptions
        {
            ListDatabases = settings.GetBool(ConfigKeys.ListDb),
            MaxBodyBytes = BodyCapBytes(settings),
            BodiesInFlightBytes = settings.GetInt(ConfigKeys.RpcBodiesInFlightMb) * Mebibyte,
            LoginCooldownAfter = settings.GetInt(ConfigKeys.LoginCooldownAfter),
            LoginCooldownDuration = TimeSpan.FromSeconds(settings.GetInt(ConfigKeys.LoginCooldownDuration)),
        };
    }

    /// <summary>
    /// The configured body cap, or one just large enough for the largest attachment: base64 is 4/3 of the bytes, XML-RPC
    /// clients wrap it in lines, and the call around it is small. The in-flight bound keeps many such bodies in check.
    /// </summary>
    public static long BodyCapBytes(LoomworksSettings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        var configured = settings.GetInt(ConfigKeys.RpcBodyMaxMb);
        return configured > 0 ? configured * Mebibyte : settings.GetInt(ConfigKeys.AttachmentMaxMb) * Mebibyte * 7 / 5 + Mebibyte;
    }

    private const long Mebibyte = 1024 * 1024;
}
