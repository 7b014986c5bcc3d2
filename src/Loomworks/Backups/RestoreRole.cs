using System.Security.Cryptography;
using System.Text;
using Loomworks.Postgres;
using Loomworks.Tenancy;
using Npgsql;

namespace Loomworks.Backups;

/// <summary>
/// The role a restore loads its backup as: the new tenant's own login role, with no attribute beyond LOGIN, CONNECT
/// on its database and CREATE in its public schema only. A backup is a tenant's own file, so whatever it asks for
/// beyond that (COPY … TO PROGRAM, CREATE ROLE, ALTER SYSTEM, CREATE EXTENSION, another role's session) fails and
/// the restore with it. The database stays owned by the server's administrator, as a provisioned one is: an owner may
/// install trusted extensions, whose scripts run as a superuser. The role's password is random, set only while the
/// restore runs, and reaches the server as a SCRAM verifier, never as text a server log could show.
/// </summary>
internal sealed class RestoreRole
{
    private readonly PostgresEndpoint _endpoint;
    private readonly string _database;
    private readonly string _password;

    private RestoreRole(PostgresEndpoint endpoint, string database, string password)
    {
        _endpoint = endpoint;
        _database = database;
        _password = password;
        Name = TenantProvisioner.RoleNameFor(database);
    }

    public string Name { get; }

    /// <summary>How psql and pg_restore log in as the role.</summary>
    public PgLogin Login => new(Name, _password);

    /// <summary>Creates (or resets) the role of the new, empty <paramref name="database"/> and grants it what a load needs.</summary>
    public static async Task<RestoreRole> PrepareAsync(TenantDataSources dataSources, string database, CancellationToken cancellationToken)
    {
        var role = new RestoreRole(dataSources.Endpoint, database, Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(24)));
        var quotedRole = DatabaseAdmin.QuoteIdentifier(role.Name);
        var quotedDatabase = DatabaseAdmin.QuoteIdentifier(database);
        var attributes = $"LOGIN NOINHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS VALID UNTIL 'infinity' " +
            $"PASSWORD '{ScramVerifier(role._password)}'";
        await using (var server = await dataSources.For("postgres").OpenConnectionAsync(cancellationToken))
        {
            var (exists, _, related, _) = await role.StateAsync(server, cancellationToken);
            if (related)
            {
                // A role left by something else, member of or granted to other roles: its rights are not ours to judge.
                throw new DatabaseManagerException(DatabaseManagerError.AlreadyExists,
                    $"the login role {role.Name} of database '{database}' already exists with role memberships; drop it first");
            }
            await ExecuteAsync(server, exists ? $"ALTER ROLE {quotedRole} {attributes}" : $"CREATE ROLE {quotedRole} {attributes}",
                cancellationToken);
            await ExecuteAsync(server, $"""
                REVOKE CONNECT, TEMPORARY ON DATABASE {quotedDatabase} FROM PUBLIC;
                GRANT CONNECT, TEMPORARY ON DATABASE {quotedDatabase} TO {quotedRole}
                """, cancellationToken);
        }
        await using (var admin = await OpenAdminAsync(dataSources.Endpoint, database, cancellationToken))
        {
            await ExecuteAsync(admin, $"GRANT USAGE, CREATE ON SCHEMA public TO {quotedRole}", cancellationToken);
        }
        return role;
    }

    /// <summary>A session of the role in the restored database, outside the shared pools.</summary>
    public async Task<NpgsqlConnection> OpenAsync(CancellationToken cancellationToken)
    {
        var builder = new NpgsqlConnectionStringBuilder(_endpoint.ConnectionString(_database, "loomworks-backups"))
        {
            Username = Name,
            Password = _password,
            Pooling = false,
        };
        var connection = new NpgsqlConnection(builder.ConnectionString);
        await connection.OpenAsync(cancellationToken);
        return connection;
    }

    /// <summary>
    /// Refuses a load that gave the role more than it had or left something the administrator's later work would run:
    /// a role may grant itself to others and set its own session defaults, and the schema table, read by the
    /// administrator when the tenant is adopted, must be a table and not a view that calls the file's functions.
    /// </summary>
    public async Task CheckLoadAsync(CancellationToken cancellationToken)
    {
        await using var admin = await OpenAdminAsync(_endpoint, _database, cancellationToken);
        var (_, privileged, related, settings) = await StateAsync(admin, cancellationToken);
        var problem = privileged ? "gave its login role new attributes"
            : related ? "granted its login role to other roles or others to it"
            : settings ? "set session defaults on its login role (ALTER ROLE … SET)"
            : null;
        await using (var kind = new NpgsqlCommand(
            "SELECT relkind::text FROM pg_class WHERE relname = 'loomworks_schema_migrations' AND relnamespace = 'public'::regnamespace",
            admin))
        {
            if (problem is null && await kind.ExecuteScalarAsync(cancellationToken) is string relkind && relkind != "r")
            {
                problem = "made loomworks_schema_migrations something other than a table";
            }
        }
        if (problem is not null)
        {
            throw new DatabaseManagerException(DatabaseManagerError.InvalidBackup, $"the backup {problem}; nothing was restored");
        }
    }

    /// <summary>Takes the password away again: the tenant's role logs in only as provisioning set it up.</summary>
    public async Task EndAsync(TenantDataSources dataSources, CancellationToken cancellationToken)
    {
        await using var server = await dataSources.For("postgres").OpenConnectionAsync(cancellationToken);
        await ExecuteAsync(server, $"ALTER ROLE {DatabaseAdmin.QuoteIdentifier(Name)} PASSWORD NULL", cancellationToken);
    }

    /// <summary>
    /// Whether the role exists, has any attribute beyond LOGIN, takes part in memberships (besides the administrator's
    /// own, which PostgreSQL 16 grants a non-superuser that creates a role) and has session defaults.
    /// </summary>
    private async Task<(bool Exists, bool Privileged, bool Related, bool Settings)> StateAsync(NpgsqlConnection connection,
        CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand("""
            SELECT r.rolsuper OR r.rolcreaterole OR r.rolcreatedb OR r.rolreplication OR r.rolbypassrls,
                   EXISTS (SELECT 1 FROM pg_auth_members m
                            WHERE m.member = r.oid
                               OR (m.roleid = r.oid AND m.member <> (SELECT oid FROM pg_roles WHERE rolname = current_user))),
                   EXISTS (SELECT 1 FROM pg_db_role_setting s WHERE s.setrole = r.oid)
              FROM pg_roles r WHERE r.rolname = $1
            """, connection);
        command.Parameters.AddWithValue(Name);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await reader.ReadAsync(cancellationToken)
            ? (true, reader.GetBoolean(0), reader.GetBoolean(1), reader.GetBoolean(2))
            : (false, false, false, false);
    }

    /// <summary>
    /// PostgreSQL's SCRAM-SHA-256 verifier of <paramref name="password"/> (RFC 5802/7677): the server stores it as it is,
    /// and the password itself never appears in a statement.
    /// </summary>
    internal static string ScramVerifier(string password)
    {
        const int iterations = 4096;
        var salt = RandomNumberGenerator.GetBytes(16);
        var salted = Rfc2898DeriveBytes.Pbkdf2(Encoding.UTF8.GetBytes(password), salt, iterations, HashAlgorithmName.SHA256, 32);
        var storedKey = SHA256.HashData(HMACSHA256.HashData(salted, "Client Key"u8));
        var serverKey = HMACSHA256.HashData(salted, "Server Key"u8);
        return $"SCRAM-SHA-256${iterations}:{Convert.ToBase64String(salt)}$" +
            $"{Convert.ToBase64String(storedKey)}:{Convert.ToBase64String(serverKey)}";
    }

    private static async Task<NpgsqlConnection> OpenAdminAsync(PostgresEndpoint endpoint, string database,
        CancellationToken cancellationToken)
    {
        var connection = new NpgsqlConnection(endpoint.ConnectionString(database, "loomworks-backups") + ";Pooling=false");
        await connection.OpenAsync(cancellationToken);
        return connection;
    }

    private static async Task ExecuteAsync(NpgsqlConnection connection, string sql, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }
}
