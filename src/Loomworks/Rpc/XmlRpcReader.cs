using System.Globalization;
using System.Text;
using System.Xml;

namespace Loomworks.Rpc;

/// <summary>
/// Reads XML-RPC documents in one forward pass of <see cref="XmlReader"/>, building values as it goes: nesting and
/// the number of values are checked when each value starts, so a hostile document is refused after reading no more
/// than the limit allows, and elements XML-RPC does not have are refused where they appear.
/// </summary>
internal sealed class XmlRpcReader
{
    public const int MaxDepth = 64;
    public const int MaxValues = JsonWireReader.MaxValues;

    private const int CancellationStride = 4096;

    private static readonly XmlReaderSettings Settings = new()
    {
        DtdProcessing = DtdProcessing.Prohibit,
        XmlResolver = null,
        IgnoreComments = true,
        IgnoreProcessingInstructions = true,
    };

    private readonly XmlReader _reader;
    private readonly string _kind;
    private readonly CancellationToken _ct;
    private int _values;

    private XmlRpcReader(XmlReader reader, string kind, CancellationToken ct)
    {
        _reader = reader;
        _kind = kind;
        _ct = ct;
    }

    public static (string Method, List<object?> Params) ReadRequest(Stream body, CancellationToken ct) =>
        Run(body, "request", r => r.MethodCall(), ct);

    public static (bool IsFault, object? Value) ReadResponse(Stream body) =>
        Run(body, "response", r => r.MethodResponse(), CancellationToken.None);

    private static T Run<T>(Stream body, string kind, Func<XmlRpcReader, T> read, CancellationToken ct)
    {
        try
        {
            using var xml = XmlReader.Create(body, Settings);
            var reader = new XmlRpcReader(xml, kind, ct);
            reader.MoveToContent();
            return read(reader);
        }
        catch (XmlException e) when (e.Message.Contains("DTD", StringComparison.OrdinalIgnoreCase))
        {
            throw RpcProtocolException.BadRequest($"XML-RPC {kind}s may not contain a DTD or entity declarations");
        }
        catch (XmlException e)
        {
            throw RpcProtocolException.BadRequest($"Malformed XML-RPC {kind}: {e.Message}");
        }
    }

    private RpcProtocolException Malformed(string problem) => RpcProtocolException.BadRequest($"Malformed XML-RPC {_kind}: {problem}");

    /// <summary>Moves to the next element or end tag, skipping whitespace and refusing stray text.</summary>
    private void MoveToContent()
    {
        while (_reader.Read())
        {
            switch (_reader.NodeType)
            {
                case XmlNodeType.Element or XmlNodeType.EndElement:
                    return;
                case XmlNodeType.Text or XmlNodeType.CDATA when !string.IsNullOrWhiteSpace(_reader.Value):
                    throw Malformed($"unexpected text '{Truncate(_reader.Value)}' in <{CurrentParent()}>");
            }
        }
    }

    private string CurrentParent() => _reader.NodeType == XmlNodeType.Element ? _reader.LocalName : "document";

    private void ExpectElement(string name)
    {
        if (_reader.NodeType != XmlNodeType.Element || _reader.LocalName != name)
        {
            throw Malformed(_reader.NodeType == XmlNodeType.Element
                ? $"expected <{name}>, found <{_reader.LocalName}>"
                : $"expected <{name}>, found the end of <{_reader.LocalName}>");
        }
    }

    /// <summary>Calls <paramref name="child"/> for each child element of the current element and leaves the reader after it.</summary>
    private void Children(Action<string> child)
    {
        if (_reader.IsEmptyElement)
        {
            MoveToContent();
            return;
        }
        MoveToContent();
        while (_reader.NodeType == XmlNodeType.Element)
        {
            child(_reader.LocalName);
        }
        MoveToContent();
    }

    private (string, List<object?>) MethodCall()
    {
        ExpectElement("methodCall");
        string? method = null;
        var parameters = new List<object?>();
        Children(name =>
        {
            switch (name)
            {
                case "methodName":
                    method = Text().Trim();
                    break;
                case "params":
                    Params(parameters);
                    break;
                default:
                    throw Malformed($"unexpected <{name}> in <methodCall>");
            }
        });
        return string.IsNullOrEmpty(method) ? throw Malformed("<methodName> is missing") : (method, parameters);
    }

    private (bool, object?) MethodResponse()
    {
        ExpectElement("methodResponse");
        (bool, object?)? result = null;
        Children(name =>
        {
            switch (name)
            {
                case "params":
                    var values = new List<object?>();
                    Params(values);
                    result = values.Count > 0 ? (false, values[0]) : throw Malformed("no <param>");
                    break;
                case "fault":
                    object? fault = null;
                    Children(inner => fault = inner == "value" ? Value(0) : throw Malformed($"unexpected <{inner}> in <fault>"));
                    result = (true, fault);
                    break;
                default:
                    throw Malformed($"unexpected <{name}> in <methodResponse>");
            }
        });
        return result ?? throw Malformed("no <params> or <fault>");
    }

    private void Params(List<object?> into) => Children(name =>
    {
        if (name != "param")
        {
            throw Malformed($"unexpected <{name}> in <params>");
        }
        var found = false;
        Children(inner =>
        {
            into.Add(inner == "value" && !found ? Value(0) : throw Malformed($"unexpected <{inner}> in <param>"));
            found = true;
        });
        if (!found)
        {
            throw Malformed("<param> without <value>");
        }
    });

    /// <summary>The text content of a leaf element; the reader is left after its end tag.</summary>
    private string Text()
    {
        var name = _reader.LocalName;
        if (_reader.IsEmptyElement)
        {
            MoveToContent();
            return "";
        }
        var text = new StringBuilder();
        while (_reader.Read())
        {
            switch (_reader.NodeType)
            {
                case XmlNodeType.Text or XmlNodeType.CDATA or XmlNodeType.Whitespace or XmlNodeType.SignificantWhitespace:
                    text.Append(_reader.Value);
                    break;
                case XmlNodeType.Element:
                    throw Malformed($"unexpected <{_reader.LocalName}> in <{name}>");
                case XmlNodeType.EndElement:
                    MoveToContent();
                    return text.ToString();
            }
        }
        throw Malformed($"<{name}> is not closed");
    }

    /// <summary>A &lt;value&gt; element: typed, or bare text as a string; the reader is left after its end tag.</summary>
    private object? Value(int depth)
    {
        if (depth > MaxDepth)
        {
            throw Malformed($"values nested deeper than {MaxDepth} levels");
        }
        if (++_values > MaxValues)
        {
            throw Malformed($"more than {MaxValues} values in one {_kind}");
        }
        if (_values % CancellationStride == 0)
        {
            _ct.ThrowIfCancellationRequested();
        }
        if (_reader.IsEmptyElement)
        {
            MoveToContent();
            return "";
        }
        var bare = new StringBuilder();
        while (_reader.Read())
        {
            switch (_reader.NodeType)
            {
                case XmlNodeType.Text or XmlNodeType.CDATA or XmlNodeType.Whitespace or XmlNodeType.SignificantWhitespace:
                    bare.Append(_reader.Value);
                    break;
                case XmlNodeType.EndElement:
                    MoveToContent();
                    return bare.ToString();
                case XmlNodeType.Element:
                    var value = Typed(depth);
                    if (_reader.NodeType != XmlNodeType.EndElement)
                    {
                        throw Malformed($"<value> holds more than one value: unexpected <{_reader.LocalName}>");
                    }
                    MoveToContent();
                    return value;
            }
        }
        throw Malformed("<value> is not closed");
    }

    private object? Typed(int depth)
    {
        var type = _reader.LocalName;
        switch (type)
        {
            case "array":
            {
                var list = new List<object?>();
                Children(name =>
                {
                    if (name != "data")
                    {
                        throw Malformed($"unexpected <{name}> in <array>");
                    }
                    Children(inner => list.Add(inner == "value" ? Value(depth + 1) : throw Malformed($"unexpected <{inner}> in <data>")));
                });
                return list;
            }
            case "struct":
            {
                var result = new Dictionary<string, object?>(StringComparer.Ordinal);
                Children(name =>
                {
                    if (name != "member")
                    {
                        throw Malformed($"unexpected <{name}> in <struct>");
                    }
                    Member(result, depth);
                });
                return result;
            }
            case "base64":
                return Base64();
            case "nil":
                Text();
                return null;
        }
        var text = Text();
        try
        {
            return type switch
            {
                "int" or "i4" or "i8" or "i2" or "i1" =>
                    long.Parse(text.Trim(), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture),
                "boolean" => text.Trim() switch
                {
                    "1" => true,
                    "0" => false,
                    _ => throw Malformed($"'{Truncate(text)}' is not a boolean"),
                },
                "string" => text,
                "double" or "float" => double.Parse(text.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture),
                "dateTime.iso8601" => DateTime.ParseExact(text.Trim(),
                    ["yyyyMMdd'T'HH:mm:ss", "yyyy-MM-dd'T'HH:mm:ss", "yyyyMMdd'T'HHmmss"], CultureInfo.InvariantCulture,
                    DateTimeStyles.None),
                _ => throw Malformed($"unknown value type <{type}>"),
            };
        }
        catch (FormatException)
        {
            throw Malformed($"'{Truncate(text)}' is not a valid <{type}>");
        }
        catch (OverflowException)
        {
            throw Malformed($"'{Truncate(text)}' is out of range for <{type}>");
        }
    }

    private void Member(Dictionary<string, object?> into, int depth)
    {
        string? name = null;
        var hasValue = false;
        object? value = null;
        Children(child =>
        {
            switch (child)
            {
                case "name" when name is null:
                    name = Text();
                    break;
                case "value" when !hasValue:
                    value = Value(depth + 1);
                    hasValue = true;
                    break;
                default:
                    throw Malformed($"unexpected <{child}> in <member>");
            }
        });
        into[name ?? throw Malformed("<member> without <name>")] = hasValue ? value : throw Malformed("<member> without <value>");
    }

    /// <summary>Decodes base64 as it is read, so a large attachment never exists as one base64 string.</summary>
    private byte[] Base64()
    {
        if (_reader.IsEmptyElement)
        {
            MoveToContent();
            return [];
        }
        using var bytes = new MemoryStream();
        var buffer = new byte[16 * 1024];
        try
        {
            int read;
            while ((read = _reader.ReadElementContentAsBase64(buffer, 0, buffer.Length)) > 0)
            {
                bytes.Write(buffer, 0, read);
            }
        }
        catch (XmlException)
        {
            throw Malformed("<base64> does not hold valid base64");
        }
        // ReadElementContentAsBase64 leaves the reader after the end tag: skip whitespace up to the next tag.
        if (_reader.NodeType is not (XmlNodeType.Element or XmlNodeType.EndElement))
        {
            MoveToContent();
        }
        return bytes.ToArray();
    }

    private static string Truncate(string text) => text.Length > 64 ? text[..64] + "…" : text;
}
