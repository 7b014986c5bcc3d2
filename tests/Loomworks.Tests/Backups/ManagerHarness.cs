using Loomworks.Backups;
using Loomworks.Configuration;
using Loomworks.Filestore;
using Loomworks.Postgres;
using Loomworks.Server.Hosting;
using Loomworks.Tenancy;
using Loomworks.Tests.Infrastructure;
using Microsoft.Extensions.Logging.Abstractions;

namespace Loomworks.Tests.Backups;

/// <summary>A database manager over the test cluster with its own management database and data_dir.</summary>
public sealed class ManagerHarness : IAsyncDisposable
{
    private readonly PostgresFixture _pg;
    private readonly List<string> _databases = [];

    private ManagerHarness(PostgresFixture pg, string prefix)
    {
        _pg = pg;
        Prefix = prefix;
        DataSources = new TenantDataSources(pg.Endpoint);
    }

    public string Prefix { get; }
    public Scratch Scratch { get; } = new("bk");
    public TenantDataSources DataSources { get; }
    public ManagementDatabase Management { get; private set; } = null!;
    public FileStore FileStore { get; private set; } = null!;
    public string ManagementName => $"{Prefix}-mgmt";

    public static async Task<ManagerHarness> CreateAsync(PostgresFixture pg, string prefix)
    {
        var harness = new ManagerHarness(pg, prefix);
        await pg.CreateDatabaseAsync(harness.ManagementName);
        harness.Management = new ManagementDatabase(harness.DataSources.For(harness.ManagementName), ManagementMigrations.All);
        await harness.Management.MigrateAsync(CancellationToken.None);
        harness.FileStore = new FileStore(harness.Scratch.Path);
        return harness;
    }

    public DatabaseManager Manager(Action<string>? stepHook = null, int supportedSchema = 50, long maxBytes = 1L << 30) =>
        new(DataSources, Management, FileStore, new TenantRegistration(Management, new Loomworks.Tenancy.TenantLifecycle(Management,
            DataSources, new Loomworks.Tenancy.TenancyOptions(ManagementName, ManagementName + "_tpl", Scratch.Path, null, null, null, [],
                true, true))),
            new PgTools(_pg.Endpoint, PostgresBinaries.Locate().Directory),
            new DatabaseManagerOptions
            {
                DataDir = Scratch.Path,
                ManagementDatabase = ManagementName,
                SupportedSchemaVersion = supportedSchema,
                MaxRestoreBytes = maxBytes,
                StepHook = stepHook,
            },
            NullLogger<DatabaseManager>.Instance);

    public MasterPasswordGate Gate(string? adminPasswd, bool listDb = true) => new(
        new DatabaseManagerOptions { DataDir = Scratch.Path, ListDatabases = listDb },
        new Loomworks.Tenancy.MasterPassword(Management, adminPasswd));

    /// <summary>A name for this test's database, remembered so it is dropped at the end.</summary>
    public string Name(string suffix)
    {
        var name = $"{Prefix}-{suffix}";
        _databases.Add(name);
        return name;
    }

    /// <summary>A small Loomworks-like database: migrations table, partners, config parameters, crons, mail servers, two files.</summary>
    public async Task<string> SeedAsync(string suffix, int schemaVersion = 5, int partners = 3)
    {
        var name = Name(suffix);
        await _pg.CreateDatabaseAsync(name);
        await _pg.ExecuteAsync(name, $"""
            CREATE TABLE loomworks_schema_migrations (version integer PRIMARY KEY, name text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now());
            INSERT INTO loomworks_schema_migrations (version, name) VALUES ({schemaVersion}, 'seed');
            CREATE TABLE res_partner (id serial PRIMARY KEY, name text NOT NULL);
            INSERT INTO res_partner (name) SELECT 'partner ' || g FROM generate_series(1, {partners}) g;
            CREATE TABLE ir_config_parameter (id serial PRIMARY KEY, key text NOT NULL UNIQUE, value text NOT NULL);
            INSERT INTO ir_config_parameter (key, value) VALUES ('database.uuid', 'original-uuid');
            CREATE TABLE ir_cron (id serial PRIMARY KEY, name text, active boolean NOT NULL DEFAULT true);
            INSERT INTO ir_cron (name) VALUES ('mail queue');
            CREATE TABLE ir_mail_server (id serial PRIMARY KEY, name text, active boolean NOT NULL DEFAULT true);
            INSERT INTO ir_mail_server (name) VALUES ('smtp');
            """);
        await FileStore.StoreAsync(name, new MemoryStream("first file"u8.ToArray()));
        await FileStore.StoreAsync(name, new MemoryStream("second file"u8.ToArray()));
        return name;
    }

    public Task<long> CountAsync(string database, string sql) => _pg.ScalarAsync<long>(database, sql);

    public Task<string?> ScalarTextAsync(string database, string sql) => _pg.ScalarAsync<string>(database, sql);

    public async Task<bool> ExistsAsync(string database) =>
        await _pg.ScalarAsync<int>("postgres", $"SELECT count(*)::int FROM pg_database WHERE datname = '{database}'") == 1;

    public async Task<string?> TenantStateAsync(string database) =>
        await _pg.ScalarAsync<string>(ManagementName, $"SELECT state FROM loomworks_tenant WHERE database_name = '{database}'");

    public async Task AssertAbsentAsync(string database)
    {
        Assert.False(await ExistsAsync(database), $"database {database} exists");
        Assert.Null(await TenantStateAsync(database));
        Assert.False(Directory.Exists(Path.Combine(Scratch.Path, "filestore", database)), $"files of {database} exist");
        Assert.False(Directory.Exists(Path.Combine(Scratch.Path, "filestore", $".staging-{database}")));
    }

    /// <summary>Dumps <paramref name="source"/> into this harness's scratch folder as <paramref name="fileName"/>.</summary>
    public async Task<string> DumpAsync(DatabaseManager manager, string source, string fileName, BackupFormat format = BackupFormat.Zip)
    {
        ArgumentNullException.ThrowIfNull(manager);
        var path = Scratch.File(fileName);
        await manager.DumpToFileAsync(source, path, format);
        return path;
    }

    /// <summary>Restoring <paramref name="path"/> as <paramref name="target"/> is refused and leaves nothing of it behind.</summary>
    public async Task<DatabaseManagerException> AssertRestoreRefusedAsync(DatabaseManager manager, string target, string path)
    {
        ArgumentNullException.ThrowIfNull(manager);
        var refusal = await Assert.ThrowsAsync<DatabaseManagerException>(() => manager.RestoreFileAsync(target, path));
        await AssertAbsentAsync(target);
        return refusal;
    }

    public async ValueTask DisposeAsync()
    {
        await DataSources.DisposeAsync();
        foreach (var database in _databases)
        {
            await _pg.DropDatabaseAsync(database);
        }
        await _pg.DropDatabaseAsync(ManagementName);
        Scratch.Dispose();
    }
}
