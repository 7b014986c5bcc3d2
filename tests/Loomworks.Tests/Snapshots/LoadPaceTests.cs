using System.Text;
using Loomworks.Snapshots;

namespace Loomworks.Tests.Snapshots;

/// <summary>The restore's load: fed to psql table by table, at full speed or paced while other tenants work.</summary>
public sealed class LoadPaceTests
{
    private static readonly CancellationToken None = CancellationToken.None;

    [Fact]
    public void The_load_is_paced_from_the_other_tenants_work_until_they_have_been_quiet_a_while()
    {
        var pace = new LoadPace(20L << 20);
        Assert.False(pace.Paced);
        pace.Observe(null);
        Assert.False(pace.Paced);
        pace.Observe(LoadPace.QuietAfter + TimeSpan.FromSeconds(1));
        Assert.False(pace.Paced);
        pace.Observe(TimeSpan.Zero);
        Assert.True(pace.Paced);
        // An older sighting does not move the last work back.
        pace.Observe(LoadPace.QuietAfter + TimeSpan.FromSeconds(1));
        Assert.True(pace.Paced);

        var never = new LoadPace(0);
        never.Observe(TimeSpan.Zero);
        Assert.False(never.Paced);
    }

    [Fact]
    public void A_copy_sends_exactly_the_bytes_asked_for_and_waits_only_when_paced()
    {
        var data = Enumerable.Range(0, 1 << 20).Select(i => (byte)i).ToArray();
        var pace = new LoadPace(20L << 20);
        using (var target = new MemoryStream())
        {
            pace.Copy(new MemoryStream(data), 300_000, target, None);
            Assert.Equal(data.AsSpan(0, 300_000).ToArray(), target.ToArray());
            Assert.Equal(TimeSpan.Zero, pace.PacedFor);
        }
        pace.Observe(TimeSpan.Zero);
        using (var target = new MemoryStream())
        {
            pace.Copy(new MemoryStream(data), data.Length, target, None);
            Assert.Equal(data, target.ToArray());
            Assert.True(pace.PacedFor > TimeSpan.Zero, "a megabyte at the paced rate takes some waiting");
        }
    }

    [Theory]
    [InlineData("1\ta\n2\tb\n\\.\n\n\n", 11, true)]
    [InlineData("\\.\n\n\n", 3, true)]
    [InlineData("\\.\n", 3, true)]
    [InlineData("1\ta\n", 4, false)]
    [InlineData("", 0, false)]
    // A row whose text ends in a backslash and a dot is written with the backslash doubled: it does not end the rows.
    [InlineData("x\\\\.\n", 5, false)]
    [InlineData("x\\.\n", 4, false)]
    public void A_data_file_is_sent_up_to_its_closing_line_and_no_further(string file, long length, bool ended)
    {
        using var data = new MemoryStream(Encoding.UTF8.GetBytes(file));
        Assert.Equal((length, ended), TenantRestore.RowsLength(data));
    }

    [Fact]
    public void A_long_data_file_is_measured_from_its_tail()
    {
        var rows = string.Concat(Enumerable.Range(0, 10_000).Select(i => $"{i}\trow {i}\n"));
        using var data = new MemoryStream(Encoding.UTF8.GetBytes(rows + "\\.\n\n\n"));
        Assert.Equal((Encoding.UTF8.GetByteCount(rows) + 3L, true), TenantRestore.RowsLength(data));
    }
}
