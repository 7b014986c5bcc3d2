using Loomworks.Postgres;

namespace Loomworks.Tests.Postgres;

/// <summary>Which CPUs a restore's low-priority work may use: all but the first, which the tenants keep.</summary>
public sealed class LowPriorityCpusTests
{
    [Theory]
    [InlineData("0-1", "1")]
    [InlineData("0-3,8,10-11", "1,2,3,8,10,11")]
    [InlineData(" 2,0 ", "2")]
    [InlineData("4-7", "5,6,7")]
    public void All_allowed_CPUs_but_the_first_are_used(string allowed, string expected) =>
        Assert.Equal(expected, string.Join(',', LowPriorityCpus.Spare(LowPriorityCpus.Parse(allowed))));

    [Theory]
    [InlineData("0")]
    [InlineData("3")]
    [InlineData("")]
    public void A_single_CPU_is_not_restricted(string allowed) =>
        Assert.Empty(LowPriorityCpus.Spare(LowPriorityCpus.Parse(allowed)));

    [Theory]
    [InlineData("0-")]
    [InlineData("3-1")]
    [InlineData("a,b")]
    [InlineData("0-1-2")]
    [InlineData("-1")]
    [InlineData("0-99999999999")]
    [InlineData("1024")]
    public void A_list_that_cannot_be_read_restricts_nothing(string allowed) =>
        Assert.Empty(LowPriorityCpus.Parse(allowed));

    [Fact]
    public void A_low_priority_command_runs_on_those_CPUs_when_there_are_several()
    {
        var (program, arguments) = CommandRunner.LowPriority("/bin/true", ["x"], "-c", "3");
        Assert.Equal("/usr/bin/setsid", program);
        if (Environment.ProcessorCount > 1)
        {
            Assert.Equal(["/usr/bin/taskset", "-c", LowPriorityCpus.List!, "/bin/true", "x"], arguments.TakeLast(5));
            Assert.DoesNotContain(0, LowPriorityCpus.Cpus);
        }
        else
        {
            Assert.Null(LowPriorityCpus.List);
        }
    }
}
