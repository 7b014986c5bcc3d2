using System.Diagnostics;

namespace Loomworks.Testing;

/// <summary>Polling for what happens in the background (a NOTIFY reaching a cache, a listener reconnecting).</summary>
public static class Eventually
{
    /// <summary>
    /// Waits until <paramref name="condition"/> holds and returns how long that took; throws a
    /// <see cref="TimeoutException"/> naming <paramref name="what"/> when it still does not hold after
    /// <paramref name="timeout"/> (five seconds unless given).
    /// </summary>
    public static async Task<TimeSpan> HoldsAsync(Func<Task<bool>> condition, string what, TimeSpan? timeout = null)
    {
        var limit = timeout ?? TimeSpan.FromSeconds(5);
        var watch = Stopwatch.StartNew();
        while (!await condition())
        {
            if (watch.Elapsed > limit)
            {
                throw new TimeoutException($"Still not true after {limit.TotalSeconds:0.#} s: {what}");
            }
            await Task.Delay(20);
        }
        return watch.Elapsed;
    }
}
