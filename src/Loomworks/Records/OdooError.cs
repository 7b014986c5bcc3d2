namespace Loomworks.Records;

/// <summary>The exception classes of Odoo a client can tell apart; each maps to an XML-RPC fault code and a JSON error name.</summary>
public enum OdooErrorKind
{
    /// <summary>Any other error (Python's ValueError, TypeError, …): fault 1.</summary>
    ServerError,
    UserError,
    ValidationError,
    MissingError,
    AccessDenied,
    AccessError,
}

/// <summary>An error the client is meant to see, shaped like the Odoo exception of the same kind.</summary>
public sealed class OdooException : Exception
{
    public OdooException(OdooErrorKind kind, string message, string? pythonName = null) : base(message)
    {
        Kind = kind;
        PythonName = pythonName;
    }

    public OdooException()
    {
    }

    public OdooException(string message) : base(message)
    {
    }

    public OdooException(string message, Exception innerException) : base(message, innerException)
    {
    }

    public OdooErrorKind Kind { get; } = OdooErrorKind.ServerError;

    /// <summary>For <see cref="OdooErrorKind.ServerError"/>: the Python class Odoo would raise (builtins.ValueError…).</summary>
    public string? PythonName { get; }

    /// <summary>The fully qualified exception name Odoo puts in a JSON-RPC error's data.name.</summary>
    public string QualifiedName => Kind switch
    {
        OdooErrorKind.UserError => "odoo.exceptions.UserError",
        OdooErrorKind.ValidationError => "odoo.exceptions.ValidationError",
        OdooErrorKind.MissingError => "odoo.exceptions.MissingError",
        OdooErrorKind.AccessDenied => "odoo.exceptions.AccessDenied",
        OdooErrorKind.AccessError => "odoo.exceptions.AccessError",
        _ => PythonName ?? "builtins.Exception",
    };

    /// <summary>The integer fault code of /xmlrpc/2: 1 other, 2 UserError (and its subclasses), 3 AccessDenied, 4 AccessError.</summary>
    public int FaultCode => Kind switch
    {
        OdooErrorKind.UserError or OdooErrorKind.ValidationError or OdooErrorKind.MissingError => 2,
        OdooErrorKind.AccessDenied => 3,
        OdooErrorKind.AccessError => 4,
        _ => 1,
    };

    public static OdooException User(string message) => new(OdooErrorKind.UserError, message);
    public static OdooException Validation(string message) => new(OdooErrorKind.ValidationError, message);
    public static OdooException Missing(string message) => new(OdooErrorKind.MissingError, message);
    public static OdooException Denied(string message = "Access Denied") => new(OdooErrorKind.AccessDenied, message);
    public static OdooException Access(string message) => new(OdooErrorKind.AccessError, message);
    public static OdooException Value(string message) => new(OdooErrorKind.ServerError, message, "builtins.ValueError");
    public static OdooException Type(string message) => new(OdooErrorKind.ServerError, message, "builtins.TypeError");
}
