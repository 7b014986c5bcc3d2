using System.Net.Sockets;
using Npgsql;

namespace Loomworks.Rpc;

/// <summary>
/// Failures that mean PostgreSQL cannot be reached or is restarting, not that the request was wrong: they are answered
/// 503 with Retry-After so clients try again instead of reporting an internal error.
/// </summary>
public static class DatabaseUnavailable
{
    /// <summary>Seconds a client is asked to wait; a restart of PostgreSQL takes a few.</summary>
    public const int RetryAfterSeconds = 5;

    public static bool Matches(Exception? e)
    {
        for (; e is not null; e = e.InnerException)
        {
            switch (e)
            {
                case PostgresException postgres:
                    // 08: connection exceptions; 57P01-03: administrator/crash shutdown, cannot connect now; 53300: too many connections.
                    return postgres.SqlState.StartsWith("08", StringComparison.Ordinal)
                        || postgres.SqlState is "57P01" or "57P02" or "57P03" or PostgresErrorCodes.TooManyConnections;
                case NpgsqlException npgsql when npgsql.InnerException is SocketException or IOException or TimeoutException:
                    return true;
                case SocketException:
                    return true;
            }
        }
        return false;
    }

    /// <summary>The answer's message: what happened, without the stack.</summary>
    public static string Describe(Exception e)
    {
        var cause = e;
        for (var inner = e; inner is not null; inner = inner.InnerException)
        {
            if (inner is PostgresException or SocketException)
            {
                cause = inner;
                break;
            }
        }
        var reason = cause is PostgresException postgres ? $"{postgres.SqlState}: {postgres.MessageText}" : cause.Message;
        return $"The database server is unavailable ({reason}); try again in a few seconds";
    }
}
