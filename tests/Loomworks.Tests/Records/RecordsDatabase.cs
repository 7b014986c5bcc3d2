using Loomworks.Security;
using Loomworks.Operations;
using Loomworks.Postgres;
using Loomworks.Records;
using Loomworks.Tests.Infrastructure;
using Npgsql;

namespace Loomworks.Tests.Records;

/// <summary>A tenant database with the ERP schema applied and an admin, for tests that drive the ORM directly.</summary>
public sealed class RecordsDatabase
{
    private RecordsDatabase(string name, PooledDatabase dataSource)
    {
        Name = name;
        DataSource = dataSource;
    }

    public string Name { get; }
    public PooledDatabase DataSource { get; }

    public static async Task<RecordsDatabase> CreateAsync(PostgresFixture postgres, string name, string adminPassword = "admin")
    {
        await postgres.CreateDatabaseAsync(name);
        var dataSource = postgres.DataSource(name);
        await using var connection = await dataSource.OpenConnectionAsync();
        var setup = new ErpTenantSetup();
        await SchemaMigrator.ApplyAsync(connection, setup.Migrations, CancellationToken.None);
        await setup.CreateAdminUserAsync(connection, "admin", Passwords.Hash(adminPassword), CancellationToken.None);
        return new RecordsDatabase(name, dataSource);
    }

    /// <summary>Runs <paramref name="action"/> as <paramref name="uid"/> in a transaction that commits when it returns.</summary>
    public async Task<T> AsAsync<T>(long uid, Func<RecordEnvironment, Task<T>> action, Dictionary<string, object?>? context = null)
    {
        await using var connection = await DataSource.OpenConnectionAsync();
        await using var transaction = await connection.BeginTransactionAsync();
        var access = await AccessRights.LoadAsync(connection, transaction, uid, CancellationToken.None);
        var result = await action(new RecordEnvironment(connection, transaction, access, context));
        await transaction.CommitAsync();
        return result;
    }

    public Task<T> AdminAsync<T>(Func<RecordEnvironment, Task<T>> action, Dictionary<string, object?>? context = null) =>
        AsAsync(2, action, context);
}
