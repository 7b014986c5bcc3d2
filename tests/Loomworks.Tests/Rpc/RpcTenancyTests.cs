using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text;
using Loomworks.Rpc;
using Loomworks.Tenancy;
using Loomworks.Tests.Infrastructure;

namespace Loomworks.Tests.Rpc;

/// <summary>The RPC layer on Tenancy and the database manager: routing by db, header and subdomain, refusals, the db service,
/// limits.</summary>
public sealed class RpcTenancyTests(PostgresFixture postgres)
{
    private const string Master = TenantRpcServer.MasterPassword;

    private static string SourceFolder([System.Runtime.CompilerServices.CallerFilePath] string path = "") => Path.GetDirectoryName(path)!;

    /// <summary>An XML-RPC call with the given Host and tenant header; returns (fault code or null, value or fault string).</summary>
    private static async Task<(object? Fault, object? Value)> CallAsync(string url, string service, string method, object?[] args,
        string? host = null, string? tenantHeader = null)
    {
        using var http = new HttpClient { BaseAddress = new Uri(url), Timeout = TimeSpan.FromMinutes(2) };
        using var request = new HttpRequestMessage(HttpMethod.Post, "/xmlrpc/2/" + service)
        {
            Content = new ByteArrayContent(XmlRpcCodec.WriteRequest(method, args)),
        };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("text/xml");
        if (host is not null)
        {
            request.Headers.Host = host;
        }
        if (tenantHeader is not null)
        {
            request.Headers.Add("X-Loomworks-Tenant", tenantHeader);
        }
        using var response = await http.SendAsync(request);
        response.EnsureSuccessStatusCode();
        var (isFault, value) = XmlRpcCodec.ReadResponse(await response.Content.ReadAsByteArrayAsync());
        return isFault && value is Dictionary<string, object?> fault ? (fault["faultCode"], fault["faultString"]) : (null, value);
    }

    private static async Task<(int Status, string Body, string? RetryAfter)> Json2Async(string url, string key, string? database)
    {
        using var http = new HttpClient { BaseAddress = new Uri(url) };
        using var request = new HttpRequestMessage(HttpMethod.Post, "/json/2/res.partner/search_count")
        {
            Content = new StringContent("{\"domain\": []}", Encoding.UTF8, "application/json"),
        };
        request.Headers.TryAddWithoutValidation("Authorization", "bearer " + key);
        if (database is not null)
        {
            request.Headers.Add("X-Odoo-Database", database);
        }
        using var response = await http.SendAsync(request);
        return ((int)response.StatusCode, await response.Content.ReadAsStringAsync(), response.Headers.RetryAfter?.ToString());
    }

    private static async Task<string> ApiKeyAsync(string url, string db)
    {
        var (fault, key) = await CallAsync(url, "object", "execute_kw",
            [db, 2L, "admin", "res.users.apikeys", "generate", new List<object?> { "tests" }, new Dictionary<string, object?>()]);
        Assert.Null(fault);
        return (string)key!;
    }

    private async Task<long> CrossTenantRowsAsync(TenantRpcServer server, string credential, string routed) =>
        await postgres.ScalarAsync<long>(server.Management,
            $"SELECT count(*) FROM loomworks_audit_cross_tenant WHERE credential_database = '{credential}' AND routed_database = " +
            $"'{routed}' AND refused");

    [Fact]
    public async Task Calls_are_routed_by_db_header_subdomain_and_X_Odoo_Database_and_a_mismatched_db_is_refused_and_audited()
    {
        await using var server = await TenantRpcServer.StartAsync(postgres, "rpcten_route", null, "rtr-one", "rtr-two");
        var url = server.Url;

        // By db alone.
        Assert.Equal((null, (object?)2L), await CallAsync(url, "common", "authenticate", ["rtr-one", "admin", "admin",
            new Dictionary<string, object?>()]));
        // The header and the subdomain agree with db.
        Assert.Equal((null, (object?)2L), await CallAsync(url, "common", "authenticate", ["rtr-two", "admin", "admin",
            new Dictionary<string, object?>()], tenantHeader: "rtr-two"));
        Assert.Equal((null, (object?)2L), await CallAsync(url, "common", "authenticate", ["rtr-two", "admin", "admin",
            new Dictionary<string, object?>()], host: "rtr-two." + TenantRpcServer.BaseDomain));
        // The header wins over the subdomain; db names a third party: refused, audited.
        var (fault, message) = await CallAsync(url, "common", "authenticate",
            ["rtr-two", "admin", "admin", new Dictionary<string, object?>()],
            host: "rtr-two." + TenantRpcServer.BaseDomain, tenantHeader: "rtr-one");
        Assert.Equal(3L, fault);
        Assert.Contains("rtr-one", (string)message!, StringComparison.Ordinal);
        Assert.Equal(1, await CrossTenantRowsAsync(server, "rtr-two", "rtr-one"));
        (fault, _) = await CallAsync(url, "object", "execute_kw",
            ["rtr-one", 2L, "admin", "res.partner", "search_count", new List<object?> { new List<object?>() },
                new Dictionary<string, object?>()],
            host: "rtr-two." + TenantRpcServer.BaseDomain);
        Assert.Equal(3L, fault);
        Assert.Equal(1, await CrossTenantRowsAsync(server, "rtr-one", "rtr-two"));
        Assert.Equal(0L, await postgres.ScalarAsync<long>("rtr-one", "SELECT count(*) FROM res_partner WHERE name = 'never'"));

        // An unknown db is AccessDenied naming it.
        (fault, message) = await CallAsync(url, "common", "authenticate",
            ["rtr-nope", "admin", "admin", new Dictionary<string, object?>()]);
        Assert.Equal(3L, fault);
        Assert.Contains("database 'rtr-nope' not found", (string)message!, StringComparison.Ordinal);

        // JSON-2: X-Odoo-Database routes; a key of one tenant does not open the other; no database with two tenants is 404.
        var key = await ApiKeyAsync(url, "rtr-two");
        Assert.Equal(200, (await Json2Async(url, key, "rtr-two")).Status);
        Assert.Equal(401, (await Json2Async(url, key, "rtr-one")).Status);
        Assert.Equal(404, (await Json2Async(url, key, "rtr-nope")).Status);
        Assert.Equal(404, (await Json2Async(url, key, null)).Status);
    }

    [Fact]
    public async Task Suspended_and_restoring_tenants_are_refused_with_the_reason_and_JSON_2_statuses()
    {
        await using var server = await TenantRpcServer.StartAsync(postgres, "rpcten_state", null, "rts-one");
        var key = await ApiKeyAsync(server.Url, "rts-one");
        await server.Service<TenantLifecycle>().SuspendAsync("rts-one", "test", CancellationToken.None);
        await Eventually.HoldsAsync(async () => (await Json2Async(server.Url, key, "rts-one")).Status == 403,
            "the suspension reaches the server: its API key is refused with 403");
        var (fault, message) = await CallAsync(server.Url, "common", "authenticate",
            ["rts-one", "admin", "admin", new Dictionary<string, object?>()]);
        Assert.Equal(3L, fault);
        Assert.Contains("suspended", (string)message!, StringComparison.Ordinal);

        var tenant = (await server.Service<TenantStore>().FindBySubdomainAsync("rts-one", CancellationToken.None))!;
        await server.Service<TenantLifecycle>().SetStateAsync(tenant.Id, TenantStates.Restoring, "restoring", "", "test",
            CancellationToken.None);
        server.Service<TenantCache>().Evict("rts-one", "rts-one");
        var (status, body, retry) = await Json2Async(server.Url, key, "rts-one");
        Assert.Equal(503, status);
        Assert.Equal("5", retry);
        Assert.Contains("restored", body, StringComparison.Ordinal);
        (fault, message) = await CallAsync(server.Url, "common", "authenticate",
            ["rts-one", "admin", "admin", new Dictionary<string, object?>()]);
        Assert.Equal(1L, fault);
        Assert.Contains("being restored", (string)message!, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Python_xmlrpc_client_creates_dumps_restores_duplicates_and_drops_databases_that_are_proper_tenants()
    {
        await using var server = await TenantRpcServer.StartAsync(postgres, "rpcten_db", null, "rtd-other");
        var info = new ProcessStartInfo("python3") { RedirectStandardOutput = true, RedirectStandardError = true,
            WorkingDirectory = SourceFolder() };
        foreach (var argument in new[] { "db_manager_roundtrip.py", server.Url, Master, "rtd-made", "rtd-restored", "rtd-fromdump",
            "rtd-dup" })
        {
            info.ArgumentList.Add(argument);
        }
        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync(new CancellationTokenSource(TimeSpan.FromMinutes(4)).Token);
        var output = await stdout + await stderr;
        Assert.True(process.ExitCode == 0, output);
        Assert.Contains("OK", output, StringComparison.Ordinal);

        // The created database has the country and phone on its company.
        Assert.Equal("FR", await postgres.ScalarAsync<string>("rtd-made",
            "SELECT c.code FROM res_company co JOIN res_country c ON c.id = co.country_id ORDER BY co.id LIMIT 1"));
        // Every database made through the db service is a tenant with its own role, which alone may connect.
        foreach (var db in new[] { "rtd-made", "rtd-restored", "rtd-fromdump" })
        {
            var role = TenantProvisioner.RoleNameFor(db);
            Assert.Equal("active", await postgres.ScalarAsync<string>(server.Management,
                $"SELECT state FROM loomworks_tenant WHERE database_name = '{db}' AND role_name = '{role}'"));
            Assert.True(await postgres.ScalarAsync<bool>("postgres", $"SELECT has_database_privilege('{role}', '{db}', 'CONNECT')"));
            Assert.False(await postgres.ScalarAsync<bool>("postgres", $"SELECT has_database_privilege('public', '{db}', 'CONNECT')"));
            Assert.False(await postgres.ScalarAsync<bool>("postgres",
                $"SELECT has_database_privilege('{TenantProvisioner.RoleNameFor("rtd-other")}', '{db}', 'CONNECT')"));
            Assert.False(await postgres.ScalarAsync<bool>("postgres", $"SELECT has_database_privilege('{role}', 'rtd-other', 'CONNECT')"));
        }
        // The dropped duplicate left no database, role or row.
        Assert.Equal(0L, await postgres.ScalarAsync<long>("postgres", "SELECT count(*) FROM pg_database WHERE datname = 'rtd-dup'"));
        Assert.Equal(0L, await postgres.ScalarAsync<long>("postgres",
            $"SELECT count(*) FROM pg_roles WHERE rolname = '{TenantProvisioner.RoleNameFor("rtd-dup")}'"));
        Assert.Equal(0L, await postgres.ScalarAsync<long>(server.Management,
            "SELECT count(*) FROM loomworks_tenant WHERE database_name = 'rtd-dup'"));

        // Rename through the db service moves the role with the database and routes the new name at once.
        Assert.Equal((null, (object?)true), await CallAsync(server.Url, "db", "rename", [Master, "rtd-fromdump", "rtd-renamed"]));
        Assert.True(await postgres.ScalarAsync<bool>("postgres",
            $"SELECT has_database_privilege('{TenantProvisioner.RoleNameFor("rtd-renamed")}', 'rtd-renamed', 'CONNECT')"));
        Assert.Equal(0L, await postgres.ScalarAsync<long>("postgres",
            $"SELECT count(*) FROM pg_roles WHERE rolname = '{TenantProvisioner.RoleNameFor("rtd-fromdump")}'"));
        await Eventually.HoldsAsync(async () =>
            (await CallAsync(server.Url, "common", "authenticate", ["rtd-renamed", "boss", "pw-boss", new Dictionary<string, object?>()]))
            .Value is long, "the renamed database accepts its admin");
        Assert.Equal(3L, (await CallAsync(server.Url, "common", "authenticate", ["rtd-fromdump", "boss", "pw-boss",
            new Dictionary<string, object?>()])).Fault);
    }

    [Fact]
    public async Task Wrong_master_passwords_are_fault_3_then_rate_limited_and_bad_arguments_change_nothing()
    {
        await using var server = await TenantRpcServer.StartAsync(postgres, "rpcten_pw", null, "rtp-one");
        for (var i = 0; i < MasterPassword.MaxFailures; i++)
        {
            var (fault, message) = await CallAsync(server.Url, "db", "drop", ["wrong", "rtp-one"]);
            Assert.Equal(3L, fault);
            Assert.Contains("wrong master password", (string)message!, StringComparison.Ordinal);
        }
        var (limited, limitedMessage) = await CallAsync(server.Url, "db", "drop", [Master, "rtp-one"]);
        Assert.Equal(3L, limited);
        Assert.Contains("too many", (string)limitedMessage!, StringComparison.Ordinal);
        Assert.Equal(1L, await postgres.ScalarAsync<long>("postgres", "SELECT count(*) FROM pg_database WHERE datname = 'rtp-one'"));
    }

    [Fact]
    public async Task Hostile_db_service_arguments_are_refused_with_the_reason_and_nothing_is_created()
    {
        await using var server = await TenantRpcServer.StartAsync(postgres, "rpcten_bad", null, "rtb-one");
        var cases = new (string Method, object?[] Args, string Expected)[]
        {
            ("create_database", [Master, "Bad'; DROP DATABASE x; --", false, "en_US", "pw", "admin"], "subdomain"),
            ("create_database", [Master, "rtb-one", false, "en_US", "pw", "admin"], "already"),
            ("create_database", [Master, new string('a', 5000), false, "en_US", "pw", "admin"], "subdomain"),
            ("create_database", [Master, 42L, false, "en_US"], "must be a string"),
            ("restore", [Master, "rtb-new", "%%% not base64 %%%"], "base64"),
            ("restore", [Master, "rtb-new", Convert.ToBase64String(Encoding.UTF8.GetBytes("PGDMP not really a dump"))], "dump"),
            ("dump", [Master, "rtb-one", "tar"], "format"),
            ("dump", [Master, "rtb-missing", "zip"], "does not exist"),
            ("rename", [Master, "rtb-one", "../etc"], "name"),
            ("migrate_databases", [Master, new List<object?>()], "not available"),
        };
        foreach (var (method, args, expected) in cases)
        {
            var (fault, message) = await CallAsync(server.Url, "db", method, args);
            Assert.True(fault is not null, $"{method} should fail");
            Assert.Contains(expected, (string)message!, StringComparison.OrdinalIgnoreCase);
        }
        Assert.Equal(0L, await postgres.ScalarAsync<long>("postgres", "SELECT count(*) FROM pg_database WHERE datname = 'rtb-new'"));
        Assert.Equal(1L, await postgres.ScalarAsync<long>(server.Management, "SELECT count(*) FROM loomworks_tenant"));
        Assert.Equal((null, (object?)2L), await CallAsync(server.Url, "common", "authenticate", ["rtb-one", "admin", "admin",
            new Dictionary<string, object?>()]));
    }

    [Fact]
    public async Task List_db_false_blocks_list_and_every_management_call()
    {
        await using var server = await TenantRpcServer.StartAsync(postgres, "rpcten_nolist", new() { ["list_db"] = "False" }, "rtn-one");
        Assert.Equal(3L, (await CallAsync(server.Url, "db", "list", [])).Fault);
        Assert.Equal(3L, (await CallAsync(server.Url, "db", "create_database", [Master, "rtn-two", false, "en_US", "pw", "admin"])).Fault);
        Assert.Equal(3L, (await CallAsync(server.Url, "db", "dump", [Master, "rtn-one", "zip"])).Fault);
        Assert.Equal(0L, await postgres.ScalarAsync<long>("postgres", "SELECT count(*) FROM pg_database WHERE datname = 'rtn-two'"));
        Assert.Equal((null, (object?)"18.0"), await CallAsync(server.Url, "db", "server_version", []));
    }

    [Fact]
    public async Task List_shows_what_dbfilter_allows_matched_whole_and_db_outside_it_is_not_found()
    {
        await using var server = await TenantRpcServer.StartAsync(postgres, "rpcten_filter", new() { ["dbfilter"] = "rtf-one" },
            "rtf-one", "rtf-oneb");
        var (fault, list) = await CallAsync(server.Url, "db", "list", []);
        Assert.Null(fault);
        Assert.Equal(["rtf-one"], ((IList<object?>)list!).Cast<string>());
        Assert.Equal((null, (object?)2L), await CallAsync(server.Url, "common", "authenticate", ["rtf-one", "admin", "admin",
            new Dictionary<string, object?>()]));
        var (refused, message) = await CallAsync(server.Url, "common", "authenticate",
            ["rtf-oneb", "admin", "admin", new Dictionary<string, object?>()]);
        Assert.Equal(3L, refused);
        Assert.Contains("dbfilter", (string)message!, StringComparison.Ordinal);
        Assert.Equal((null, (object?)true), await CallAsync(server.Url, "db", "db_exist", ["rtf-oneb"]));
    }

    [Fact]
    public async Task Max_users_and_the_storage_quota_refuse_rpc_writes_naming_the_limit()
    {
        await using var server = await TenantRpcServer.StartAsync(postgres, "rpcten_limits", null, "rtl-one");
        var lifecycle = server.Service<TenantLifecycle>();
        var createUser = new object?[] { "rtl-one", 2L, "admin", "res.users", "create",
            new List<object?> { new Dictionary<string, object?> { ["name"] = "Second", ["login"] = "second", ["password"] = "pw-second" } },
            new Dictionary<string, object?>() };
        var cache = server.Service<TenantCache>();
        await lifecycle.SetLimitsAsync("rtl-one", new TenantLimitsChange(MaxUsers: 1), "test", CancellationToken.None);
        await Eventually.HoldsAsync(async () => (await cache.ByDatabaseAsync("rtl-one", CancellationToken.None))!.MaxUsers == 1,
            "the cache sees max_users 1");
        var (fault, message) = await CallAsync(server.Url, "object", "execute_kw", createUser);
        Assert.Equal(2L, fault);
        Assert.Contains("max_users is 1", (string)message!, StringComparison.Ordinal);
        Assert.Equal(0L, await postgres.ScalarAsync<long>("rtl-one", "SELECT count(*) FROM res_users WHERE login = 'second'"));
        // An inactive user does not count.
        var inactive = (object?[])createUser.Clone();
        inactive[5] = new List<object?> { new Dictionary<string, object?> { ["name"] = "Off", ["login"] = "off", ["active"] = false } };
        Assert.Null((await CallAsync(server.Url, "object", "execute_kw", inactive)).Fault);

        var createPartner = new object?[] { "rtl-one", 2L, "admin", "res.partner", "create",
            new List<object?> { new Dictionary<string, object?> { ["name"] = "Over quota" } }, new Dictionary<string, object?>() };
        Assert.Null((await CallAsync(server.Url, "object", "execute_kw", createPartner)).Fault);
        await lifecycle.SetLimitsAsync("rtl-one", new TenantLimitsChange(MaxStorageGb: 0), "test", CancellationToken.None);
        await Eventually.HoldsAsync(async () => (await cache.ByDatabaseAsync("rtl-one", CancellationToken.None))!.MaxStorageGb == 0,
            "the cache sees max_storage_gb 0");
        (fault, message) = await CallAsync(server.Url, "object", "execute_kw", createPartner);
        Assert.Equal(2L, fault);
        Assert.Contains("max_storage_gb is 0", (string)message!, StringComparison.Ordinal);
        Assert.Equal(1L, await postgres.ScalarAsync<long>("rtl-one", "SELECT count(*) FROM res_partner WHERE name = 'Over quota'"));
        // Reads still work over quota.
        Assert.Null((await CallAsync(server.Url, "object", "execute_kw",
            ["rtl-one", 2L, "admin", "res.partner", "search_count", new List<object?> { new List<object?>() },
                new Dictionary<string, object?>()])).Fault);
    }
}
