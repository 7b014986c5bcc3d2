using Loomworks.Postgres;
using Loomworks.Records;
using Loomworks.Tenancy;
using Npgsql;

namespace Loomworks.Operations;

/// <summary>
/// A tenant database as every tenant gets it: the ERP core's schema, the operation log, change capture on every
/// business table and many2many relation table of <see cref="ModelRegistry"/>, and the log readable as the model
/// <c>loomworks.ai.operation.log</c>. Operations owns versions 2000–2099.
/// </summary>
public sealed class ErpTenantSetup : ITenantDatabaseSetup
{
    /// <summary>
    /// Tables never captured. API keys: a revoked key must stay revoked (an undo or rewind must not bring a leaked key
    /// back to life), and key hashes have no business in a log kept for weeks; creating and revoking keys are
    /// therefore not operations either.
    /// </summary>
    public static readonly IReadOnlySet<string> Uncaptured = new HashSet<string>(StringComparer.Ordinal) { ApiKeys.Table };

    private static ModelDef ApiKeys => ModelRegistry.ApiKeys;

    /// <summary>
    /// Every table of the registry's models and their many2many relations, but for the log's own and
    /// <see cref="Uncaptured"/>, and the tables their deletions change: a group's access rights go with it (ON DELETE
    /// CASCADE), so undo brings them back too.
    /// </summary>
    public static IReadOnlyList<string> CapturedTables { get; } = ModelRegistry.All
        .SelectMany(m => m.FieldList.Where(f => f.Type == FieldType.Many2many).Select(f => f.RelationTable!).Prepend(m.Table))
        .Where(t => !t.StartsWith("loomworks_", StringComparison.Ordinal) && !Uncaptured.Contains(t))
        .Append("ir_model_access")
        .Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();

    /// <summary>
    /// The ERP core's migrations, the operation log's, and those in Operations/Migrations/Erp that capture the ERP core's
    /// tables and read the log as a model.
    /// </summary>
    public static IReadOnlyList<Migration> All { get; } =
    [
        .. TenantSchema.All,
        .. OperationsSchema.All,
        .. MigrationFiles.Load("Operations/Migrations/Erp"),
    ];

    public IReadOnlyList<Migration> Migrations => All;

    public Task CreateAdminUserAsync(NpgsqlConnection tenantDatabase, string login, string passwordHash, CancellationToken ct) =>
        TenantSchema.CreateAdminUserAsync(tenantDatabase, login, passwordHash, ct);

    public Task<int> CountUsersAsync(NpgsqlConnection tenantDatabase, CancellationToken ct) =>
        TenantSchema.CountUsersAsync(tenantDatabase, ct);
}
