using System.Globalization;

namespace Loomworks.Records;

/// <summary>Conversions between wire values (long, double, bool, string, lists, dicts, null) and Odoo's text formats.</summary>
public static class Values
{
    public const string DateFormat = "yyyy-MM-dd";
    public const string DateTimeFormat = "yyyy-MM-dd HH:mm:ss";

    public static bool TryParseDateTime(string text, out DateTime value)
    {
        // Odoo writes "YYYY-MM-DD HH:MM:SS"; clients also send ISO 8601 with a T and fractions.
        string[] formats = [DateTimeFormat, "yyyy-MM-dd HH:mm:ss.FFFFFF", "yyyy-MM-ddTHH:mm:ss", "yyyy-MM-ddTHH:mm:ss.FFFFFF",
            "yyyy-MM-ddTHH:mm:ssZ", "yyyy-MM-ddTHH:mm:ss.FFFFFFZ", "yyyy-MM-dd HH:mm", DateFormat];
        return DateTime.TryParseExact(text, formats, CultureInfo.InvariantCulture,
            DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal, out value)
            && (value = DateTime.SpecifyKind(value, DateTimeKind.Unspecified)) != default;
    }

    public static string FormatDateTime(DateTime value) => value.ToString(DateTimeFormat, CultureInfo.InvariantCulture);
    public static string FormatDate(DateOnly value) => value.ToString(DateFormat, CultureInfo.InvariantCulture);

    /// <summary>Python-style truthiness, which Odoo applies to flags such as raise_exception.</summary>
    public static bool Truthy(object? value) => value switch
    {
        null or false => false,
        long l => l != 0,
        double d => d != 0,
        string s => s.Length > 0,
        System.Collections.ICollection c => c.Count > 0,
        _ => true,
    };
}
