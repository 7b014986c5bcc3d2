using System.Globalization;
using System.Runtime.CompilerServices;

namespace Loomworks.Records;

/// <summary>
/// Odoo's domains (prefix <c>&amp;</c>, <c>|</c>, <c>!</c>, implicit and, terms <c>[path, operator, value]</c>) compiled
/// to a parameterised WHERE clause. Field names are looked up in the registry before they reach SQL; values only ever
/// travel as parameters.
/// </summary>
public static class Domain
{
    public static readonly IReadOnlySet<string> Operators = new HashSet<string>(StringComparer.Ordinal)
    {
        "=", "!=", "<>", "<", ">", "<=", ">=", "=?", "=like", "=ilike", "like", "not like", "ilike", "not ilike",
        "in", "not in", "child_of", "parent_of", "any", "not any",
    };

    private abstract record Node;
    private sealed record And(Node Left, Node Right) : Node;
    private sealed record Or(Node Left, Node Right) : Node;
    private sealed record Not(Node Inner) : Node;
    private sealed record Leaf(object? Path, object? Operator, object? Value, object? Original) : Node;
    private sealed record Constant(bool Value) : Node;

    /// <summary>True when the top level of <paramref name="domain"/> has a term on <paramref name="field"/>.</summary>
    public static bool Mentions(object? domain, string field) =>
        domain is IList<object?> items && items.Any(i => i is IList<object?> { Count: 3 } t && t[0] is string p
            && (p == field || p.StartsWith(field + ".", StringComparison.Ordinal)));

    /// <summary>
    /// The most elements (terms and operators) one domain may have: far beyond any screen's filters, and well inside the
    /// statement's parameter limit. Many values of one field belong in a single <c>in</c> term.
    /// </summary>
    public const int MaxElements = 10_000;

    /// <summary>Compiles <paramref name="domain"/> over <paramref name="model"/> (rows aliased <paramref name="alias"/>).</summary>
    public static string Compile(ModelDef model, object? domain, string alias, SqlBuilder sql)
    {
        try
        {
            return Emit(model, Parse(domain), alias, sql);
        }
        catch (InsufficientExecutionStackException)
        {
            throw OdooException.Value($"Invalid domain {Show(domain)}: it is nested too deeply; write it with fewer nested operators");
        }
    }

    private static Node Parse(object? domain)
    {
        if (domain is null or false)
        {
            return new Constant(true);
        }
        if (domain is not IList<object?> items)
        {
            throw OdooException.Value($"Invalid domain {Show(domain)}: a domain is a list of terms");
        }
        if (items.Count > MaxElements)
        {
            throw OdooException.Value($"Invalid domain {Show(domain)}: it has {items.Count} elements, at most {MaxElements} are "
                + "accepted; put the values of one field in a single 'in' term");
        }
        // Read from the right, as a stack machine: no recursion, however long a chain of operators is.
        var stack = new Stack<Node>();
        for (var i = items.Count - 1; i >= 0; i--)
        {
            switch (items[i])
            {
                case "&" or "|":
                    if (stack.Count < 2)
                    {
                        throw OdooException.Value($"Domain {Show(domain)} is syntactically not correct.");
                    }
                    var left = stack.Pop();
                    var right = stack.Pop();
                    stack.Push(items[i] is "&" ? new And(left, right) : new Or(left, right));
                    break;
                case "!":
                    if (stack.Count < 1)
                    {
                        throw OdooException.Value($"Domain {Show(domain)} is syntactically not correct.");
                    }
                    stack.Push(new Not(stack.Pop()));
                    break;
                case IList<object?> { Count: 3 } term:
                    // Odoo's TRUE_LEAF (1, '=', 1) and FALSE_LEAF (0, '=', 1).
                    stack.Push(term[0] is long l && term[1] is "=" && term[2] is long r && r == 1 && l is 0 or 1
                        ? new Constant(l == 1)
                        : new Leaf(term[0], term[1], term[2], term));
                    break;
                default:
                    throw OdooException.Value($"Invalid leaf {Show(items[i])} in domain {Show(domain)}");
            }
        }
        var nodes = new List<Node>(stack);
        return nodes.Count == 0 ? new Constant(true) : Conjunction(nodes, 0, nodes.Count);
    }

    /// <summary>The implicit and of consecutive terms as a balanced tree, so that compiling it never recurses deeply.</summary>
    private static Node Conjunction(List<Node> nodes, int start, int end)
    {
        if (end - start == 1)
        {
            return nodes[start];
        }
        var middle = start + (end - start) / 2;
        return new And(Conjunction(nodes, start, middle), Conjunction(nodes, middle, end));
    }

    /// <summary>
    /// The deepest nesting of different operators (a run of ands or of ors counts once) a domain may have: PostgreSQL's
    /// parser gives up on deeper expressions, and no filter needs them.
    /// </summary>
    public const int MaxNesting = 100;

    private static string Emit(ModelDef model, Node node, string alias, SqlBuilder sql, int depth = 0)
    {
        RuntimeHelpers.EnsureSufficientExecutionStack();
        if (depth > MaxNesting)
        {
            throw OdooException.Value(
                $"Invalid domain: its operators are nested more than {MaxNesting} levels deep; write it with fewer nested operators");
        }
        return node switch
        {
            Constant c => c.Value ? "TRUE" : "FALSE",
            And or Or => "(" + string.Join(node is And ? " AND " : " OR ",
                Operands(node).Select(o => Emit(model, o, alias, sql, depth + 1))) + ")",
            Not n => $"(NOT {Emit(model, n.Inner, alias, sql, depth + 1)})",
            Leaf leaf => EmitLeaf(model, leaf, alias, sql),
            _ => throw new InvalidOperationException("unknown domain node"),
        };
    }

    /// <summary>The operands of a run of ands (or of ors) in their order: (a and (b and c)) is one level of a, b, c.</summary>
    private static List<Node> Operands(Node root)
    {
        var operands = new List<Node>();
        var pending = new Stack<Node>();
        pending.Push(root);
        while (pending.Count > 0)
        {
            var node = pending.Pop();
            if (node.GetType() == root.GetType() && node is And or Or)
            {
                var (left, right) = node is And a ? (a.Left, a.Right) : (((Or)node).Left, ((Or)node).Right);
                pending.Push(right);
                pending.Push(left);
            }
            else
            {
                operands.Add(node);
            }
        }
        return operands;
    }

    private static string EmitLeaf(ModelDef model, Leaf leaf, string alias, SqlBuilder sql)
    {
        if (leaf.Path is not string path || path.Length == 0)
        {
            throw OdooException.Value($"Invalid field {Show(leaf.Path)} in leaf {Show(leaf.Original)}");
        }
        if (leaf.Operator is not string rawOperator || !Operators.Contains(rawOperator.ToLowerInvariant()))
        {
            throw OdooException.Value($"Invalid operator {Show(leaf.Operator)} in domain term {Show(leaf.Original)}");
        }
        var op = rawOperator.ToLowerInvariant();
        if (op == "<>")
        {
            op = "!=";
        }
        var value = leaf.Value;
        var dot = path.IndexOf('.', StringComparison.Ordinal);
        var name = dot < 0 ? path : path[..dot];
        var field = model.Field(name);
        if (field is null || field.Hidden)
        {
            throw OdooException.Value($"Invalid field {model.Name}.{name} in leaf {Show(leaf.Original)}");
        }
        if (dot >= 0)
        {
            if (!field.IsRelational)
            {
                throw OdooException.Value($"Invalid field {model.Name}.{name} in leaf {Show(leaf.Original)}: {name} is not relational");
            }
            List<object?> inner = [new List<object?> { path[(dot + 1)..], op, value }];
            return EmitLeaf(model, new Leaf(name, "any", inner, leaf.Original), alias, sql);
        }

        // Odoo's normalisation of the operator against the value.
        if (value is IList<object?> && op is "=" or "!=" && !field.IsX2Many)
        {
            op = op == "=" ? "in" : "not in";
        }
        if (value is bool && op is "in" or "not in")
        {
            op = op == "in" ? "=" : "!=";
        }
        if (op == "=?")
        {
            if (value is null or false)
            {
                return "TRUE";
            }
            op = "=";
        }

        if (op is "any" or "not any")
        {
            if (!field.IsRelational)
            {
                throw OdooException.Value(
                    $"Operator {op} is only for relational fields, not {model.Name}.{name} in leaf {Show(leaf.Original)}");
            }
            var comodel = ModelRegistry.Get(field.Relation!);
            var sub = SubQuery(comodel, value, sql, field.IsX2Many);
            var membership = Membership(model, field, alias, sub, sql);
            return op == "any" ? membership : $"(NOT {membership})";
        }
        if (op is "child_of" or "parent_of")
        {
            return EmitHierarchy(model, field, op, value, alias, sql, leaf);
        }
        if (field.Type == FieldType.Many2one)
        {
            return EmitMany2one(model, field, op, value, alias, sql, leaf);
        }
        if (field.IsX2Many)
        {
            return EmitX2Many(model, field, op, value, alias, sql, leaf);
        }
        return EmitScalar(model, field, op, value, Expression(field, alias), sql, leaf);
    }

    /// <summary>The SQL of a field with a value in its table: its column or its computed expression.</summary>
    public static string Expression(FieldDef field, string alias) =>
        field.Sql is { } template ? "(" + string.Format(CultureInfo.InvariantCulture, template, alias) + ")"
        : field.HasColumn ? SqlBuilder.Column(alias, field.Name)
        : throw OdooException.Value($"Field {field.Name} cannot be searched");

    private static string SubQuery(ModelDef comodel, object? domain, SqlBuilder sql, bool activeOnly = false)
    {
        var a = sql.NewAlias();
        var active = activeOnly && sql.ActiveTest && comodel.HasActive && !Mentions(domain, "active") ? $" AND {a}.active" : "";
        return $"SELECT {a}.id FROM \"{comodel.Table}\" {a} WHERE {Compile(comodel, domain, a, sql)}{active}";
    }

    /// <summary>"The record's <paramref name="field"/> points to one of the rows of <paramref name="subQuery"/>".</summary>
    private static string Membership(ModelDef model, FieldDef field, string alias, string subQuery, SqlBuilder sql)
    {
        switch (field.Type)
        {
            case FieldType.Many2one:
                return $"({Expression(field, alias)} IS NOT NULL AND {Expression(field, alias)} IN ({subQuery}))";
            case FieldType.One2many:
            {
                var comodel = ModelRegistry.Get(field.Relation!);
                var c = sql.NewAlias();
                return $"({alias}.id IN (SELECT {c}.\"{field.InverseName}\" FROM \"{comodel.Table}\" {c} " +
                       $"WHERE {c}.\"{field.InverseName}\" IS NOT NULL AND {c}.id IN ({subQuery})))";
            }
            case FieldType.Many2many:
            {
                var r = sql.NewAlias();
                return $"({alias}.id IN (SELECT {r}.\"{field.Column1}\" FROM \"{field.RelationTable}\" {r} " +
                       $"WHERE {r}.\"{field.Column2}\" IN ({subQuery})))";
            }
            default:
                throw OdooException.Value($"Field {model.Name}.{field.Name} is not relational");
        }
    }

    private static string EmitMany2one(ModelDef model, FieldDef field, string op, object? value, string alias, SqlBuilder sql, Leaf leaf)
    {
        var comodel = ModelRegistry.Get(field.Relation!);
        var isText = value is string || value is IList<object?> list && list.Count > 0 && list.All(v => v is string);
        if (isText && op is "=" or "!=" or "like" or "not like" or "ilike" or "not ilike" or "=like" or "=ilike" or "in" or "not in")
        {
            // A many2one compared to text matches by the target's display name.
            var positive = op switch { "!=" => "=", "not like" => "like", "not ilike" => "ilike", "not in" => "in", _ => op };
            var sub = SubQuery(comodel, new List<object?> { new List<object?> { "display_name", positive, value } }, sql);
            var column = Expression(field, alias);
            return positive == op ? $"({column} IN ({sub}))" : $"({column} IS NULL OR {column} NOT IN ({sub}))";
        }
        return EmitScalar(model, field, op, value, Expression(field, alias), sql, leaf);
    }

    private static string EmitX2Many(ModelDef model, FieldDef field, string op, object? value, string alias, SqlBuilder sql, Leaf leaf)
    {
        var comodel = ModelRegistry.Get(field.Relation!);
        if (value is null or false && op is "=" or "!=")
        {
            var everything = SubQuery(comodel, null, sql, activeOnly: true);
            var exists = Membership(model, field, alias, everything, sql);
            return op == "=" ? $"(NOT {exists})" : exists;
        }
        var negative = op is "!=" or "not in" or "not like" or "not ilike";
        var positive = op switch { "!=" => "=", "not in" => "in", "not like" => "like", "not ilike" => "ilike", _ => op };
        var target = value is string || value is IList<object?> l && l.Any(v => v is string) ? "display_name" : "id";
        if (target == "id" && positive == "=")
        {
            positive = "in";
        }
        var targetValue = value is IList<object?> || target != "id" ? value : new List<object?> { value };
        var sub = SubQuery(comodel, new List<object?> { new List<object?> { target, positive, targetValue } }, sql, activeOnly: true);
        var membership = Membership(model, field, alias, sub, sql);
        _ = leaf;
        return negative ? $"(NOT {membership})" : membership;
    }

    private static string EmitHierarchy(ModelDef model, FieldDef field, string op, object? value, string alias, SqlBuilder sql, Leaf leaf)
    {
        var target = field.Name == "id" ? model : field.Relation is { } r ? ModelRegistry.Get(r) : null;
        if (target is null)
        {
            throw OdooException.Value(
                $"Operator {op} needs a relational field or id, not {model.Name}.{field.Name} in leaf {Show(leaf.Original)}");
        }
        // Roots: ids, or records whose display name matches a text.
        string roots;
        if (value is string || value is IList<object?> texts && texts.Any(v => v is string))
        {
            var byName = new List<object?> { "display_name", value is string ? "ilike" : "in", value };
            roots = SubQuery(target, new List<object?> { byName }, sql);
        }
        else
        {
            roots = "SELECT unnest(" + sql.Add(Ids(value, leaf)) + "::integer[])";
        }
        string set;
        if (!target.HasParent)
        {
            set = roots;
        }
        else
        {
            var c = sql.NewAlias();
            var table = "\"" + target.Table + "\"";
            set = op == "child_of"
                ? $"WITH RECURSIVE {c}_r(id) AS ({roots} UNION SELECT {c}.id FROM {table} {c} JOIN {c}_r ON {c}.parent_id = {c}_r.id)"
                    + $" SELECT id FROM {c}_r"
                : $"WITH RECURSIVE {c}_r(id) AS ({roots} UNION SELECT {c}.parent_id FROM {table} {c} JOIN {c}_r ON {c}.id = {c}_r.id"
                    + $" WHERE {c}.parent_id IS NOT NULL) SELECT id FROM {c}_r";
        }
        return field.Name == "id" ? $"({alias}.id IN ({set}))" : Membership(model, field, alias, set, sql);
    }

    private static string EmitScalar(ModelDef model, FieldDef field, string op, object? value, string column, SqlBuilder sql, Leaf leaf)
    {
        switch (op)
        {
            case "=" or "!=" when value is null or false && field.Type != FieldType.Boolean:
                return op == "=" ? $"({column} IS NULL)" : $"({column} IS NOT NULL)";
            case "=" or "!=" when field.Type == FieldType.Boolean:
            {
                var truth = Truthy(value);
                var isTrue = op == "=" ? truth : !truth;
                return isTrue ? $"({column} = true)" : $"({column} IS NULL OR {column} = false)";
            }
            case "=":
                return $"({column} = {sql.Add(Convert(model, field, value, op, leaf))})";
            case "!=":
                return $"({column} != {sql.Add(Convert(model, field, value, op, leaf))} OR {column} IS NULL)";
            case "<" or ">" or "<=" or ">=":
                if (value is null or false)
                {
                    return "FALSE";
                }
                return $"({column} {op} {sql.Add(Convert(model, field, value, op, leaf))})";
            case "like" or "ilike" or "not like" or "not ilike" or "=like" or "=ilike":
            {
                if (value is null or false)
                {
                    // Odoo: ('name', 'ilike', False) is "name is not set".
                    return op.StartsWith("not", StringComparison.Ordinal) ? $"({column} IS NOT NULL)" : $"({column} IS NULL)";
                }
                var text = value switch
                {
                    string s => s,
                    long or double or bool => System.Convert.ToString(value, CultureInfo.InvariantCulture)!,
                    _ => throw OdooException.Value($"Invalid value {Show(value)} for operator {op} in leaf {Show(leaf.Original)}"),
                };
                var pattern = op.StartsWith('=') ? text : "%" + text + "%";
                var sqlOp = op.TrimStart('=').Replace("ilike", "ILIKE", StringComparison.Ordinal)
                    .Replace("like", "LIKE", StringComparison.Ordinal).Replace("not", "NOT", StringComparison.Ordinal);
                var p = sql.Add(pattern);
                return op.StartsWith("not", StringComparison.Ordinal)
                    ? $"({column}::text {sqlOp} {p} OR {column} IS NULL)"
                    : $"({column}::text {sqlOp} {p})";
            }
            case "in" or "not in":
            {
                if (value is not IList<object?> items)
                {
                    items = [value];
                }
                var hasNull = items.Any(v => v is null or false) && field.Type != FieldType.Boolean;
                var values = items.Where(v => !(v is null or false) || field.Type == FieldType.Boolean)
                    .Select(v => Convert(model, field, v, op, leaf)).ToList();
                var array = sql.Add(TypedArray(field, values));
                if (op == "in")
                {
                    var inSql = values.Count == 0 ? "FALSE" : $"{column} = ANY({array})";
                    return hasNull ? $"({inSql} OR {column} IS NULL)" : $"({inSql})";
                }
                var notInSql = values.Count == 0 ? "TRUE" : $"{column} <> ALL({array})";
                return hasNull ? $"({notInSql} AND {column} IS NOT NULL)" : $"({notInSql} OR {column} IS NULL)";
            }
            default:
                throw OdooException.Value($"Invalid operator {Show(op)} for field {model.Name}.{field.Name} in leaf {Show(leaf.Original)}");
        }
    }

    private static bool Truthy(object? value) => value switch
    {
        null or false => false,
        long l => l != 0,
        double d => d != 0,
        string s => s.Length > 0,
        _ => true,
    };

    private static long[] Ids(object? value, Leaf leaf) => value switch
    {
        long l => [l],
        IList<object?> list => list
            .Select(v => v is long l ? l : throw OdooException.Value($"Invalid id {Show(v)} in leaf {Show(leaf.Original)}"))
            .ToArray(),
        null or false => [],
        _ => throw OdooException.Value($"Invalid value {Show(value)} in leaf {Show(leaf.Original)}"),
    };

    private static Array TypedArray(FieldDef field, List<object> values) => field.Type switch
    {
        FieldType.Integer or FieldType.Many2one => values.Cast<long>().ToArray(),
        FieldType.Float or FieldType.Monetary => values.Cast<double>().ToArray(),
        FieldType.Boolean => values.Cast<bool>().ToArray(),
        FieldType.Date => values.Cast<DateOnly>().ToArray(),
        FieldType.Datetime => values.Cast<DateTime>().ToArray(),
        _ => values.Cast<string>().ToArray(),
    };

    /// <summary>A domain value converted to the parameter type of the field, or a ValueError naming the term.</summary>
    private static object Convert(ModelDef model, FieldDef field, object? value, string op, Leaf leaf)
    {
        var bad = () => OdooException.Value(
            $"Invalid value {Show(value)} for field {model.Name}.{field.Name} ({field.TypeName}) in leaf {Show(leaf.Original)}");
        switch (field.Type)
        {
            case FieldType.Integer or FieldType.Many2one:
                return value switch
                {
                    long l => l,
                    bool b => b ? 1L : 0L,
                    double d when d == Math.Floor(d) && Math.Abs(d) < 9e18 => (long)d,
                    string s when long.TryParse(s, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var l) => l,
                    _ => throw bad(),
                };
            case FieldType.Float or FieldType.Monetary:
                return value switch
                {
                    long l => (double)l,
                    double d => d,
                    string s when double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) => d,
                    _ => throw bad(),
                };
            case FieldType.Boolean:
                return Truthy(value);
            case FieldType.Date:
                return value switch
                {
                    DateTime dt => DateOnly.FromDateTime(dt),
                    string s when s.Length >= 10
                        && DateOnly.TryParseExact(s[..10], "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out var d) => d,
                    _ => throw bad(),
                };
            case FieldType.Datetime:
                if (value is string { Length: 10 } day
                    && DateOnly.TryParseExact(day, "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out var date))
                {
                    // Odoo: a bare date against a datetime means the start of the day, or its end for > and <=.
                    return date.ToDateTime(op is ">" or "<=" ? new TimeOnly(23, 59, 59) : TimeOnly.MinValue);
                }
                return value switch
                {
                    DateTime dt => DateTime.SpecifyKind(dt, DateTimeKind.Unspecified),
                    string s when Values.TryParseDateTime(s, out var dt) => dt,
                    _ => throw bad(),
                };
            default:
                return value switch
                {
                    string s => s,
                    long or double => System.Convert.ToString(value, CultureInfo.InvariantCulture)!,
                    _ => throw bad(),
                };
        }
    }

    /// <summary>A Python-like rendering of a value for messages (lists in brackets, strings quoted).</summary>
    public static string Show(object? value) => value switch
    {
        null => "None",
        bool b => b ? "True" : "False",
        string s => "'" + (s.Length > 200 ? s[..200] + "…" : s) + "'",
        double d => d.ToString("R", CultureInfo.InvariantCulture),
        IList<object?> list => "[" + string.Join(", ", list.Take(20).Select(Show)) + (list.Count > 20 ? ", …" : "") + "]",
        IDictionary<string, object?> dict =>
            "{" + string.Join(", ", dict.Take(20).Select(kv => Show(kv.Key) + ": " + Show(kv.Value))) + "}",
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString() ?? "",
    };
}
