namespace Loomworks.Records;

/// <summary>Odoo's field types, spelled as fields_get reports them.</summary>
// CA1720: the members are Odoo's type names (char, integer, float), which clients see; renaming them would hide that.
#pragma warning disable CA1720
public enum FieldType
{
    Char,
    Text,
    Html,
    Integer,
    Float,
    Monetary,
    Boolean,
    Date,
    Datetime,
    Selection,
    Many2one,
    One2many,
    Many2many,
    Binary,
}
#pragma warning restore CA1720

/// <summary>One field of a model: its Odoo name, type and meaning, and how it is stored.</summary>
public sealed record FieldDef(string Name, FieldType Type, string Label)
{
    public bool Required { get; init; }
    public bool ReadOnly { get; init; }
    public string? Help { get; init; }

    /// <summary>The comodel of a relational field.</summary>
    public string? Relation { get; init; }

    /// <summary>For one2many: the many2one on the comodel pointing back.</summary>
    public string? InverseName { get; init; }

    /// <summary>For many2many: the link table and its columns (this side, other side).</summary>
    public string? RelationTable { get; init; }
    public string? Column1 { get; init; }
    public string? Column2 { get; init; }

    public IReadOnlyList<(string Value, string Label)>? Selection { get; init; }

    /// <summary>Constant default applied by create and reported by default_get.</summary>
    public object? Default { get; init; }

    /// <summary>Computed by the ORM and never written by clients (display_name, totals).</summary>
    public bool Computed { get; init; }

    /// <summary>A computed field clients may also write (Odoo's inverse), such as ir.attachment's datas.</summary>
    public bool Inverse { get; init; }

    /// <summary>A computed field kept in a column, recomputed by the ORM when its inputs change.</summary>
    public bool Stored { get; init; }

    /// <summary>For a computed field without a column: its SQL, with {0} standing for the table alias.</summary>
    public string? Sql { get; init; }

    /// <summary>Never returned by read (password hashes, key hashes).</summary>
    public bool Hidden { get; init; }

    /// <summary>For many2one: what PostgreSQL does when the target row goes (Odoo's ondelete).</summary>
    public string OnDelete { get; init; } = "set null";

    public string TypeName => Type.ToString().ToLowerInvariant();
    public bool IsRelational => Type is FieldType.Many2one or FieldType.One2many or FieldType.Many2many;
    public bool IsX2Many => Type is FieldType.One2many or FieldType.Many2many;

    /// <summary>True when the field is a column of the model's table.</summary>
    public bool HasColumn => !IsX2Many && (!Computed || Stored);
}

/// <summary>A model: its Odoo name, table, fields and default order.</summary>
public sealed class ModelDef
{
    public ModelDef(string name, string table, string label, IEnumerable<FieldDef> fields, string order = "id",
        string recName = "name", string displayNameSql = "{0}.\"name\"")
    {
        Name = name;
        Table = table;
        Label = label;
        Order = order;
        RecName = recName;
        var all = new List<FieldDef>
        {
            new("id", FieldType.Integer, "ID") { ReadOnly = true },
            new("display_name", FieldType.Char, "Display Name") { ReadOnly = true, Computed = true, Sql = displayNameSql },
        };
        all.AddRange(fields);
        all.Add(new FieldDef("create_uid", FieldType.Many2one, "Created by") { Relation = "res.users", ReadOnly = true });
        all.Add(new FieldDef("create_date", FieldType.Datetime, "Created on") { ReadOnly = true });
        all.Add(new FieldDef("write_uid", FieldType.Many2one, "Last Updated by") { Relation = "res.users", ReadOnly = true });
        all.Add(new FieldDef("write_date", FieldType.Datetime, "Last Updated on") { ReadOnly = true });
        Fields = all.ToDictionary(f => f.Name, StringComparer.Ordinal);
        FieldList = all;
    }

    public string Name { get; }
    public string Table { get; }
    public string Label { get; }
    public string Order { get; }
    public string RecName { get; }
    public IReadOnlyDictionary<string, FieldDef> Fields { get; }
    public IReadOnlyList<FieldDef> FieldList { get; }
    public bool HasActive => Fields.ContainsKey("active");
    public bool HasParent => Fields.TryGetValue("parent_id", out var f) && f.Relation == Name;

    public FieldDef? Field(string name) => Fields.GetValueOrDefault(name);
}
