using Npgsql;

namespace Loomworks.Postgres;

/// <summary>
/// One idle connection that waits for the server to speak: PostgreSQL ends every session when it stops or restarts, so
/// the moment this one ends, every pool's idle connections are known dead and are cleared, instead of being handed to
/// the next request of each database after the server is back. It reconnects every second until the server answers.
/// </summary>
internal sealed class RestartWatch(Func<NpgsqlConnection> connect, Action serverLost) : IAsyncDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private Task? _loop;
    private int _started;

    public void Start()
    {
        if (Interlocked.Exchange(ref _started, 1) == 0)
        {
            _loop = Task.Run(() => WatchAsync(_stop.Token));
        }
    }

    private async Task WatchAsync(CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            var connected = false;
            try
            {
                await using var connection = connect();
                await connection.OpenAsync(ct);
                connected = true;
                while (true)
                {
                    await connection.WaitAsync(ct);
                }
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is NpgsqlException or IOException or TimeoutException or InvalidOperationException)
            {
                if (connected)
                {
                    serverLost();
                }
            }
            try
            {
                await Task.Delay(TimeSpan.FromSeconds(1), ct);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        if (_loop is not null)
        {
            await _loop;
        }
        _stop.Dispose();
    }
}
