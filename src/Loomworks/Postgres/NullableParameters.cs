using Npgsql;
using NpgsqlTypes;

namespace Loomworks.Postgres;

/// <summary>Parameters that may be NULL: their type is named, since PostgreSQL cannot infer one from a NULL.</summary>
public static class NullableParameters
{
    /// <summary>Adds <paramref name="value"/> as a positional parameter of <paramref name="type"/>, NULL when it is null.</summary>
    public static NpgsqlParameter AddNullable(this NpgsqlParameterCollection parameters, NpgsqlDbType type, object? value)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        return parameters.AddWithValue(type, value ?? DBNull.Value);
    }
}
