using System.Globalization;
using System.Text;

namespace Loomworks.Rpc;

/// <summary>
/// XML-RPC as Odoo speaks it. The reader (<see cref="XmlRpcReader"/>) refuses DTDs and entities before expanding anything
/// (no XXE, no billion laughs) and limits nesting and size while reading; the writer sends None as False and strips the
/// control characters XML cannot carry.
/// </summary>
public static class XmlRpcCodec
{
    /// <summary>Markup characters, the control characters XML cannot carry, and the two non-characters Escape drops.</summary>
    private static readonly System.Buffers.SearchValues<char> NeedsEscape = System.Buffers.SearchValues.Create(
        "&<>\u0000\u0001\u0002\u0003\u0004\u0005\u0006\u0007\u0008\u000B\u000C\u000E\u000F\u0010\u0011\u0012\u0013"
        + "\u0014\u0015\u0016\u0017\u0018\u0019\u001A\u001B\u001C\u001D\u001E\u001F\uFFFE\uFFFF");

    public static (string Method, List<object?> Params) ReadRequest(byte[] body)
    {
        using var stream = new MemoryStream(body, writable: false);
        return XmlRpcReader.ReadRequest(stream, CancellationToken.None);
    }

    /// <summary>Reads a methodCall as it streams from <paramref name="body"/>; limits are checked while reading.</summary>
    public static (string Method, List<object?> Params) ReadRequest(Stream body, CancellationToken ct) =>
        XmlRpcReader.ReadRequest(body, ct);

    /// <summary>A methodCall document, for clients of the API (tests, benches, tools).</summary>
    public static byte[] WriteRequest(string method, IEnumerable<object?> parameters)
    {
        var builder = new StringBuilder("<?xml version='1.0'?>\n<methodCall>\n<methodName>");
        Escape(builder, method);
        builder.Append("</methodName>\n<params>\n");
        foreach (var parameter in parameters)
        {
            builder.Append("<param>\n");
            WriteValue(builder, parameter, 0);
            builder.Append("</param>\n");
        }
        builder.Append("</params>\n</methodCall>\n");
        return Encoding.UTF8.GetBytes(builder.ToString());
    }

    /// <summary>Reads a methodResponse: the result, or the fault as (code, message) with IsFault set.</summary>
    public static (bool IsFault, object? Value) ReadResponse(byte[] body)
    {
        using var stream = new MemoryStream(body, writable: false);
        return XmlRpcReader.ReadResponse(stream);
    }

    public static byte[] WriteResponse(object? result)
    {
        var builder = new StringBuilder("<?xml version='1.0'?>\n<methodResponse>\n<params>\n<param>\n");
        WriteValue(builder, result, 0);
        builder.Append("</param>\n</params>\n</methodResponse>\n");
        return Encoding.UTF8.GetBytes(builder.ToString());
    }

    public static byte[] WriteFault(object code, string message)
    {
        var builder = new StringBuilder("<?xml version='1.0'?>\n<methodResponse>\n<fault>\n");
        WriteValue(builder, new Dictionary<string, object?> { ["faultCode"] = code, ["faultString"] = message }, 0);
        builder.Append("</fault>\n</methodResponse>\n");
        return Encoding.UTF8.GetBytes(builder.ToString());
    }

    private static void WriteValue(StringBuilder b, object? value, int depth)
    {
        if (depth > 200)
        {
            throw new InvalidOperationException("result nested too deeply");
        }
        b.Append("<value>");
        switch (value)
        {
            case null:
                b.Append("<boolean>0</boolean>");
                break;
            case bool flag:
                b.Append(flag ? "<boolean>1</boolean>" : "<boolean>0</boolean>");
                break;
            case int or long or short:
            {
                var number = Convert.ToInt64(value, CultureInfo.InvariantCulture);
                b.Append(number is >= int.MinValue and <= int.MaxValue ? "<int>" : "<i8>")
                    .Append(number.ToString(CultureInfo.InvariantCulture))
                    .Append(number is >= int.MinValue and <= int.MaxValue ? "</int>" : "</i8>");
                break;
            }
            case double or float or decimal:
                b.Append("<double>")
                    .Append(Convert.ToDouble(value, CultureInfo.InvariantCulture).ToString("R", CultureInfo.InvariantCulture))
                    .Append("</double>");
                break;
            case string text:
                b.Append("<string>");
                Escape(b, text);
                b.Append("</string>");
                break;
            case DateTime dt:
                b.Append("<dateTime.iso8601>").Append(dt.ToString("yyyyMMdd'T'HH:mm:ss", CultureInfo.InvariantCulture))
                    .Append("</dateTime.iso8601>");
                break;
            case byte[] bytes:
                b.Append("<base64>").Append(Convert.ToBase64String(bytes)).Append("</base64>");
                break;
            case IDictionary<string, object?> dict:
                b.Append("<struct>");
                foreach (var (key, item) in dict)
                {
                    b.Append("<member><name>");
                    Escape(b, key);
                    b.Append("</name>");
                    WriteValue(b, item, depth + 1);
                    b.Append("</member>");
                }
                b.Append("</struct>");
                break;
            case System.Collections.IEnumerable list:
                b.Append("<array><data>");
                foreach (var item in list)
                {
                    WriteValue(b, item, depth + 1);
                }
                b.Append("</data></array>");
                break;
            default:
                b.Append("<string>");
                Escape(b, Convert.ToString(value, CultureInfo.InvariantCulture) ?? "");
                b.Append("</string>");
                break;
        }
        b.Append("</value>\n");
    }

    /// <summary>Escapes markup and drops control characters 0–31 other than tab, LF and CR, as Odoo does.</summary>
    private static void Escape(StringBuilder b, string text)
    {
        // Most values need nothing: append them whole rather than a character at a time.
        if (text.AsSpan().IndexOfAny(NeedsEscape) < 0)
        {
            b.Append(text);
            return;
        }
        foreach (var c in text)
        {
            switch (c)
            {
                case '&': b.Append("&amp;"); break;
                case '<': b.Append("&lt;"); break;
                case '>': b.Append("&gt;"); break;
                case '\t' or '\n' or '\r': b.Append(c); break;
                case < ' ': break;
                case '\uFFFE' or '\uFFFF': break;
                default: b.Append(c); break;
            }
        }
    }
}

/// <summary>A request the protocol layer cannot read; answered as fault 1 (XML-RPC) or a JSON error, never a crash.</summary>
public sealed class RpcProtocolException : Exception
{
    public RpcProtocolException()
    {
    }

    public RpcProtocolException(string message) : base(message)
    {
    }

    public RpcProtocolException(string message, Exception innerException) : base(message, innerException)
    {
    }

    public static RpcProtocolException BadRequest(string message) => new(message);
}
