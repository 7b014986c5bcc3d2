using System.Data;
using Npgsql;

namespace Loomworks.Postgres;

/// <summary>
/// One database reached through the host's connection budget (<see cref="TenantDataSources"/>): every connection is
/// granted by the budget before it is opened and given back when the caller closes it. The handle is cheap and may
/// be kept; it holds no connection of its own.
/// </summary>
public sealed class PooledDatabase
{
    private readonly TenantDataSources _owner;

    internal PooledDatabase(TenantDataSources owner, string name)
    {
        _owner = owner;
        Name = name;
    }

    public string Name { get; }

    /// <summary>An open connection; disposing it gives it back to the budget, idle for the next caller of this database.</summary>
    public Task<NpgsqlConnection> OpenConnectionAsync(CancellationToken cancellationToken = default) =>
        _owner.OpenAsync(Name, cancellationToken);

    /// <summary>A command that takes a connection for each execution and gives it back when done.</summary>
    public PooledCommand CreateCommand(string sql) => new(this, sql);
}

/// <summary>A statement run on a connection granted for each execution, like a data source's own command.</summary>
public sealed class PooledCommand(PooledDatabase database, string sql) : IAsyncDisposable, IDisposable
{
    private readonly NpgsqlCommand _command = new(sql);

    public NpgsqlParameterCollection Parameters => _command.Parameters;

    public int CommandTimeout
    {
        get => _command.CommandTimeout;
        set => _command.CommandTimeout = value;
    }

    public Task<object?> ExecuteScalarAsync(CancellationToken cancellationToken = default) =>
        OnConnectionAsync(command => command.ExecuteScalarAsync(cancellationToken), cancellationToken);

    public Task<int> ExecuteNonQueryAsync(CancellationToken cancellationToken = default) =>
        OnConnectionAsync(command => command.ExecuteNonQueryAsync(cancellationToken), cancellationToken);

    private async Task<T> OnConnectionAsync<T>(Func<NpgsqlCommand, Task<T>> execute, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenConnectionAsync(cancellationToken);
        _command.Connection = connection;
        try
        {
            return await execute(_command);
        }
        finally
        {
            _command.Connection = null;
        }
    }

    /// <summary>A reader whose disposal gives the connection back.</summary>
    public async Task<NpgsqlDataReader> ExecuteReaderAsync(CancellationToken cancellationToken = default)
    {
        var connection = await database.OpenConnectionAsync(cancellationToken);
        try
        {
            _command.Connection = connection;
            return await _command.ExecuteReaderAsync(CommandBehavior.CloseConnection, cancellationToken);
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }

    public ValueTask DisposeAsync() => _command.DisposeAsync();

    public void Dispose() => _command.Dispose();
}
