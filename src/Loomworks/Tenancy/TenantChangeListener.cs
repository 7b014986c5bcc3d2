using Loomworks.Postgres;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;

namespace Loomworks.Tenancy;

/// <summary>
/// LISTENs on <see cref="TenantEventLog.Channel"/> in the management database and evicts the cached tenant each
/// NOTIFY names. NOTIFYs sent while disconnected are lost, so after every (re)connect the whole cache is reloaded;
/// reconnects back off from 100 ms to 5 s.
/// </summary>
public sealed class TenantChangeListener(
    TenantDataSources dataSources,
    TenancyOptions options,
    TenantCache cache,
    ILogger<TenantChangeListener>? logger = null) : BackgroundService
{
    private static readonly TimeSpan FirstBackoff = TimeSpan.FromMilliseconds(100);
    private static readonly TimeSpan LastBackoff = TimeSpan.FromSeconds(5);
    private readonly ILogger _logger = logger ?? (ILogger)NullLogger.Instance;
    private TaskCompletionSource _listening = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _connects;

    /// <summary>The application_name of the LISTEN connection, unique per instance (so it can be found in pg_stat_activity).</summary>
    public string ApplicationName { get; } = $"loomworks-listener-{Environment.ProcessId}-{Guid.NewGuid().ToString("N")[..8]}";

    /// <summary>How many times the listener has connected (1 after the first start).</summary>
    public int Connects => Volatile.Read(ref _connects);

    /// <summary>Completes once the listener is connected, listening and has reloaded the cache.</summary>
    public Task WaitUntilListeningAsync(TimeSpan timeout) => Volatile.Read(ref _listening).Task.WaitAsync(timeout);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var backoff = FirstBackoff;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await using var connection = dataSources.CreateDedicatedConnection(options.ManagementDatabase, ApplicationName);
                await connection.OpenAsync(stoppingToken);
                connection.Notification += (_, e) => OnNotification(e.Payload);
                await using (var listen = new NpgsqlCommand($"LISTEN {TenantEventLog.Channel}", connection))
                {
                    await listen.ExecuteNonQueryAsync(stoppingToken);
                }
                await cache.ReloadAsync(stoppingToken);
                Interlocked.Increment(ref _connects);
                Volatile.Read(ref _listening).TrySetResult();
                backoff = FirstBackoff;
                while (!stoppingToken.IsCancellationRequested)
                {
                    // A periodic round trip notices a connection that died without a word (the keepalive also does).
                    if (!await connection.WaitAsync(TimeSpan.FromSeconds(30), stoppingToken))
                    {
                        await using var ping = new NpgsqlCommand("SELECT 1", connection);
                        await ping.ExecuteNonQueryAsync(stoppingToken);
                    }
                }
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is NpgsqlException or IOException or TimeoutException or InvalidOperationException)
            {
                // Until the next reconnect changes may be missed: forget everything rather than serve stale states.
                cache.Clear();
                // PostgreSQL ends every session when it restarts: the pools' idle connections are as dead as this one.
                dataSources.ServerLost();
                if (Volatile.Read(ref _listening).Task.IsCompleted)
                {
                    Volatile.Write(ref _listening, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
                }
                _logger.LogWarning("tenant change listener lost its connection ({Message}); reconnecting in {Backoff} ms",
                    e.Message, backoff.TotalMilliseconds);
                try
                {
                    await Task.Delay(backoff, stoppingToken);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
                backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, LastBackoff.Ticks));
            }
        }
    }

    private void OnNotification(string payload)
    {
        var space = payload.IndexOf(' ', StringComparison.Ordinal);
        if (space > 0)
        {
            cache.Evict(payload[..space], payload[(space + 1)..]);
        }
        else
        {
            cache.Clear();
        }
    }
}
