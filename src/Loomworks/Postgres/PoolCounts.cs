using System.Diagnostics.Metrics;

namespace Loomworks.Postgres;

/// <summary>
/// Reads Npgsql's <c>db.client.connection.count</c> metric (idle and in-use connections per pool, physical opens in
/// progress counted as in use) for the pools whose names start with one prefix. The metric is Npgsql's public window
/// on its pools' counters, which are exact at the moment they are read.
/// </summary>
internal sealed class PoolCounts : IDisposable
{
    private readonly MeterListener _listener = new();
    private readonly string _prefix;
    [ThreadStatic] private static Action<string, bool, int>? _sink;

    public PoolCounts(string poolNamePrefix)
    {
        _prefix = poolNamePrefix;
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name == "Npgsql" && instrument.Name == "db.client.connection.count")
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<int>((_, value, tags, _) =>
        {
            if (_sink is not { } sink)
            {
                return;
            }
            string? pool = null;
            bool? idle = null;
            foreach (var tag in tags)
            {
                if (tag.Key == "db.client.connection.pool.name")
                {
                    pool = tag.Value as string;
                }
                else if (tag.Key == "db.client.connection.state")
                {
                    idle = tag.Value as string == "idle";
                }
            }
            if (pool is not null && idle is not null && pool.StartsWith(_prefix, StringComparison.Ordinal))
            {
                sink(pool[_prefix.Length..], idle.Value, value);
            }
        });
        _listener.Start();
    }

    /// <summary>Calls <paramref name="sink"/> with (database, idle?, count) for each pool of this prefix, on this thread.</summary>
    public void Record(Action<string, bool, int> sink)
    {
        _sink = sink;
        try
        {
            _listener.RecordObservableInstruments();
        }
        finally
        {
            _sink = null;
        }
    }

    public void Dispose() => _listener.Dispose();
}
