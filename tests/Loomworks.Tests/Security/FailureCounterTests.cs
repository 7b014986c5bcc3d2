using Loomworks.Security;
using Microsoft.Extensions.Time.Testing;

namespace Loomworks.Tests.Security;

public sealed class FailureCounterTests
{
    private static readonly TimeSpan Minute = TimeSpan.FromMinutes(1);

    [Fact]
    public void Failures_within_the_window_lock_the_key_and_a_lock_out_that_clears_the_count_asks_for_the_limit_again()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UnixEpoch);
        var counter = new FailureCounter<string>(3, Minute, Minute, clearOnLockOut: true, time);
        Assert.False(counter.Fail("a"));
        Assert.False(counter.Fail("a"));
        Assert.Null(counter.LockedFor("a"));
        Assert.True(counter.Fail("a"));
        Assert.Equal(Minute, counter.LockedFor("a"));
        Assert.Null(counter.LockedFor("b"));

        time.Advance(Minute);
        Assert.Null(counter.LockedFor("a"));
        Assert.False(counter.Fail("a"));
        Assert.Null(counter.LockedFor("a"));

        // Failures further apart than the window never add up.
        time.Advance(Minute + TimeSpan.FromSeconds(1));
        Assert.False(counter.Fail("a"));
        time.Advance(Minute + TimeSpan.FromSeconds(1));
        Assert.False(counter.Fail("a"));
        Assert.Null(counter.LockedFor("a"));
    }

    [Fact]
    public void A_count_kept_through_the_lock_out_locks_again_at_the_next_failure_and_a_success_clears_it()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UnixEpoch);
        var counter = new FailureCounter<(string, string)>(2, Minute, TimeSpan.MaxValue, clearOnLockOut: false, time);
        Assert.False(counter.Fail(("db", "10.0.0.1")));
        time.Advance(TimeSpan.FromHours(1));
        Assert.True(counter.Fail(("db", "10.0.0.1")));
        time.Advance(TimeSpan.FromSeconds(30));
        Assert.Equal(TimeSpan.FromSeconds(30), counter.LockedFor(("db", "10.0.0.1")));
        time.Advance(TimeSpan.FromSeconds(30));
        Assert.Null(counter.LockedFor(("db", "10.0.0.1")));
        Assert.True(counter.Fail(("db", "10.0.0.1")));
        counter.Clear(("db", "10.0.0.1"));
        Assert.Null(counter.LockedFor(("db", "10.0.0.1")));
        Assert.False(counter.Fail(("db", "10.0.0.1")));
    }
}
