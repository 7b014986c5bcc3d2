using System.Globalization;
using Npgsql;

namespace Loomworks.Records;

/// <summary>Collects positional parameters ($1, $2…) and fresh table aliases while a statement is assembled.</summary>
public sealed class SqlBuilder
{
    private int _aliases;

    public List<NpgsqlParameter> Parameters { get; } = [];

    /// <summary>The context's active_test: archived records are left out of x2many sub-searches too, as in Odoo.</summary>
    public bool ActiveTest { get; set; } = true;

    /// <summary>Adds <paramref name="value"/> as a parameter and returns its placeholder.</summary>
    public string Add(object value)
    {
        Parameters.Add(new NpgsqlParameter { Value = value });
        return "$" + Parameters.Count.ToString(CultureInfo.InvariantCulture);
    }

    public string NewAlias() => "t" + (++_aliases).ToString(CultureInfo.InvariantCulture);

    public NpgsqlCommand Command(string sql, NpgsqlConnection connection, NpgsqlTransaction? transaction)
    {
        var command = new NpgsqlCommand(sql, connection, transaction);
        foreach (var parameter in Parameters)
        {
            command.Parameters.Add(parameter);
        }
        return command;
    }

    /// <summary>The statement with its parameters, for a batch.</summary>
    public NpgsqlBatchCommand BatchCommand(string sql)
    {
        var command = new NpgsqlBatchCommand(sql);
        foreach (var parameter in Parameters)
        {
            command.Parameters.Add(parameter);
        }
        return command;
    }

    /// <summary>A quoted column of <paramref name="alias"/>; the name always comes from the model registry, never from input.</summary>
    public static string Column(string alias, string column) => alias + ".\"" + column + "\"";
}
