using System.Globalization;
using System.Text.RegularExpressions;

namespace Loomworks.Configuration;

/// <summary>How a configuration value is checked and read.</summary>
public enum ConfigValueKind
{
    Text,
    WholeNumber,
    Switch,
    Regex,
    LogLevel,
    AddressList,
}

/// <summary>One key of <c>loomworks.conf</c>: its default, its environment names and how it is validated.</summary>
public sealed record ConfigKey(
    string Name,
    string? Default,
    ConfigValueKind Kind,
    string Description,
    string? ContainerVariable = null,
    bool Secret = false,
    int Minimum = int.MinValue,
    int Maximum = int.MaxValue)
{
    /// <summary><c>LOOMWORKS_&lt;KEY&gt;</c>; the seed's own keys already start with loomworks_, so the prefix is not doubled.</summary>
    public string EnvironmentVariable =>
        "LOOMWORKS_" + (Name.StartsWith("loomworks_", StringComparison.Ordinal) ? Name["loomworks_".Length..] : Name)
            .ToUpperInvariant();

    /// <summary>Returns why <paramref name="value"/> is not acceptable for this key, or null when it is.</summary>
    public string? Validate(string value)
    {
        switch (Kind)
        {
            case ConfigValueKind.WholeNumber:
                if (!int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out var number))
                {
                    return $"'{value}' is not a whole number";
                }
                if (number < Minimum || number > Maximum)
                {
                    return $"{number} is outside {Minimum}..{Maximum}";
                }
                return null;
            case ConfigValueKind.Switch:
                return ConfigValues.TryParseBoolean(value, out _) ? null : $"'{value}' is not a boolean (True or False)";
            case ConfigValueKind.Regex:
                try
                {
                    _ = new Regex(value, RegexOptions.None, TimeSpan.FromSeconds(1));
                    return null;
                }
                catch (ArgumentException e)
                {
                    return $"'{value}' is not a valid regular expression: {e.Message}";
                }
            case ConfigValueKind.LogLevel:
                return ConfigValues.TryParseLogLevel(value, out _)
                    ? null
                    : $"'{value}' is not a log level ({string.Join(", ", ConfigValues.LogLevelNames)})";
            case ConfigValueKind.AddressList:
                var bad = value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                    .FirstOrDefault(a => !System.Net.IPAddress.TryParse(a, out _) && !System.Net.IPNetwork.TryParse(a, out _));
                return bad is null ? null : $"'{bad}' is not an IP address or network (such as 10.0.0.0/8)";
            default:
                return null;
        }
    }
}

/// <summary>
/// Every key Loomworks reads. Odoo's keys keep Odoo's names and defaults so an Odoo configuration file works
/// here; the seed's loomworks_* keys are ours. Later features add their keys to this table and nowhere else.
/// </summary>
public static class ConfigKeys
{
    public static readonly ConfigKey DbHost = new("db_host", null, ConfigValueKind.Text,
        "PostgreSQL host or socket directory. Empty: run the embedded cluster under data_dir/postgres.", "DB_HOST");
    public static readonly ConfigKey DbPort = new("db_port", null, ConfigValueKind.WholeNumber,
        "PostgreSQL port (5432 for an external server; the embedded cluster listens on 54320 unless set).", "DB_PORT",
        Minimum: 1, Maximum: 65535);
    public static readonly ConfigKey DbUser = new("db_user", null, ConfigValueKind.Text,
        "PostgreSQL role Loomworks connects as (embedded: postgres).", "DB_USER");
    public static readonly ConfigKey DbPassword = new("db_password", null, ConfigValueKind.Text,
        "Password of db_user.", "DB_PASSWORD", Secret: true);
    public static readonly ConfigKey DbName = new("db_name", null, ConfigValueKind.Text,
        "Comma-separated list of databases that may be served when no dbfilter is set.", "DB_NAME");
    public static readonly ConfigKey DbFilter = new("dbfilter", null, ConfigValueKind.Regex,
        "Regular expression a database name must match whole (%h = host, %d = first label of the host).", "DB_FILTER");
    public static readonly ConfigKey DbMaxConn = new("db_maxconn", "64", ConfigValueKind.WholeNumber,
        "PostgreSQL connections this instance holds at most, across all databases (at least 4).", Minimum: 4, Maximum: 10000);
    public static readonly ConfigKey DbSslMode = new("db_sslmode", "prefer", ConfigValueKind.Text,
        "SSL mode for connections to an external PostgreSQL (disable, prefer, require, verify-full).");
    public static readonly ConfigKey ListDb = new("list_db", "True", ConfigValueKind.Switch,
        "Allow listing and managing databases (the database manager).");
    public static readonly ConfigKey AdminPasswd = new("admin_passwd", null, ConfigValueKind.Text,
        "Master password. No default: database management and the admin API stay off until it is set.", "ADMIN_PASSWD",
        Secret: true);
    public static readonly ConfigKey DataDir = new("data_dir", null, ConfigValueKind.Text,
        "Where Loomworks keeps the embedded cluster, the filestore and backups " +
        "(default /var/lib/loomworks as root, else ~/.local/share/Loomworks).");
    public static readonly ConfigKey StateDir = new("loomworks_state_dir", null, ConfigValueKind.Text,
        "Folder outside data_dir where the server records the embedded cluster it created, so that a later start finding " +
        "data_dir empty refuses instead of creating a new one (default: /var/lib/loomworks.state for /etc/loomworks and " +
        "as root, else the folder of the configuration file in use, else $XDG_STATE_HOME/loomworks).");
    public static readonly ConfigKey HttpInterface = new("http_interface", "", ConfigValueKind.Text,
        "Address to listen on; empty means every interface.");
    public static readonly ConfigKey HttpPort = new("http_port", "8069", ConfigValueKind.WholeNumber,
        "HTTP port.", Minimum: 0, Maximum: 65535);
    public static readonly ConfigKey GeventPort = new("gevent_port", "8072", ConfigValueKind.WholeNumber,
        "Kept for Odoo compatibility; long-polling is served on http_port.", Minimum: 1, Maximum: 65535);
    public static readonly ConfigKey ProxyMode = new("proxy_mode", "False", ConfigValueKind.Switch,
        "Trust X-Forwarded-For/-Host/-Proto, but only from loomworks_trusted_proxies.", "PROXY_MODE");
    public static readonly ConfigKey Workers = new("workers", "0", ConfigValueKind.WholeNumber,
        "Kept for Odoo compatibility; requests are served by a thread pool.", "WORKERS", Minimum: 0, Maximum: 1024);
    public static readonly ConfigKey MaxCronThreads = new("max_cron_threads", "2", ConfigValueKind.WholeNumber,
        "Background jobs that may run at once.", "MAX_CRON_THREADS", Minimum: 0, Maximum: 64);
    public static readonly ConfigKey LimitMemorySoft = new("limit_memory_soft", "2147483648", ConfigValueKind.Text,
        "Kept for Odoo compatibility (bytes).", "LIMIT_MEMORY_SOFT");
    public static readonly ConfigKey LimitMemoryHard = new("limit_memory_hard", "2684354560", ConfigValueKind.Text,
        "Kept for Odoo compatibility (bytes).", "LIMIT_MEMORY_HARD");
    public static readonly ConfigKey LimitTimeCpu = new("limit_time_cpu", "60", ConfigValueKind.WholeNumber,
        "Kept for Odoo compatibility (seconds).", "LIMIT_TIME_CPU", Minimum: 0);
    public static readonly ConfigKey LimitTimeReal = new("limit_time_real", "120", ConfigValueKind.WholeNumber,
        "Longest a request may run, in seconds.", "LIMIT_TIME_REAL", Minimum: 0);
    public static readonly ConfigKey LimitRequest = new("limit_request", "65536", ConfigValueKind.WholeNumber,
        "Kept for Odoo compatibility.", Minimum: 0);
    public static readonly ConfigKey LogLevel = new("log_level", "info", ConfigValueKind.LogLevel,
        "Odoo's log levels: debug_sql, debug_rpc_answer, debug_rpc, debug, info, warn, error, critical.", "LOG_LEVEL");
    public static readonly ConfigKey LogFormat = new("loomworks_log_format", "text", ConfigValueKind.Text,
        "text (one line per entry) or json (one JSON object per line).");
    public static readonly ConfigKey MgmtDb = new("loomworks_mgmt_db", "loomworks_mgmt", ConfigValueKind.Text,
        "The management database.");
    public static readonly ConfigKey TrustedProxies = new("loomworks_trusted_proxies", "127.0.0.1,::1", ConfigValueKind.AddressList,
        "Comma-separated addresses whose X-Forwarded-* headers are trusted when proxy_mode is on.");
    public static readonly ConfigKey ShutdownTimeout = new("loomworks_shutdown_timeout", "30", ConfigValueKind.WholeNumber,
        "Seconds SIGTERM waits for in-flight requests before stopping.", Minimum: 0, Maximum: 3600);
    public static readonly ConfigKey TenantRouting = new("loomworks_tenant_routing", "subdomain", ConfigValueKind.Text,
        "How tenants are found besides the header and db: subdomain or dbfilter.");
    public static readonly ConfigKey BaseDomain = new("loomworks_base_domain", null, ConfigValueKind.Text,
        "Tenants are served at <subdomain>.<loomworks_base_domain>.");
    public static readonly ConfigKey TenantHeader = new("loomworks_tenant_header", "X-Loomworks-Tenant", ConfigValueKind.Text,
        "Header that names the tenant for internal services; empty switches it off.");
    public static readonly ConfigKey StrictIsolation = new("loomworks_strict_isolation", "True", ConfigValueKind.Switch,
        "Refuse a credential used against another tenant's database.");
    public static readonly ConfigKey AuditCrossTenant = new("loomworks_audit_cross_tenant", "True", ConfigValueKind.Switch,
        "Record refused cross-tenant attempts in the management database.");
    public static readonly ConfigKey BackupRepo = new("loomworks_backup_repo", null, ConfigValueKind.Text,
        "pgBackRest repository (default data_dir/backup).");
    public static readonly ConfigKey SnapshotRetentionDays = new("loomworks_snapshot_retention_days", "30", ConfigValueKind.WholeNumber,
        "Days snapshots and backups are kept.", Minimum: 1, Maximum: 3650);
    public static readonly ConfigKey AutoSnapshotInterval = new("loomworks_auto_snapshot_interval", "3600", ConfigValueKind.WholeNumber,
        "Seconds between automatic snapshots; 0 switches them off.", Minimum: 0);
    public static readonly ConfigKey KeepPreRestoreHours = new("loomworks_keep_pre_restore_hours", "24", ConfigValueKind.WholeNumber,
        "Hours the database replaced by a restore is kept for 'restore --undo'.", Minimum: 0);
    public static readonly ConfigKey OplogRetentionDays = new("loomworks_oplog_retention_days", "30", ConfigValueKind.WholeNumber,
        "Days the operation log keeps row changes for undo.", Minimum: 1, Maximum: 3650);
    public static readonly ConfigKey PgBinDir = new("loomworks_pg_bindir", null, ConfigValueKind.Text,
        "Folder of PostgreSQL's server programs for the embedded cluster (default: pg_config --bindir, then /usr/lib/postgresql/*/bin).");
    public static readonly ConfigKey ArchiveTimeout = new("loomworks_archive_timeout", "60", ConfigValueKind.WholeNumber,
        "Seconds after which PostgreSQL switches to a new WAL segment so it gets archived.", Minimum: 1, Maximum: 3600);
    public static readonly ConfigKey DemoTenant = new("loomworks_demo_tenant", "False", ConfigValueKind.Switch,
        "On the first start, create the tenant 'demo' (administrator admin / admin) and print its URL.");
    public static readonly ConfigKey RestoreMaxSizeMb = new("loomworks_restore_max_size_mb", "102400", ConfigValueKind.WholeNumber,
        "Largest backup the database manager accepts, uploaded and unpacked (MB); bigger ones are refused as zip bombs.",
        Minimum: 1);
    public static readonly ConfigKey RestoreMaxUploads = new("loomworks_restore_max_uploads", "2", ConfigValueKind.WholeNumber,
        "Restore uploads (/web/database/restore and db.restore) spooled to data_dir/tmp at once; more are refused with 503.",
        Minimum: 1, Maximum: 64);
    public static readonly ConfigKey RestoreSpoolMaxMb = new("loomworks_restore_spool_max_mb", "204800", ConfigValueKind.WholeNumber,
        "Most MB all restore uploads together may hold in data_dir/tmp; an upload that would pass it is refused with 503.",
        Minimum: 1);
    public static readonly ConfigKey BackupFullIntervalDays = new("loomworks_backup_full_interval_days", "7", ConfigValueKind.WholeNumber,
        "Days between scheduled full pgBackRest backups; 0 switches scheduled backups off.", Minimum: 0, Maximum: 365);
    public static readonly ConfigKey BackupDiffIntervalHours = new("loomworks_backup_diff_interval_hours", "24",
        ConfigValueKind.WholeNumber,
        "Hours between scheduled differential backups; 0 switches them off.", Minimum: 0, Maximum: 8760);
    public static readonly ConfigKey AttachmentMaxMb = new("loomworks_attachment_max_mb", "64", ConfigValueKind.WholeNumber,
        "Largest attachment (ir.attachment datas) a client may store, in MB; bigger ones are refused with a UserError.",
        Minimum: 1, Maximum: 4096);
    public static readonly ConfigKey RpcBodyMaxMb = new("loomworks_rpc_body_max_mb", "0", ConfigValueKind.WholeNumber,
        "Largest RPC request body (XML-RPC, JSON-RPC, JSON-2, /web/ JSON routes), in MB; bigger ones get 413. " +
        "0: just enough for the largest attachment, base64-encoded (loomworks_attachment_max_mb x 1.4 + 1).", Minimum: 0, Maximum: 8192);
    public static readonly ConfigKey RpcBodiesInFlightMb = new("loomworks_rpc_bodies_in_flight_mb", "256", ConfigValueKind.WholeNumber,
        "Memory (MB) the RPC request bodies being read and handled may hold together; a body that would pass it gets 503 " +
        "with Retry-After.", Minimum: 1, Maximum: 65536);
    public static readonly ConfigKey SessionIdleDays = new("loomworks_session_idle_days", "7", ConfigValueKind.WholeNumber,
        "Days a web session (session_id cookie) stays valid without being used.", Minimum: 1, Maximum: 3650);
    public static readonly ConfigKey RestoreScratchDir = new("loomworks_restore_scratch_dir", null, ConfigValueKind.Text,
        "Folder for the scratch copies of tenant restores (default data_dir/restore); PostgreSQL's user must reach it.");
    public static readonly ConfigKey RestoreInMemory = new("loomworks_restore_in_memory", "True", ConfigValueKind.Switch,
        "Keep a restore's scratch copy in memory (/dev/shm) when it needs less than half of the memory available, so its " +
        "gigabytes of throwaway writes never queue on the disk before the live tenants' commits; otherwise it goes to " +
        "loomworks_restore_scratch_dir.");
    public static readonly ConfigKey RestorePacedMbPerSecond = new("loomworks_restore_paced_mb_per_s", "20", ConfigValueKind.WholeNumber,
        "Rate (MB/s) at which a tenant restore loads its rows while other tenants are at work, whose commits wait for the " +
        "load's WAL; it loads at full speed while they are idle. 0: always at full speed.", Minimum: 0, Maximum: 100000);
    public static readonly ConfigKey PgDataDir = new("loomworks_pg_data_dir", null, ConfigValueKind.Text,
        "Data directory of the external PostgreSQL server (db_host) when it is on this machine: Loomworks then sets up " +
        "pgBackRest for it (pg1-path), as it does for the embedded cluster.");
    public static readonly ConfigKey PgBackRestConfig = new("loomworks_pgbackrest_config", null, ConfigValueKind.Text,
        "An operator-managed pgBackRest configuration file for the external server (db_host), used as is with " +
        "loomworks_pgbackrest_stanza; the server's archive_command must push to that stanza.");
    public static readonly ConfigKey PgBackRestStanza = new("loomworks_pgbackrest_stanza", "loomworks", ConfigValueKind.Text,
        "pgBackRest stanza of the external server (with loomworks_pg_data_dir or loomworks_pgbackrest_config).");
    public static readonly ConfigKey LoginCooldownAfter = new("loomworks_login_cooldown_after", "10", ConfigValueKind.WholeNumber,
        "Failed logins from one address to one database before that address must wait (Odoo's base.login_cooldown_after); "
        + "0 switches the cooldown off.",
        Minimum: 0, Maximum: 1000);
    public static readonly ConfigKey LoginCooldownDuration = new("loomworks_login_cooldown_duration", "60", ConfigValueKind.WholeNumber,
        "Seconds an address in cooldown waits after its last failed login (Odoo's base.login_cooldown_duration).",
        Minimum: 1, Maximum: 86400);

    /// <summary>All keys, in the order the README documents them.</summary>
    public static readonly IReadOnlyList<ConfigKey> All =
    [
        DbHost, DbPort, DbUser, DbPassword, DbName, DbFilter, DbMaxConn, DbSslMode, ListDb, AdminPasswd, DataDir, StateDir,
        HttpInterface, HttpPort, GeventPort, ProxyMode, Workers, MaxCronThreads, LimitMemorySoft, LimitMemoryHard,
        LimitTimeCpu, LimitTimeReal, LimitRequest, LogLevel, LogFormat, MgmtDb, TrustedProxies, ShutdownTimeout,
        TenantRouting, BaseDomain, TenantHeader, StrictIsolation, AuditCrossTenant, BackupRepo,
        SnapshotRetentionDays, AutoSnapshotInterval, KeepPreRestoreHours, OplogRetentionDays, PgBinDir, ArchiveTimeout,
        DemoTenant,
        RestoreMaxSizeMb, RestoreMaxUploads, RestoreSpoolMaxMb,
        BackupFullIntervalDays, BackupDiffIntervalHours,
        AttachmentMaxMb, RpcBodyMaxMb, RpcBodiesInFlightMb,
        SessionIdleDays,
        RestoreScratchDir, RestoreInMemory, RestorePacedMbPerSecond,
        PgDataDir, PgBackRestConfig, PgBackRestStanza,
        LoginCooldownAfter, LoginCooldownDuration,
    ];

    /// <summary>Odoo's other spellings of some flags (<c>-d</c>, <c>--database</c>, <c>--db-filter</c>, …), without dashes.</summary>
    public static readonly IReadOnlyDictionary<string, string[]> FlagAliases = new Dictionary<string, string[]>(StringComparer.Ordinal)
    {
        ["db_name"] = ["d", "database"],
        ["dbfilter"] = ["db-filter"],
        ["http_port"] = ["p"],
        ["db_user"] = ["r"],
        ["db_password"] = ["w"],
    };

    private static readonly Dictionary<string, ConfigKey> ByName = All.ToDictionary(k => k.Name, StringComparer.Ordinal);

    private static readonly Dictionary<string, ConfigKey> ByAlias = FlagAliases
        .SelectMany(a => a.Value.Select(alias => (alias, key: ByName[a.Key])))
        .ToDictionary(a => a.alias, a => a.key, StringComparer.Ordinal);

    /// <summary>
    /// Finds a key by its file name or a flag spelling without dashes (<c>http-port</c>, <c>p</c> and <c>http_port</c> alike).
    /// </summary>
    public static ConfigKey? Find(string name) =>
        ByAlias.GetValueOrDefault(name) ?? ByName.GetValueOrDefault(name.Replace('-', '_').ToLowerInvariant());
}
