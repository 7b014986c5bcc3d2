using Loomworks.Postgres;
using Npgsql;

namespace Loomworks.Testing;

/// <summary>One statement at a time, for setting up and checking: through a pooled database or a connection string.</summary>
public static class Sql
{
    public static async Task ExecuteAsync(this PooledDatabase database, string sql, params object[] parameters)
    {
        await using var command = database.CreateCommand(sql);
        foreach (var parameter in parameters)
        {
            command.Parameters.AddWithValue(parameter);
        }
        await command.ExecuteNonQueryAsync();
    }

    /// <summary>A statement that may run longer than a command's default 30 seconds (loading a large table, say).</summary>
    public static async Task ExecuteAsync(this PooledDatabase database, string sql, TimeSpan timeout)
    {
        await using var command = database.CreateCommand(sql);
        command.CommandTimeout = (int)timeout.TotalSeconds;
        await command.ExecuteNonQueryAsync();
    }

    /// <summary>The first column of the first row, or default when it is NULL or there is no row.</summary>
    public static async Task<T?> ScalarAsync<T>(this PooledDatabase database, string sql, params object[] parameters)
    {
        await using var command = database.CreateCommand(sql);
        foreach (var parameter in parameters)
        {
            command.Parameters.AddWithValue(parameter);
        }
        return Value<T>(await command.ExecuteScalarAsync());
    }

    /// <summary>Runs <paramref name="sql"/> on a connection of its own (no pool), so nothing is left open afterwards.</summary>
    public static async Task ExecuteAsync(PostgresEndpoint endpoint, string database, string sql, params object[] parameters)
    {
        await using var connection = await OpenUnpooledAsync(endpoint, database);
        await using var command = new NpgsqlCommand(sql, connection);
        foreach (var parameter in parameters)
        {
            command.Parameters.AddWithValue(parameter);
        }
        await command.ExecuteNonQueryAsync();
    }

    /// <summary>As <see cref="ExecuteAsync(PostgresEndpoint, string, string, object[])"/>, returning the first value.</summary>
    public static async Task<T?> ScalarAsync<T>(PostgresEndpoint endpoint, string database, string sql, params object[] parameters)
    {
        await using var connection = await OpenUnpooledAsync(endpoint, database);
        await using var command = new NpgsqlCommand(sql, connection);
        foreach (var parameter in parameters)
        {
            command.Parameters.AddWithValue(parameter);
        }
        return Value<T>(await command.ExecuteScalarAsync());
    }

    public static async Task<NpgsqlConnection> OpenUnpooledAsync(PostgresEndpoint endpoint, string database)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        var connection = new NpgsqlConnection(endpoint.ConnectionString(database) + ";Pooling=false");
        try
        {
            await connection.OpenAsync();
            return connection;
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }

    private static T? Value<T>(object? value) => value is DBNull or null ? default : (T)value;
}
