using System.Data;
using System.Diagnostics;
using Loomworks.Operations;
using Loomworks.Records;
using Loomworks.Tenancy;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace Loomworks.Rpc;

/// <summary>
/// The common, object and db services of Odoo's external API, shared by XML-RPC, JSON-RPC and JSON-2. Every object
/// call runs in one REPEATABLE READ transaction, retried up to 5 times on serialization failures and deadlocks as Odoo does.
/// </summary>
public sealed class RpcDispatcher(IRpcDatabases databases, IRpcDatabaseManager manager, RpcAuthenticator authenticator,
    RpcOptions options, ILogger<RpcDispatcher> logger, IRpcWriteGuard? writeGuard = null, AiOperationQuota? aiQuota = null,
    TenantCache? tenants = null)
{
    public const int MaxTries = 5;

    /// <summary>The models of the features above Records are registered before the first call names one.</summary>
    static RpcDispatcher() => OperationLogModel.Register();

    public static readonly Dictionary<string, object?> Version = new(StringComparer.Ordinal)
    {
        ["server_version"] = "18.0",
        ["server_version_info"] = new List<object?> { 18L, 0L, 0L, "final", 0L, "" },
        ["server_serie"] = "18.0",
        ["protocol_version"] = 1L,
    };

    public Task<object?> DispatchAsync(HttpContext http, string service, string method, IList<object?> args, CancellationToken ct) =>
        service switch
        {
            "common" => CommonAsync(http, method, args, ct),
            "object" => ObjectAsync(http, method, args, ct),
            "db" => DbAsync(http, method, args, ct),
            _ => throw new OdooException(OdooErrorKind.ServerError, $"No such service: {Domain.Show(service)}", "builtins.KeyError"),
        };

    private async Task<object?> CommonAsync(HttpContext http, string method, IList<object?> args, CancellationToken ct)
    {
        switch (method)
        {
            case "version":
                return Version;
            case "about":
                const string info = "See http://openerp.com";
                return args.Count > 0 && Values.Truthy(args[0]) ? new List<object?> { info, "18.0" } : info;
            case "login":
                Arity(method, args, 3, 3);
                return await AuthenticateAsync(http, args, ct);
            case "authenticate":
                Arity(method, args, 3, 4);
                return await AuthenticateAsync(http, args, ct);
            default:
                throw MethodNotAvailable("common", method);
        }
    }

    private async Task<object?> AuthenticateAsync(HttpContext http, IList<object?> args, CancellationToken ct)
    {
        var database = await databases.OpenAsync(http, Text(args[0], "db"), ct);
        var uid = await authenticator.AuthenticateAsync(database, Text(args[1], "login"), Text(args[2], "password"),
            ClientAddress(http), ct);
        return uid is { } id ? id : false;
    }

    private async Task<object?> ObjectAsync(HttpContext http, string method, IList<object?> args, CancellationToken ct)
    {
        switch (method)
        {
            case "execute":
                Arity(method, args, 5, int.MaxValue);
                return await ExecuteAsync(http, Text(args[0], "db"), args[1], args[2], Text(args[3], "model"), Text(args[4], "method"),
                    args.Skip(5).ToList(), null, ct);
            case "execute_kw":
                Arity(method, args, 6, 7);
                var positional = args[5] as IList<object?>
                    ?? throw OdooException.Type($"execute_kw() args must be a list, not {Domain.Show(args[5])}");
                var kwargs = args.Count > 6 && args[6] is not (null or false)
                    ? args[6] as IDictionary<string, object?>
                        ?? throw OdooException.Type($"execute_kw() kwargs must be a dictionary, not {Domain.Show(args[6])}")
                    : null;
                return await ExecuteAsync(http, Text(args[0], "db"), args[1], args[2], Text(args[3], "model"), Text(args[4], "method"),
                    positional, kwargs, ct);
            default:
                throw MethodNotAvailable("object", method);
        }
    }

    private async Task<object?> ExecuteAsync(HttpContext http, string db, object? uidValue, object? password, string model, string method,
        IList<object?> args, IDictionary<string, object?>? kwargs, CancellationToken ct)
    {
        var database = await databases.OpenAsync(http, db, ct);
        if (uidValue is not long uid)
        {
            throw OdooException.Denied();
        }
        if (RecordMethods.IsReadOnly(method) && authenticator.Remembered(database.Name, uid, password as string) is { } remembered)
        {
            // Remembered checks: the call runs at once and reads the stamp with its first statement. Whatever it answers
            // (an error too) stands only if the stamp is still the one the checks were made under; otherwise it is
            // made again below, checking everything.
            var optimistic = await CallSession.OpenAsync(database, remembered, ct);
            try
            {
                return await CallCoreAsync(database, uid, model, method, args, kwargs, optimistic, ct);
            }
            catch (Exception e) when (e is not OperationCanceledException && optimistic.PendingStamp is { Matched: not true })
            {
            }
        }
        // The password is checked in the transaction a read-only method then runs in: one connection, and with the
        // check remembered under the same security stamp, no query of its own. A method that may write hands its
        // connection back first, because the write guard may need one from the same pool.
        var session = await CallSession.OpenAsync(database, ct);
        try
        {
            await authenticator.CheckAsync(session.Connection, session.Transaction, database.Name, uid, password as string, session.Stamp,
                ClientAddress(http), ct);
            if (RecordMethods.IsReadOnly(method))
            {
                var owned = session;
                session = null;
                return await CallCoreAsync(database, uid, model, method, args, kwargs, owned, ct);
            }
        }
        finally
        {
            if (session is not null)
            {
                await session.DisposeAsync();
            }
        }
        return await CallCoreAsync(database, uid, model, method, args, kwargs, null, ct);
    }

    /// <summary>Runs one ORM method for an authenticated user: checks, transaction, retries.</summary>
    public Task<object?> CallAsync(RpcDatabase database, long uid, string model, string method, IList<object?> args,
        IDictionary<string, object?>? kwargs, CancellationToken ct) =>
        CallCoreAsync(database, uid, model, method, args, kwargs, null, ct);

    /// <summary>As <see cref="CallAsync"/>; the first attempt runs in <paramref name="opened"/> when given (and disposes it).</summary>
    private async Task<object?> CallCoreAsync(RpcDatabase database, long uid, string model, string method, IList<object?> args,
        IDictionary<string, object?>? kwargs, CallSession? opened, CancellationToken ct)
    {
        await using var first = opened;
        if (method.StartsWith('_'))
        {
            throw OdooException.Access($"Private methods (such as '{model}.{method}') cannot be called remotely.");
        }
        var definition = ModelRegistry.Get(model);
        var logAction = OperationCalls.IsLogAction(definition, method);
        if (!logAction && !RecordMethods.Exists(model, method))
        {
            throw new OdooException(OdooErrorKind.ServerError, $"The method '{method}' does not exist on the model '{model}'",
                "builtins.AttributeError");
        }
        if (!RecordMethods.IsReadOnly(method) && writeGuard is not null)
        {
            await writeGuard.CheckAsync(database, model, method, args, ct);
        }
        var context = kwargs?.TryGetValue("context", out var c) == true && c is IDictionary<string, object?> ctx
            ? new Dictionary<string, object?>(ctx, StringComparer.Ordinal)
            : new Dictionary<string, object?>(StringComparer.Ordinal);
        // A mutating call is one operation: begun inside the transaction (so a retry's rollback takes its log row
        // with it), completed before the commit, and logged as failed after the rollback when it fails for good.
        var operation = OperationCalls.Describe(definition, method, uid, context);
        if (operation?.AgentId is not null && aiQuota is not null && tenants is not null
            && await tenants.ByDatabaseAsync(database.Name, ct) is { } tenant && await aiQuota.TryConsumeAsync(tenant, ct) is { } usage)
        {
            // An agent's call over RPC counts against the same daily quota as its MCP calls; past it, it is refused.
            throw OdooException.User(usage.RefusalMessage(tenant.Subdomain));
        }
        var started = Stopwatch.GetTimestamp();
        for (var attempt = 1; ; attempt++)
        {
            await using var session = attempt == 1 && first is not null ? first : await CallSession.OpenAsync(database, ct);
            var connection = session.Connection;
            var transaction = session.Transaction;
            try
            {
                var access = session.Remembered?.Rights
                    ?? await authenticator.AccessAsync(connection, transaction, database.Name, uid, session.Stamp, ct);
                var env = new RecordEnvironment(connection, transaction, access, context, database.Attachments)
                {
                    PendingStamp = session.PendingStamp,
                    CommitsWithRead = RecordMethods.IsReadOnly(method),
                };
                object? result;
                OperationScope? scope = null;
                if (logAction)
                {
                    result = await OperationCalls.UndoAsync(env, transaction, method, args, kwargs, operation!, ct);
                }
                else
                {
                    scope = operation is null ? null : OperationScope.Begin(transaction, operation);
                    result = await RecordMethods.CallAsync(env, definition, method, args, kwargs, ct);
                }
                if (scope is not null)
                {
                    // The log row rides with the commit: one round trip for both.
                    await scope.CommitAsync(ct);
                }
                else
                {
                    await env.CommitAsync(ct);
                }
                return result;
            }
            catch (Exception) when (session.PendingStamp is { Matched: not true })
            {
                // Under remembered checks whose stamp is unconfirmed, nothing is retried or reported here: the caller
                // makes the call again with every check.
                throw;
            }
            catch (PostgresException e) when (e.SqlState is PostgresErrorCodes.SerializationFailure or PostgresErrorCodes.DeadlockDetected
                && attempt < MaxTries)
            {
                await OperationScope.RollbackIfOpenAsync(transaction);
                var wait = TimeSpan.FromMilliseconds(Random.Shared.Next(0, (int)Math.Pow(2, attempt) * 100));
                logger.LogInformation("{State} in {Model}.{Method}, retry {Attempt}/{Max} in {Wait}",
                    e.SqlState, model, method, attempt, MaxTries, wait);
                await Task.Delay(wait, ct);
            }
            catch (Exception e) when (e is OdooException or OperationException || e is PostgresException && !DatabaseUnavailable.Matches(e))
            {
                var error = e switch
                {
                    OperationException o => OperationCalls.ToOdoo(o),
                    PostgresException p => FromPostgres(p, definition),
                    _ => (OdooException)e,
                };
                if (operation is not null)
                {
                    await OperationScope.RollbackIfOpenAsync(transaction);
                    await RecordFailureAsync(connection, operation, error.Message, started);
                }
                throw error;
            }
        }
    }

    private async Task RecordFailureAsync(NpgsqlConnection connection, OperationInfo operation, string message, long started)
    {
        try
        {
            var ms = (int)Math.Min(int.MaxValue, Stopwatch.GetElapsedTime(started).TotalMilliseconds);
            await OperationScope.RecordFailureAsync(connection, operation, message, ms, CancellationToken.None);
        }
        catch (NpgsqlException e)
        {
            // The caller's error matters more than the log row; say so in the server log and let the caller have it.
            logger.LogWarning("Could not log the failed {Type} on {Model}: {Message}",
                operation.OperationType, operation.ModelName, e.Message);
        }
    }

    private async Task<object?> DbAsync(HttpContext http, string method, IList<object?> args, CancellationToken ct)
    {
        switch (method)
        {
            case "server_version":
                return "18.0";
            case "list":
                if (!options.ListDatabases)
                {
                    throw OdooException.Denied();
                }
                return (await databases.ListAsync(http, ct)).Cast<object?>().ToList();
            case "db_exist":
                Arity(method, args, 1, 1);
                return args[0] is string name && await databases.ExistsAsync(name, ct);
            case "list_lang":
                return new List<object?> { new List<object?> { "en_US", "English (US)" } };
            case "list_countries":
                return new List<object?>();
            default:
                if (!options.ListDatabases)
                {
                    throw OdooException.Denied();
                }
                return await manager.CallAsync(http, method, args, ct);
        }
    }

    /// <summary>Constraint violations as Odoo reports them (ValidationError); anything else stays a server error.</summary>
    public static OdooException FromPostgres(PostgresException e, ModelDef model) => e.SqlState switch
    {
        PostgresErrorCodes.NotNullViolation or PostgresErrorCodes.ForeignKeyViolation or PostgresErrorCodes.RestrictViolation =>
            OdooException.Validation("The operation cannot be completed:\n- Create/update: a mandatory field is not set.\n" +
                "- Delete: another model requires the record being deleted. If possible, archive it instead.\n\n" +
                $"Model: {model.Label} ({model.Name})"
                + (e.ColumnName is { } c ? $"\nField: {c}" : e.ConstraintName is { } k ? $"\nConstraint: {k}" : "")),
        PostgresErrorCodes.UniqueViolation =>
            OdooException.Validation("The operation cannot be completed: a record with the same value already exists.\n\n"
                + $"Model: {model.Label} ({model.Name})\nConstraint: {e.ConstraintName}"),
        PostgresErrorCodes.CheckViolation =>
            OdooException.Validation($"The operation cannot be completed: {e.MessageText}\n\nModel: {model.Label} ({model.Name})"),
        _ when e.SqlState.StartsWith("22", StringComparison.Ordinal) =>
            OdooException.Value($"Invalid value for {model.Name}: {e.MessageText}"),
        _ => new OdooException(OdooErrorKind.ServerError, $"Database error {e.SqlState}", "psycopg2.Error"),
    };

    private static void Arity(string method, IList<object?> args, int min, int max)
    {
        if (args.Count < min || args.Count > max)
        {
            throw OdooException.Type(min == max
                ? $"{method}() takes exactly {min} arguments ({args.Count} given)"
                : $"{method}() takes {min} to {(max == int.MaxValue ? "any number of" : max)} arguments ({args.Count} given)");
        }
    }

    /// <summary>The address login failures are counted under (the proxy's client when proxy_mode trusts it).</summary>
    private static string? ClientAddress(HttpContext http) => http.Connection.RemoteIpAddress?.ToString();

    private static string Text(object? value, string name) =>
        value as string ?? throw OdooException.Type($"{name} must be a string, not {Domain.Show(value)}");

    private static OdooException MethodNotAvailable(string service, string method) =>
        new(OdooErrorKind.ServerError, $"Method not available {Domain.Show(method)} on service {Domain.Show(service)}",
            "builtins.KeyError");
}

/// <summary>
/// A connection with its REPEATABLE READ transaction begun and the tenant's security stamp read: the BEGIN travels
/// with that first query, so opening costs one round trip. Opened for remembered checks, it reads nothing: the BEGIN
/// and the stamp travel with the call's first statement.
/// </summary>
internal sealed class CallSession : IAsyncDisposable
{
    private bool _disposed;

    private CallSession(NpgsqlConnection connection, NpgsqlTransaction transaction, Guid stamp, RememberedCheck? remembered)
    {
        Connection = connection;
        Transaction = transaction;
        Stamp = stamp;
        Remembered = remembered;
        PendingStamp = remembered is null ? null : new PendingStampCheck(remembered.Stamp);
    }

    public NpgsqlConnection Connection { get; }
    public NpgsqlTransaction Transaction { get; }
    public Guid Stamp { get; }

    /// <summary>The remembered checks the call runs under, or null when the stamp was read on opening.</summary>
    public RememberedCheck? Remembered { get; }

    /// <summary>The stamp still to be read and compared when <see cref="Remembered"/> is set.</summary>
    public PendingStampCheck? PendingStamp { get; }

    public static Task<CallSession> OpenAsync(RpcDatabase database, CancellationToken ct) => OpenAsync(database, null, ct);

    public static async Task<CallSession> OpenAsync(RpcDatabase database, RememberedCheck? remembered, CancellationToken ct)
    {
        var connection = await database.DataSource.OpenConnectionAsync(ct);
        try
        {
            var transaction = await connection.BeginTransactionAsync(IsolationLevel.RepeatableRead, ct);
            var stamp = remembered?.Stamp ?? await SecurityStamp.ReadAsync(connection, transaction, ct);
            return new CallSession(connection, transaction, stamp, remembered);
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        await Transaction.DisposeAsync();
        await Connection.DisposeAsync();
    }
}
