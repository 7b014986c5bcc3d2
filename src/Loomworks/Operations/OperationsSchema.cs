using Loomworks.Postgres;
using Npgsql;

namespace Loomworks.Operations;

/// <summary>
/// Tenant-database migrations of the operation log (versions 2000–2099; the ERP core owns 1000–1999), in
/// Operations/Migrations: the log, the change table the capture triggers write, the trigger functions, the log row
/// written with the commit, and the server-side functions that find conflicts and undo operations (loomworks_undo, one
/// statement for any number of operations). Those that capture the ERP core's tables are <see cref="ErpTenantSetup"/>'s.
/// </summary>
public static class OperationsSchema
{
    /// <summary>The transaction-local setting that carries the current operation id to the row triggers.</summary>
    public const string OperationSetting = "loomworks.operation_id";

    public static IReadOnlyList<Migration> All { get; } = MigrationFiles.Load("Operations/Migrations");

    /// <summary>Brings a tenant database's operation-log schema to the latest version.</summary>
    public static Task<int> ApplyAsync(NpgsqlConnection connection, CancellationToken cancellationToken) =>
        SchemaMigrator.ApplyAsync(connection, All, cancellationToken);
}
