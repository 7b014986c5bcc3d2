using System.Globalization;
using System.Text.RegularExpressions;
using Npgsql;

namespace Loomworks.Records;

/// <summary>
/// read_group: records grouped by fields (dates by day, week, month, quarter or year) with aggregates per group, in
/// Odoo's result shape. Every name in the statement comes from the model registry or a fixed table of functions.
/// </summary>
public sealed partial class RecordEnvironment
{
    /// <summary>More groupbys or aggregates than any report needs; past it the call is refused before SQL is built.</summary>
    public const int MaxGroupSpecs = 200;

    private static readonly Regex FieldSpec = new(@"^([A-Za-z0-9_]+)(?::([A-Za-z0-9_]+)(?:\(([A-Za-z0-9_]+)\))?)?$",
        RegexOptions.CultureInvariant);

    /// <summary>Odoo's aggregate functions and the SQL they become; <c>{0}</c> is the column.</summary>
    private static readonly Dictionary<string, string> Aggregates = new(StringComparer.Ordinal)
    {
        ["sum"] = "sum({0})", ["avg"] = "avg({0})", ["min"] = "min({0})", ["max"] = "max({0})",
        ["count"] = "count({0})", ["count_distinct"] = "count(DISTINCT {0})", ["array_agg"] = "array_agg({0})",
        ["bool_and"] = "bool_and({0})", ["bool_or"] = "bool_or({0})",
    };

    private static readonly string[] Granularities = ["hour", "day", "week", "month", "quarter", "year"];

    private sealed record GroupBy(string Spec, FieldDef Field, string? Granularity);

    private sealed record Aggregate(string Key, FieldDef? Field, string Function);

    /// <summary>
    /// Odoo's <c>read_group(domain, fields, groupby, offset=0, limit=None, orderby=False, lazy=True)</c>: one dictionary per
    /// group with the groupby values (a many2one as <c>[id, display_name]</c>, a date as its label plus <c>__range</c>),
    /// the aggregates under their names, the count (<c>&lt;groupby&gt;_count</c> when lazy, else <c>__count</c>),
    /// <c>__domain</c>, and <c>__context</c> for the groupbys a lazy call left for later.
    /// </summary>
    public async Task<List<Dictionary<string, object?>>> ReadGroupAsync(ModelDef model, object? domain, IReadOnlyList<string> fields,
        IReadOnlyList<string> groupby, long offset, long? limit, string? orderby, bool lazy, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(fields);
        ArgumentNullException.ThrowIfNull(groupby);
        access.Check(model, "read");
        if (fields.Count > MaxGroupSpecs || groupby.Count > MaxGroupSpecs)
        {
            throw OdooException.Value($"read_group takes at most {MaxGroupSpecs} fields and {MaxGroupSpecs} groupbys");
        }
        var groups = (lazy ? groupby.Take(1) : groupby).Select(spec => ParseGroupBy(model, spec)).ToList();
        var countKey = lazy && groups.Count == 1 ? groups[0].Field.Name + "_count" : "__count";
        var aggregates = ParseAggregates(model, fields, groups, countKey);

        var sql = new SqlBuilder();
        var where = Where(model, domain, "t0", sql);
        var tz = DatetimeZone();
        var tzParameter = tz is null || !groups.Any(g => g.Field.Type == FieldType.Datetime) ? null : sql.Add(tz.Id);
        var columns = new List<string>();
        var ordinals = new List<int>();
        for (var i = 0; i < groups.Count; i++)
        {
            columns.Add($"{GroupExpression(groups[i], tzParameter)} AS g{i}");
            ordinals.Add(columns.Count);
            if (groups[i].Field.Type == FieldType.Many2one)
            {
                var comodel = ModelRegistry.Get(groups[i].Field.Relation!);
                var displayName = string.Format(CultureInfo.InvariantCulture, comodel.Fields["display_name"].Sql!, "c");
                columns.Add($"(SELECT {displayName} FROM \"{comodel.Table}\" c WHERE c.id = t0.\"{groups[i].Field.Name}\") AS n{i}");
            }
        }
        columns.Add("count(*) AS c");
        for (var j = 0; j < aggregates.Count; j++)
        {
            var column = aggregates[j].Field is { } f ? Domain.Expression(f, "t0") : "*";
            columns.Add(string.Format(CultureInfo.InvariantCulture, Aggregates[aggregates[j].Function], column) + $" AS a{j}");
        }
        var text = $"SELECT {string.Join(", ", columns)} FROM \"{model.Table}\" t0 WHERE {where}";
        if (groups.Count > 0)
        {
            // Ordinals: the grouped expressions stay written once, with their parameters.
            text += " GROUP BY " + string.Join(", ", ordinals);
            text += " ORDER BY " + GroupOrder(model, orderby, groups, aggregates, countKey) + Page(offset, limit, sql);
        }
        var rows = await QueryAsync(text, sql, reader => ReadGroupRowsAsync(reader, ct), last: CommitsWithRead, ct);
        return rows.Select(row => FormatGroup(row, groups, aggregates, countKey, groupby, domain, tz, lazy)).ToList();
    }

    private static GroupBy ParseGroupBy(ModelDef model, string spec)
    {
        var parts = spec.Split(':');
        var field = parts.Length <= 2 ? model.Field(parts[0]) : null;
        if (field is null || field.Hidden)
        {
            throw OdooException.Value($"Invalid field {Domain.Show(parts[0])} on model {Domain.Show(model.Name)}");
        }
        if (!field.HasColumn || field.Type == FieldType.Binary || (field.Computed && !field.Stored))
        {
            throw OdooException.Value($"Field {model.Name}.{field.Name} is not a stored field, only stored fields (regular or " +
                "many2many) are valid for the 'groupby' parameter");
        }
        var dated = field.Type is FieldType.Date or FieldType.Datetime;
        var granularity = parts.Length == 2 ? parts[1] : dated ? "month" : null;
        if (granularity is not null && (!dated || !Granularities.Contains(granularity)
            || (granularity == "hour" && field.Type == FieldType.Date)))
        {
            throw OdooException.Value($"Invalid groupby specification {Domain.Show(spec)}: a granularity ("
                + string.Join(", ", Granularities) + ") applies only to a date or datetime field");
        }
        return new GroupBy(spec, field, granularity);
    }

    private static List<Aggregate> ParseAggregates(ModelDef model, IReadOnlyList<string> fields, List<GroupBy> groups, string countKey)
    {
        var result = new List<Aggregate>();
        foreach (var spec in fields)
        {
            if (spec == "__count")
            {
                continue;
            }
            var match = spec is { Length: <= 200 } ? FieldSpec.Match(spec) : Match.Empty;
            if (!match.Success)
            {
                throw OdooException.Value($"Invalid field specification {Domain.Show(spec)}: write a field name, " +
                    "'field:aggregate' (amount_total:sum) or 'name:aggregate(field)'");
            }
            var key = match.Groups[1].Value;
            var function = match.Groups[2].Success ? match.Groups[2].Value : null;
            var fieldName = match.Groups[3].Success ? match.Groups[3].Value : key;
            var field = model.Field(fieldName);
            if (field is null || field.Hidden)
            {
                throw OdooException.Value($"Invalid field {Domain.Show(fieldName)} on model {Domain.Show(model.Name)}");
            }
            if (key == countKey || groups.Any(g => g.Spec == key || g.Field.Name == key))
            {
                continue; // Odoo reads a groupby field as the group's value, not as an aggregate.
            }
            function ??= DefaultAggregate(field);
            if (function is null)
            {
                continue; // Odoo leaves out fields without an aggregator (names, texts) silently.
            }
            if (!Aggregates.ContainsKey(function))
            {
                throw OdooException.Value($"Invalid aggregate method {Domain.Show(function)} for {Domain.Show(spec)}: use one of "
                    + string.Join(", ", Aggregates.Keys));
            }
            if (!field.HasColumn || field.Type == FieldType.Binary)
            {
                throw OdooException.Value($"Cannot aggregate field {Domain.Show(fieldName)}: it is not stored");
            }
            CheckAggregate(model, field, function, spec);
            result.RemoveAll(a => a.Key == key);
            result.Add(new Aggregate(key, field.Name == "id" && function == "count" ? null : field, function));
        }
        return result;
    }

    private static string? DefaultAggregate(FieldDef field) =>
        field.Name != "id" && field.Type is FieldType.Integer or FieldType.Float or FieldType.Monetary ? "sum" : null;

    private static void CheckAggregate(ModelDef model, FieldDef field, string function, string spec)
    {
        var numeric = field.Type is FieldType.Integer or FieldType.Float or FieldType.Monetary;
        var fits = function switch
        {
            "sum" or "avg" => numeric,
            "min" or "max" => numeric || field.Type is FieldType.Date or FieldType.Datetime or FieldType.Char or FieldType.Selection
                || field.Type == FieldType.Many2one,
            "bool_and" or "bool_or" => field.Type == FieldType.Boolean,
            _ => true,
        };
        if (!fits)
        {
            throw OdooException.Value(
                $"Invalid aggregate method {Domain.Show(function)} for {Domain.Show(spec)}: "
                + $"{model.Name}.{field.Name} is a {field.TypeName} field");
        }
    }

    /// <summary>The context's tz when it names a known zone: datetimes are then grouped by the user's days, as in Odoo.</summary>
    private TimeZoneInfo? DatetimeZone()
    {
        if (Context.TryGetValue("tz", out var value) && value is string { Length: > 0 and <= 64 } name
            && name.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '/' or '-' or '+')
            && TimeZoneInfo.TryFindSystemTimeZoneById(name, out var zone))
        {
            return zone;
        }
        return null;
    }

    private static string GroupExpression(GroupBy group, string? tzParameter)
    {
        var column = Domain.Expression(group.Field, "t0");
        switch (group.Field.Type)
        {
            case FieldType.Boolean:
                return $"coalesce({column}, false)";
            case FieldType.Date:
                return $"date_trunc('{group.Granularity}', {column})::date";
            case FieldType.Datetime:
                var local = tzParameter is null ? column : $"timezone({tzParameter}::text, timezone('UTC', {column}))";
                return $"date_trunc('{group.Granularity}', {local})";
            default:
                return column;
        }
    }

    /// <summary>The ORDER BY of the groups: the caller's terms, each a groupby or an aggregate, then the groupbys.</summary>
    private static string GroupOrder(ModelDef model, string? orderby, List<GroupBy> groups, List<Aggregate> aggregates, string countKey)
    {
        string Key(int i) => groups[i].Field.Type == FieldType.Many2one ? $"n{i}" : $"g{i}";
        var parts = new List<string>();
        foreach (var term in (orderby ?? "").Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            var words = term.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            var direction = words.Length > 1 ? words[1].ToUpperInvariant() : "ASC";
            var nulls = words.Length > 2 ? string.Join(' ', words[2..]).ToUpperInvariant() : null;
            var name = words[0];
            var group = groups.FindIndex(g => g.Spec == name || g.Field.Name == name.Split(':')[0]);
            var aggregate = aggregates.FindIndex(a => a.Key == name);
            var column = group >= 0 ? Key(group)
                : aggregate >= 0 ? $"a{aggregate}"
                : name == "__count" || name == countKey ? "c"
                : null;
            if (column is null || words.Length > 4 || direction is not ("ASC" or "DESC")
                || nulls is not (null or "NULLS FIRST" or "NULLS LAST"))
            {
                throw OdooException.Value($"Invalid orderby {Domain.Show(orderby)} for model {model.Name}: order term "
                    + $"{Domain.Show(term)} is not a valid aggregate nor valid groupby (with an optional asc/desc)");
            }
            parts.Add($"{column} {direction}" + (nulls is null ? "" : " " + nulls));
        }
        parts.AddRange(Enumerable.Range(0, groups.Count).Select(i => groups[i].Field.Type == FieldType.Many2one
            ? $"{Key(i)} ASC, g{i} ASC" : $"{Key(i)} ASC"));
        return string.Join(", ", parts);
    }

    private static async Task<List<object?[]>> ReadGroupRowsAsync(NpgsqlDataReader reader, CancellationToken ct)
    {
        var rows = new List<object?[]>();
        while (await reader.ReadAsync(ct))
        {
            var values = new object?[reader.FieldCount];
            for (var i = 0; i < values.Length; i++)
            {
                values[i] = reader.IsDBNull(i) ? null : reader.GetValue(i);
            }
            rows.Add(values);
        }
        return rows;
    }

    /// <summary>One row of the statement in Odoo's shape: groupby values, count, aggregates, __domain, __range, __context.</summary>
    private static Dictionary<string, object?> FormatGroup(object?[] values, List<GroupBy> groups, List<Aggregate> aggregates,
        string countKey, IReadOnlyList<string> groupby, object? domain, TimeZoneInfo? tz, bool lazy)
    {
        var row = new Dictionary<string, object?>(StringComparer.Ordinal);
        var sections = new List<List<object?>>();
        Dictionary<string, object?>? ranges = null;
        var position = 0;
        foreach (var group in groups)
        {
            var raw = values[position++];
            var name = group.Field.Name;
            switch (group.Field.Type)
            {
                case FieldType.Many2one:
                {
                    var label = values[position++] as string ?? "";
                    var id = raw is null ? (long?)null : System.Convert.ToInt64(raw, CultureInfo.InvariantCulture);
                    row[group.Spec] = id is null ? false : new List<object?> { id.Value, label };
                    sections.Add([new List<object?> { name, "=", id is null ? false : id.Value }]);
                    break;
                }
                case FieldType.Date or FieldType.Datetime:
                {
                    ranges ??= new Dictionary<string, object?>(StringComparer.Ordinal);
                    if (raw is null)
                    {
                        row[group.Spec] = false;
                        ranges[group.Spec] = false;
                        sections.Add([new List<object?> { name, "=", false }]);
                        break;
                    }
                    var start = raw is DateOnly d ? d.ToDateTime(TimeOnly.MinValue) : (DateTime)raw;
                    var end = Advance(start, group.Granularity!);
                    var (from, to) = group.Field.Type == FieldType.Date
                        ? (Values.FormatDate(DateOnly.FromDateTime(start)), Values.FormatDate(DateOnly.FromDateTime(end)))
                        : (Values.FormatDateTime(ToUtc(start, tz)), Values.FormatDateTime(ToUtc(end, tz)));
                    row[group.Spec] = DateLabel(start, group.Granularity!);
                    ranges[group.Spec] = new Dictionary<string, object?>(StringComparer.Ordinal) { ["from"] = from, ["to"] = to };
                    sections.Add(["&", new List<object?> { name, ">=", from }, new List<object?> { name, "<", to }]);
                    break;
                }
                default:
                {
                    var wire = raw is null ? false : ToWire(group.Field, raw);
                    row[group.Spec] = wire;
                    sections.Add([new List<object?> { name, "=", wire }]);
                    break;
                }
            }
        }
        row[countKey] = System.Convert.ToInt64(values[position++], CultureInfo.InvariantCulture);
        foreach (var aggregate in aggregates)
        {
            row[aggregate.Key] = AggregateToWire(aggregate, values[position++]);
        }
        row["__domain"] = AndDomains(domain, sections);
        if (ranges is not null)
        {
            row["__range"] = ranges;
        }
        if (lazy && groupby.Count > 1)
        {
            row["__context"] = new Dictionary<string, object?>(StringComparer.Ordinal)
            {
                ["group_by"] = groupby.Skip(1).Cast<object?>().ToList(),
            };
        }
        return row;
    }

    private static object? AggregateToWire(Aggregate aggregate, object? raw)
    {
        if (aggregate.Function is "count" or "count_distinct")
        {
            return raw is null ? 0L : System.Convert.ToInt64(raw, CultureInfo.InvariantCulture);
        }
        if (aggregate.Function == "array_agg")
        {
            return raw is Array array
                ? array.Cast<object?>().Select(v => v is null ? false : ToWire(aggregate.Field!, v)).ToList()
                : new List<object?>();
        }
        if (raw is null)
        {
            return false;
        }
        return aggregate.Function switch
        {
            "avg" => System.Convert.ToDouble(raw, CultureInfo.InvariantCulture),
            "bool_and" or "bool_or" => raw is true,
            _ when aggregate.Field!.Type == FieldType.Many2one => System.Convert.ToInt64(raw, CultureInfo.InvariantCulture),
            _ => ToWire(aggregate.Field!, raw),
        };
    }

    /// <summary>Odoo's expression.AND of the call's domain and each group's terms, in prefix notation.</summary>
    private static List<object?> AndDomains(object? domain, List<List<object?>> sections)
    {
        var parts = new List<List<object?>>();
        if (domain is IList<object?> { Count: > 0 } given)
        {
            parts.Add(Normalize(given));
        }
        parts.AddRange(sections);
        var result = new List<object?>();
        for (var i = 1; i < parts.Count; i++)
        {
            result.Add("&");
        }
        foreach (var part in parts)
        {
            result.AddRange(part);
        }
        return result;
    }

    /// <summary>Odoo's normalize_domain: the implicit ands between top-level terms written out.</summary>
    private static List<object?> Normalize(IList<object?> domain)
    {
        var result = new List<object?>();
        var expected = 1;
        foreach (var token in domain)
        {
            if (expected == 0)
            {
                result.Insert(0, "&");
                expected = 1;
            }
            expected += token switch { "&" or "|" => 1, "!" => 0, _ => -1 };
            result.Add(token);
        }
        return result;
    }

    private static DateTime Advance(DateTime start, string granularity) => granularity switch
    {
        "hour" => start.AddHours(1),
        "day" => start.AddDays(1),
        "week" => start.AddDays(7),
        "month" => start.AddMonths(1),
        "quarter" => start.AddMonths(3),
        _ => start.AddYears(1),
    };

    private static DateTime ToUtc(DateTime local, TimeZoneInfo? tz) => tz is null
        ? local
        : TimeZoneInfo.ConvertTimeToUtc(DateTime.SpecifyKind(local, DateTimeKind.Unspecified), tz);

    /// <summary>The group's label as Odoo writes it in English: "07 Dec 2026", "W49 2026", "December 2026", "Q4 2026", "2026".</summary>
    private static string DateLabel(DateTime start, string granularity)
    {
        var c = CultureInfo.InvariantCulture;
        switch (granularity)
        {
            case "hour":
                return start.ToString("hh:00 dd MMM", c);
            case "day":
                return start.ToString("dd MMM yyyy", c);
            case "week":
            {
                // en_US weeks: Sunday first, week 1 holds the 1st of January (Odoo's date_utils.weeknumber).
                var sunday = start.Date.AddDays(-(int)start.DayOfWeek);
                var year = sunday.AddDays(6).Year;
                var jan1 = new DateTime(year, 1, 1, 0, 0, 0, DateTimeKind.Unspecified);
                var firstSunday = jan1.AddDays(-(int)jan1.DayOfWeek);
                var week = (int)((sunday - firstSunday).TotalDays / 7) + 1;
                return string.Create(c, $"W{week} {year:0000}");
            }
            case "month":
                return start.ToString("MMMM yyyy", c);
            case "quarter":
                return string.Create(c, $"Q{(start.Month - 1) / 3 + 1} {start.Year:0000}");
            default:
                return start.ToString("yyyy", c);
        }
    }
}
