using System.Buffers;
using System.Text.Json;
using System.Text.Unicode;

namespace Loomworks.Rpc;

/// <summary>
/// Reads a JSON body straight into wire values (long, double, bool, string, null, lists, dictionaries) with one
/// forward pass of <see cref="Utf8JsonReader"/>: nesting and the number of values are checked as they are read, and
/// text PostgreSQL cannot store (invalid UTF-8, unpaired surrogates, NUL) is refused naming the problem.
/// </summary>
public static class JsonWireReader
{
    public const int MaxDepth = 64;

    /// <summary>Values one request may hold: a list of small numbers costs about 16 times its size once read.</summary>
    public const int MaxValues = 1_000_000;

    private const int CancellationStride = 4096;

    public static object? Read(ReadOnlySequence<byte> json, CancellationToken ct)
    {
        var reader = new Utf8JsonReader(json, new JsonReaderOptions { MaxDepth = MaxDepth });
        var count = 0;
        if (!reader.Read())
        {
            throw new JsonException("The input does not contain any JSON tokens.");
        }
        var value = ReadValue(ref reader, ref count, ct);
        // With the whole body as the final block, anything but whitespace after the value makes Read throw.
        while (reader.Read())
        {
        }
        return value;
    }

    private static object? ReadValue(ref Utf8JsonReader reader, ref int count, CancellationToken ct)
    {
        if (++count > MaxValues)
        {
            throw RpcProtocolException.BadRequest($"Invalid JSON data: more than {MaxValues} values in one request");
        }
        if (count % CancellationStride == 0)
        {
            ct.ThrowIfCancellationRequested();
        }
        switch (reader.TokenType)
        {
            case JsonTokenType.Null:
                return null;
            case JsonTokenType.True:
                return true;
            case JsonTokenType.False:
                return false;
            case JsonTokenType.String:
                return ReadString(ref reader);
            case JsonTokenType.Number:
                if (reader.TryGetInt64(out var whole))
                {
                    return whole;
                }
                return reader.TryGetDouble(out var real) && double.IsFinite(real)
                    ? real
                    : throw RpcProtocolException.BadRequest(
                        $"Invalid JSON data: the number at byte {reader.TokenStartIndex} is out of range");
            case JsonTokenType.StartArray:
            {
                var list = new List<object?>();
                while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
                {
                    list.Add(ReadValue(ref reader, ref count, ct));
                }
                return list;
            }
            case JsonTokenType.StartObject:
            {
                var dict = new Dictionary<string, object?>(StringComparer.Ordinal);
                while (reader.Read() && reader.TokenType != JsonTokenType.EndObject)
                {
                    var name = ReadString(ref reader);
                    reader.Read();
                    dict[name] = ReadValue(ref reader, ref count, ct);
                }
                return dict;
            }
            default:
                throw new JsonException($"Unexpected {reader.TokenType} at byte {reader.TokenStartIndex}");
        }
    }

    /// <summary>A string value or property name; the reader leaves UTF-8 and escapes to be checked when it is decoded.</summary>
    private static string ReadString(ref Utf8JsonReader reader)
    {
        string text;
        try
        {
            text = reader.GetString()!;
        }
        catch (InvalidOperationException)
        {
            var raw = reader.HasValueSequence ? reader.ValueSequence.ToArray() : reader.ValueSpan.ToArray();
            throw RpcProtocolException.BadRequest(Utf8.IsValid(raw)
                ? $"Invalid JSON data: the string at byte {reader.TokenStartIndex} holds an unpaired surrogate escape (\\ud800-\\udfff)"
                : $"Invalid JSON data: the string at byte {reader.TokenStartIndex} is not valid UTF-8");
        }
        if (text.Contains('\0', StringComparison.Ordinal))
        {
            throw RpcProtocolException.BadRequest($"Invalid JSON data: the string at byte {reader.TokenStartIndex} contains NUL " +
                "(\\u0000), which PostgreSQL text cannot store");
        }
        return text;
    }
}
