using System.Text;
using System.Text.Json;
using Loomworks.Rpc;

namespace Loomworks.Tests.Rpc;

/// <summary>Answers serialized into pooled buffers read back as the same JSON, from a few bytes to past the pooled size.</summary>
public sealed class PooledJsonTests
{
    [Theory]
    [InlineData(0)]
    [InlineData(100)]
    [InlineData(20_000)]
    [InlineData(300_000)]
    public void An_answer_of_any_size_is_the_json_the_codec_writes(int rows)
    {
        var result = Enumerable.Range(0, rows)
            .Select(i => (object?)new Dictionary<string, object?>
            {
                ["id"] = (long)i, ["name"] = $"Partner {i} +é", ["active"] = i % 2 == 0,
            })
            .ToList();
        var expected = JsonRpcCodec.Serialize(w => JsonRpcCodec.Write(w, result));
        using var json = PooledJson.Serialize(w => JsonRpcCodec.Write(w, result));
        Assert.Equal(expected, json.Written.ToArray());
        if (rows > 0)
        {
            using var parsed = JsonDocument.Parse(json.Written);
            Assert.Equal($"Partner {rows - 1} +é", parsed.RootElement[rows - 1].GetProperty("name").GetString());
        }
        Assert.True(rows < 300_000 || json.Written.Length > PooledJson.MaxPooledBytes, "the largest case must pass the pooled size");
    }

    [Fact]
    public void A_failing_writer_gives_its_buffer_back_and_the_error_passes_through()
    {
        var error = Assert.Throws<InvalidOperationException>(() => PooledJson.Serialize(w =>
        {
            w.WriteStartArray();
            w.WriteStringValue(new string('x', 50_000));
            throw new InvalidOperationException("broken");
        }));
        Assert.Equal("broken", error.Message);
        using var after = PooledJson.Serialize(w => w.WriteStringValue("ok"));
        Assert.Equal("\"ok\"", Encoding.UTF8.GetString(after.Written.Span));
    }
}
