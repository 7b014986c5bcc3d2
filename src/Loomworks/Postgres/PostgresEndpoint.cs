using Npgsql;

namespace Loomworks.Postgres;

/// <summary>Where a PostgreSQL server is and how to log in to it; gives a connection string per database.</summary>
public sealed record PostgresEndpoint(string Host, int Port, string Username, string? Password, SslMode SslMode = SslMode.Disable)
{
    public string ConnectionString(string database, string applicationName = "loomworks")
    {
        var builder = new NpgsqlConnectionStringBuilder
        {
            Host = Host,
            Port = Port,
            Username = Username,
            Database = database,
            SslMode = SslMode,
            ApplicationName = applicationName,
        };
        if (Password is not null)
        {
            builder.Password = Password;
        }
        return builder.ConnectionString;
    }
}
