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
    private readonly TenantSchema _core = new();

    /// <summary>
    /// Tables never captured. API keys: a revoked key must stay revoked (an undo or rewind must not bring a leaked key
    /// back to life), and key hashes have no business in a log kept for weeks; creating and revoking keys are
    /// therefore not operations either.
    /// </summary>
    public static readonly IReadOnlySet<string> Uncaptured = new HashSet<string>(StringComparer.Ordinal) { ApiKeys.Table };

    private static ModelDef ApiKeys => ModelRegistry.ApiKeys;

    /// <summary>Column updates that are bookkeeping, not business changes: a login stamps login_date.</summary>
    public static readonly IReadOnlyDictionary<string, string[]> IgnoredUpdates =
        new Dictionary<string, string[]>(StringComparer.Ordinal) { [ModelRegistry.Users.Table] = ["login_date"] };

    /// <summary>
    /// Tables a model's deletion changes without being one of its fields, captured since migration 2013 so that undo
    /// brings them back too: a group's access rights go with it (ON DELETE CASCADE).
    /// </summary>
    private static readonly string[] CapturedSince2013 = ["ir_model_access"];

    /// <summary>The tables captured by migrations 2001 and 2004, whose SQL stays as it was.</summary>
    private static IReadOnlyList<string> FirstCaptured { get; } = ModelRegistry.All
        .SelectMany(m => m.FieldList.Where(f => f.Type == FieldType.Many2many).Select(f => f.RelationTable!).Prepend(m.Table))
        .Where(t => !t.StartsWith("loomworks_", StringComparison.Ordinal) && !Uncaptured.Contains(t))
        .Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();

    /// <summary>Every table of the registry's models and their many2many relations, but for the log's own and <see cref="Uncaptured"/>,
    /// and the tables their deletions change.</summary>
    public static IReadOnlyList<string> CapturedTables { get; } = FirstCaptured.Concat(CapturedSince2013)
        .Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();

    /// <summary>The log as a model: ids and users as integer columns, times in UTC without zone, JSON as text, and
    /// the values of hidden fields (password and key hashes) left out of values_before and values_after.</summary>
    private static readonly string ModelSql = ModelViewSql("CREATE", "loomworks_ai_operation_log") + $$"""
        -- Read-only for every group: the dispatcher refuses writes even to the superuser, these rows grant reading.
        INSERT INTO ir_model_access (name, model, group_id, perm_read, perm_write, perm_create, perm_unlink)
        SELECT 'access_loomworks_ai_operation_log_' || g.xml_id, '{{ModelRegistry.OperationLog.Name}}', g.id, true, false, false, false
        FROM res_groups g WHERE g.xml_id IN ('{{TenantSchema.SystemGroup}}', '{{TenantSchema.UserGroup}}', '{{TenantSchema.ReadOnlyGroup}}');
        """;

    private static string Hidden => "{" + string.Join(",", ModelRegistry.All.SelectMany(m => m.FieldList)
        .Where(f => f.Hidden).Select(f => f.Name).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal)) + "}";

    /// <summary>The model's view over <paramref name="source"/>: the log table (migration 2002), then the log as
    /// read with summaries from the change rows (migration 2007).</summary>
    private static string ModelViewSql(string verb, string source) => $$"""
        {{verb}} VIEW {{ModelRegistry.OperationLog.Table}} AS
        SELECT l.id::integer AS id,
               l.operation_type || coalesce(' ' || l.model_name, '') || ' #' || l.id AS name,
               l.session_id, l.agent_id, l.user_id::integer AS user_id, l.tool_name, l.operation_type, l.model_name,
               array_to_json(l.record_ids)::text AS record_ids,
               (SELECT jsonb_object_agg(e.key, e.value - '{{Hidden}}'::text[]) FROM jsonb_each(l.values_before) e)::text AS values_before,
               (SELECT jsonb_object_agg(e.key, e.value - '{{Hidden}}'::text[]) FROM jsonb_each(l.values_after) e)::text AS values_after,
               l.state, l.error_message, l.execution_time_ms, l.snapshot_id::integer AS snapshot_id, l.undone,
               l.undone_at AT TIME ZONE 'utc' AS undone_at, l.undone_by::integer AS undone_by, l.undo_of::integer AS undo_of,
               l.change_count,
               l.user_id::integer AS create_uid, l.created_at AT TIME ZONE 'utc' AS create_date,
               l.user_id::integer AS write_uid, coalesce(l.undone_at, l.created_at) AT TIME ZONE 'utc' AS write_date
        FROM {{source}} l;
        """;

    public static IReadOnlyList<Migration> All { get; } =
    [
        .. TenantSchema.All,
        .. OperationsSchema.All,
        new(2001, "change capture on the ERP core's tables", ChangeCapture.RowTriggerInstallSql(FirstCaptured, IgnoredUpdates)),
        new(2002, "the operation log as the model loomworks.ai.operation.log", ModelSql),
        new(2004, "statement-level change capture on the ERP core's tables", ChangeCapture.InstallSql(FirstCaptured, IgnoredUpdates)),
        new(2007, "the operation log model reads what an operation changed from its change rows",
            ModelViewSql("CREATE OR REPLACE", "loomworks_operation_log_read")),
        new(2013, "change capture on the access rights a group's deletion removes",
            string.Concat(CapturedSince2013.Select(t => $"SELECT loomworks_install_capture('{t}', '{{}}');\n"))),
    ];

    public IReadOnlyList<Migration> Migrations => All;

    public Task CreateAdminUserAsync(NpgsqlConnection tenantDatabase, string login, string passwordHash, CancellationToken ct) =>
        _core.CreateAdminUserAsync(tenantDatabase, login, passwordHash, ct);

    public Task<int> CountUsersAsync(NpgsqlConnection tenantDatabase, CancellationToken ct) => _core.CountUsersAsync(tenantDatabase, ct);
}
