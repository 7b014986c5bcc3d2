using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;

namespace Loomworks.Postgres;

/// <summary>
/// A logger factory given to one Npgsql data source only to be told, synchronously, that the pool is about to open a
/// physical connection: Npgsql logs <see cref="NpgsqlEventId.OpeningPhysicalConnection"/> before it opens the socket and
/// offers no other hook there, while its connection initializer runs only once the server has the session. Every other
/// Npgsql log of the data source goes nowhere, as it did without a factory.
/// </summary>
internal sealed class PhysicalOpenHook(Action opening) : ILoggerFactory, ILogger
{
    public ILogger CreateLogger(string categoryName) => categoryName == "Npgsql.Connection" ? this : NullLogger.Instance;

    public void AddProvider(ILoggerProvider provider)
    {
    }

    public void Dispose()
    {
    }

    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => logLevel == LogLevel.Trace;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception,
        Func<TState, Exception?, string> formatter)
    {
        if (eventId.Id == NpgsqlEventId.OpeningPhysicalConnection)
        {
            opening();
        }
    }
}
