using System.Globalization;

namespace Loomworks.Records;

/// <summary>Client values checked and converted to column values, as create and write store them.</summary>
public sealed partial class RecordEnvironment
{
    /// <summary>Checks and converts client values: columns to parameter values, x2many fields to their commands.</summary>
    private static (Dictionary<string, object?> Columns, List<(FieldDef, object?)> X2Many) Split(ModelDef model,
        IDictionary<string, object?> values, bool creating)
    {
        var columns = new Dictionary<string, object?>(StringComparer.Ordinal);
        var x2many = new List<(FieldDef, object?)>();
        foreach (var (name, value) in values)
        {
            var field = model.Field(name);
            if (field is null || (field.Hidden && !(model == ModelRegistry.Users && name == "password")))
            {
                throw OdooException.Value($"Invalid field {Domain.Show(name)} on model {Domain.Show(model.Name)}");
            }
            if (name is "id" or "create_uid" or "create_date" or "write_uid" or "write_date" || field.Computed)
            {
                continue; // Odoo ignores values for magic and computed fields without an inverse.
            }
            if (field.IsX2Many)
            {
                x2many.Add((field, value));
                continue;
            }
            columns[name] = ToColumn(model, field, value);
        }
        _ = creating;
        return (columns, x2many);
    }

    private static object? ToColumn(ModelDef model, FieldDef field, object? value)
    {
        var bad = () => OdooException.Value(
            $"Wrong value for {model.Name}.{field.Name}: {Domain.Show(value)} is not a valid {field.TypeName}");
        if (value is null || (value is false && field.Type != FieldType.Boolean))
        {
            return field.Type switch { FieldType.Integer => 0L, FieldType.Float or FieldType.Monetary => 0.0, _ => null };
        }
        switch (field.Type)
        {
            case FieldType.Char or FieldType.Text or FieldType.Html:
                return value switch
                {
                    string s => s.Replace("\0", "", StringComparison.Ordinal),
                    long or double => System.Convert.ToString(value, CultureInfo.InvariantCulture),
                    _ => throw bad(),
                };
            case FieldType.Selection:
                return value is string sel && field.Selection!.Any(s => s.Value == sel) ? sel
                    : throw OdooException.Value($"Wrong value for {model.Name}.{field.Name}: {Domain.Show(value)}");
            case FieldType.Integer:
                return value switch
                {
                    long l when l is >= int.MinValue and <= int.MaxValue => (int)l,
                    bool b => b ? 1 : 0,
                    double d when d == Math.Floor(d) && Math.Abs(d) <= int.MaxValue => (int)d,
                    _ => throw bad(),
                };
            case FieldType.Many2one:
                return value switch
                {
                    long l when l is > 0 and <= int.MaxValue => (int)l,
                    IList<object?> { Count: > 0 } pair when pair[0] is long l && l is > 0 and <= int.MaxValue => (int)l,
                    _ => throw bad(),
                };
            case FieldType.Float or FieldType.Monetary:
            {
                var d = value switch
                {
                    long l => l,
                    double dd => dd,
                    bool b => b ? 1.0 : 0.0,
                    _ => throw bad(),
                };
                if (!double.IsFinite(d))
                {
                    throw bad();
                }
                return field.Type == FieldType.Monetary ? (object)(decimal)d : d;
            }
            case FieldType.Boolean:
                return Values.Truthy(value);
            case FieldType.Date:
                return value switch
                {
                    string s when s.Length >= 10 && DateOnly.TryParseExact(
                        s[..10], Values.DateFormat, CultureInfo.InvariantCulture, DateTimeStyles.None, out var d) => d,
                    DateTime dt => DateOnly.FromDateTime(dt),
                    _ => throw bad(),
                };
            case FieldType.Datetime:
                return value switch
                {
                    string s when Values.TryParseDateTime(s, out var dt) => dt,
                    DateTime dt => DateTime.SpecifyKind(dt, DateTimeKind.Unspecified),
                    _ => throw bad(),
                };
            case FieldType.Binary:
                try
                {
                    return value switch
                    {
                        byte[] bytes => bytes,
                        string s => System.Convert.FromBase64String(s),
                        _ => throw bad(),
                    };
                }
                catch (FormatException)
                {
                    throw bad();
                }
            default:
                throw bad();
        }
    }
}
