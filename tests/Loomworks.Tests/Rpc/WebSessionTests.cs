using System.Text;
using System.Text.Json;
using Loomworks.Configuration;
using Loomworks.Rpc;
using Loomworks.Tests.Infrastructure;

namespace Loomworks.Tests.Rpc;

/// <summary>Odoo's web sessions on the real server: login, session info, call_kw, logout, expiry and tenant isolation.</summary>
public sealed class WebSessionTests(PostgresFixture postgres)
{
    private static readonly string[] ReadFields = ["name", "create_uid"];

    /// <summary>One answer: status, JSON body (default when not JSON), the raw body and the Set-Cookie headers.</summary>
    private sealed record Answer(int Status, JsonElement Body, string Text, IReadOnlyList<string> SetCookies, string? Location = null)
    {
        public JsonElement Result => Body.GetProperty("result");
        public JsonElement Error => Body.GetProperty("error");
        public bool IsError => Body.ValueKind == JsonValueKind.Object && Body.TryGetProperty("error", out _);
        public string? ErrorName => IsError ? Error.GetProperty("data").GetProperty("name").GetString() : null;
        public string ErrorMessage => Error.GetProperty("data").GetProperty("message").GetString()!;

        /// <summary>The session_id value set by this answer, or null.</summary>
        public string? SessionCookie => SetCookies.Where(c => c.StartsWith("session_id=", StringComparison.Ordinal))
            .Select(c => c["session_id=".Length..].Split(';')[0]).FirstOrDefault();
    }

    private static async Task<Answer> PostAsync(string url, string path, string body, string? cookie = null, string? tenant = null,
        string? host = null, string contentType = "application/json", Dictionary<string, string>? headers = null, HttpMethod? method = null)
    {
        using var handler = new HttpClientHandler { UseCookies = false, AllowAutoRedirect = false };
        using var http = new HttpClient(handler) { BaseAddress = new Uri(url), Timeout = TimeSpan.FromMinutes(1) };
        using var request = new HttpRequestMessage(method ?? HttpMethod.Post, path);
        if (method != HttpMethod.Get)
        {
            request.Content = new StringContent(body, Encoding.UTF8, contentType);
        }
        if (cookie is not null)
        {
            request.Headers.TryAddWithoutValidation("Cookie", "session_id=" + cookie);
        }
        if (tenant is not null)
        {
            request.Headers.Add("X-Loomworks-Tenant", tenant);
        }
        if (host is not null)
        {
            request.Headers.Host = host;
        }
        foreach (var (name, value) in headers ?? [])
        {
            request.Headers.TryAddWithoutValidation(name, value);
        }
        using var response = await http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        JsonElement json = default;
        try
        {
            json = text.Length == 0 ? default : JsonDocument.Parse(text).RootElement.Clone();
        }
        catch (JsonException)
        {
            // Not JSON: the test looks at Text.
        }
        var cookies = response.Headers.TryGetValues("Set-Cookie", out var values) ? values.ToList() : [];
        return new Answer((int)response.StatusCode, json, text, cookies, response.Headers.Location?.OriginalString);
    }

    private static string Call(object parameters) =>
        JsonSerializer.Serialize(new { jsonrpc = "2.0", method = "call", @params = parameters, id = 1 });

    private static Task<Answer> LoginAsync(string url, string db, string login = "admin", string password = "admin",
        string? tenant = null) =>
        PostAsync(url, "/web/session/authenticate", Call(new { db, login, password }), tenant: tenant);

    private static async Task<string> SessionAsync(string url, string db, string login = "admin", string password = "admin")
    {
        var answer = await LoginAsync(url, db, login, password);
        Assert.False(answer.IsError, answer.Text);
        return answer.SessionCookie ?? throw new InvalidOperationException("no session_id cookie: " + string.Join(" | ",
            answer.SetCookies));
    }

    private static Task<Answer> CallKwAsync(string url, string cookie, string model, string method, object args, object? kwargs = null,
        string? tenant = null, string? host = null) =>
        PostAsync(url, $"/web/dataset/call_kw/{model}/{method}", Call(new { model, method, args, kwargs = kwargs ?? new { } }), cookie,
            tenant, host);

    private static Task<Answer> InfoAsync(string url, string? cookie, string? tenant = null) =>
        PostAsync(url, "/web/session/get_session_info", Call(new { }), cookie, tenant);

    private static void AssertExpired(Answer answer, int status = 200)
    {
        Assert.Equal(status, answer.Status);
        Assert.True(answer.IsError, answer.Text);
        Assert.Equal(100, answer.Error.GetProperty("code").GetInt32());
        Assert.Equal("Odoo Session Expired", answer.Error.GetProperty("message").GetString());
        Assert.Equal("odoo.http.SessionExpiredException", answer.ErrorName);
    }

    private Task<long> CountAsync(string db, string sql) => postgres.ScalarAsync<long>(db, sql);

    [Fact]
    public async Task Login_session_info_call_kw_and_destroy_round_trip_and_sessions_survive_a_restart()
    {
        await using var server = await TenantRpcServer.StartAsync(postgres, "websess_round", null, "wsr-one", "wsr-two");
        var url = server.Url;

        var login = await LoginAsync(url, "wsr-one");
        Assert.Equal(200, login.Status);
        Assert.False(login.IsError, login.Text);
        var info = login.Result;
        Assert.Equal(2, info.GetProperty("uid").GetInt64());
        Assert.Equal("wsr-one", info.GetProperty("db").GetString());
        Assert.Equal("admin", info.GetProperty("username").GetString());
        Assert.Equal("Administrator", info.GetProperty("name").GetString());
        Assert.True(info.GetProperty("is_admin").GetBoolean());
        Assert.True(info.GetProperty("is_system").GetBoolean());
        Assert.Equal(2, info.GetProperty("user_context").GetProperty("uid").GetInt64());
        Assert.Equal("en_US", info.GetProperty("user_context").GetProperty("lang").GetString());
        Assert.Equal(3, info.GetProperty("partner_id").GetInt64());
        Assert.Equal(1, info.GetProperty("company_id").GetInt64());
        Assert.Equal(18, info.GetProperty("server_version_info")[0].GetInt64());
        Assert.Equal(1, info.GetProperty("user_companies").GetProperty("current_company").GetInt64());

        // The cookie: random token after the database name, HttpOnly, SameSite=Lax, not Secure over plain http, 7 days.
        var setCookie = Assert.Single(login.SetCookies, c => c.StartsWith("session_id=", StringComparison.Ordinal));
        var flags = setCookie.ToLowerInvariant();
        Assert.Contains("httponly", flags, StringComparison.Ordinal);
        Assert.Contains("samesite=lax", flags, StringComparison.Ordinal);
        Assert.Contains("path=/", flags, StringComparison.Ordinal);
        Assert.Contains("max-age=604800", flags, StringComparison.Ordinal);
        Assert.DoesNotContain("secure", flags, StringComparison.Ordinal);
        var cookie = login.SessionCookie!;
        Assert.True(WebSessionCookie.TryParse(cookie, out var parsed, out _));
        Assert.Equal("wsr-one", parsed.Database);
        // Only a hash of the token is stored, never the token.
        Assert.Equal(1L, await CountAsync("wsr-one",
            "SELECT count(*) FROM loomworks_web_session WHERE token_hash = " +
            $"sha256(decode('{Convert.ToHexString(Base64UrlDecode(parsed.Token))}', 'hex')) AND uid = 2 AND database_name = 'wsr-one'"));
        Assert.Equal(0L, await CountAsync("wsr-one",
            $"SELECT count(*) FROM loomworks_web_session WHERE encode(token_hash, 'escape') LIKE '%{parsed.Token}%'"));

        Assert.Equal(2, (await InfoAsync(url, cookie)).Result.GetProperty("uid").GetInt64());
        var check = await PostAsync(url, "/web/session/check", Call(new { }), cookie);
        Assert.Equal(JsonValueKind.Null, check.Result.ValueKind);

        // call_kw runs as the session's user in the session's database, with or without the path suffix.
        var created = await CallKwAsync(url, cookie, "res.partner", "create", new object[] { new { name = "Web Session Partner" } });
        Assert.False(created.IsError, created.Text);
        var id = created.Result.GetInt64();
        var read = await PostAsync(url, "/web/dataset/call_kw", Call(new
        {
            model = "res.partner", method = "search_read", args = new object[] { new object[] { new object[] { "id", "=", id } } },
            kwargs = new { fields = ReadFields },
        }), cookie);
        Assert.Equal("Web Session Partner", read.Result[0].GetProperty("name").GetString());
        Assert.Equal(2, read.Result[0].GetProperty("create_uid")[0].GetInt64());
        Assert.Equal(0L, await CountAsync("wsr-two", "SELECT count(*) FROM res_partner WHERE name = 'Web Session Partner'"));
        // The ORM's own errors come through as Odoo's error objects.
        var missing = await CallKwAsync(url, cookie, "no.such.model", "search", new object[] { Array.Empty<object>() });
        Assert.True(missing.IsError);
        Assert.Equal(200, missing.Error.GetProperty("code").GetInt32());

        // A restart: nothing about a session lives in the process.
        await server.App.StopAsync();
        await using (var second = await RestartAsync(server))
        {
            Assert.Equal(2, (await InfoAsync(second.Url, cookie)).Result.GetProperty("uid").GetInt64());
            var destroy = await PostAsync(second.Url, "/web/session/destroy", Call(new { }), cookie);
            Assert.Equal(JsonValueKind.Null, destroy.Result.ValueKind);
            Assert.Contains(destroy.SetCookies, c => c.StartsWith("session_id=;", StringComparison.Ordinal)
                || c.StartsWith("session_id=", StringComparison.Ordinal)
                    && c.Contains("expires=Thu, 01 Jan 1970", StringComparison.OrdinalIgnoreCase));
            // The destroyed session is dead for good: replaying the cookie gets SessionExpired, and so does call_kw.
            AssertExpired(await InfoAsync(second.Url, cookie));
            AssertExpired(await CallKwAsync(second.Url, cookie, "res.partner", "create", new object[] { new { name = "After logout" } }));
            Assert.Equal(0L, await CountAsync("wsr-one", "SELECT count(*) FROM res_partner WHERE name = 'After logout'"));
            Assert.Equal(0L, await CountAsync("wsr-one", "SELECT count(*) FROM loomworks_web_session"));

            // /web/session/logout ends a session and redirects (303) to a local path only.
            var other = await SessionAsync(second.Url, "wsr-one");
            var logout = await PostAsync(second.Url, "/web/session/logout?redirect=/web/thanks", "", other, method: HttpMethod.Get);
            Assert.Equal(303, logout.Status);
            Assert.Equal("/web/thanks", logout.Location);
            AssertExpired(await InfoAsync(second.Url, other));
            var open = await PostAsync(second.Url, "/web/session/logout?redirect=//evil.example/x", "", method: HttpMethod.Get);
            Assert.Equal(303, open.Status);
            Assert.Equal("/odoo", open.Location);
        }
    }

    private static byte[] Base64UrlDecode(string token) => System.Buffers.Text.Base64Url.DecodeFromChars(token);

    /// <summary>A second server process on the same management and tenant databases, as after a restart.</summary>
    private static Task<LoomworksHost> RestartAsync(TenantRpcServer first)
    {
        var settings = first.Service<LoomworksSettings>();
        var values = ConfigKeys.All.Where(k => settings.Get(k) is not null && k.Name != "http_port")
            .ToDictionary(k => k.Name, k => settings.Get(k)!);
        return LoomworksHost.StartAsync(options => options.Set(values));
    }

    [Fact]
    public async Task Wrong_credentials_and_bad_authenticate_calls_get_Odoo_errors_and_no_session()
    {
        await using var server = await TenantRpcServer.StartAsync(postgres, "websess_login", null, "wsl-one");
        var url = server.Url;

        foreach (var (login, password) in new[] { ("admin", "wrong"), ("nobody", "admin"), ("admin", ""), ("", "admin") })
        {
            var answer = await LoginAsync(url, "wsl-one", login, password);
            Assert.Equal(200, answer.Status);
            Assert.Equal("odoo.exceptions.AccessDenied", answer.ErrorName);
            Assert.Equal(200, answer.Error.GetProperty("code").GetInt32());
            Assert.Null(answer.SessionCookie);
        }
        // An API key is for the API: it does not open an interactive session (as in Odoo).
        using (var rpc = new RpcClient(url))
        {
            var key = (string)(await rpc.ObjectAsync("wsl-one", 2, "admin", "res.users.apikeys", "generate", ["web"]))!;
            Assert.Equal("odoo.exceptions.AccessDenied", (await LoginAsync(url, "wsl-one", "admin", key)).ErrorName);
        }
        // An unknown database names it.
        var unknown = await LoginAsync(url, "wsl-nope");
        Assert.Equal("odoo.exceptions.AccessDenied", unknown.ErrorName);
        Assert.Contains("wsl-nope", unknown.ErrorMessage, StringComparison.Ordinal);

        // Missing, mistyped or unexpected parameters name the problem.
        var missing = await PostAsync(url, "/web/session/authenticate", Call(new { db = "wsl-one", login = "admin" }));
        Assert.Equal("builtins.TypeError", missing.ErrorName);
        Assert.Contains("'password'", missing.ErrorMessage, StringComparison.Ordinal);
        var typed = await PostAsync(url, "/web/session/authenticate", Call(new { db = "wsl-one", login = 7, password = "admin" }));
        Assert.Contains("'login' must be a string", typed.ErrorMessage, StringComparison.Ordinal);
        var extra = await PostAsync(url, "/web/session/authenticate",
            Call(new { db = "wsl-one", login = "admin", password = "admin", sudo = true }));
        Assert.Contains("unexpected keyword argument 'sudo'", extra.ErrorMessage, StringComparison.Ordinal);
        Assert.Equal(0L, await CountAsync("wsl-one", "SELECT count(*) FROM loomworks_web_session"));

        // The right password still works afterwards.
        Assert.NotNull(await SessionAsync(url, "wsl-one"));
        Assert.Equal(1L, await CountAsync("wsl-one", "SELECT count(*) FROM loomworks_web_session"));
    }

    [Fact]
    public async Task A_session_replayed_on_another_tenant_is_refused_and_audited()
    {
        await using var server = await TenantRpcServer.StartAsync(postgres, "websess_iso", null, "wsi-aaa", "wsi-bbb");
        var url = server.Url;
        var cookie = await SessionAsync(url, "wsi-aaa");
        Task<long> AuditAsync() => CountAsync(server.Management,
            "SELECT count(*) FROM loomworks_audit_cross_tenant WHERE credential_database = 'wsi-aaa' AND routed_database = 'wsi-bbb' " +
            "AND credential_kind = 'web session' AND login = 'admin' AND refused");

        // Routed to B by the tenant header: refused with 403, SessionExpired, the reason, and an audit row.
        var byHeader = await InfoAsync(url, cookie, tenant: "wsi-bbb");
        AssertExpired(byHeader, 403);
        Assert.Contains("another tenant", byHeader.ErrorMessage, StringComparison.Ordinal);
        Assert.Equal(1L, await AuditAsync());
        // By the subdomain, on call_kw: refused, audited, nothing written in B.
        var bySubdomain = await CallKwAsync(url, cookie, "res.partner", "create", new object[] { new { name = "Cross tenant" } },
            host: "wsi-bbb." + TenantRpcServer.BaseDomain);
        AssertExpired(bySubdomain, 403);
        Assert.Equal(2L, await AuditAsync());
        Assert.Equal(0L, await CountAsync("wsi-bbb", "SELECT count(*) FROM res_partner WHERE name = 'Cross tenant'"));
        Assert.Equal(0L, await CountAsync("wsi-aaa", "SELECT count(*) FROM res_partner WHERE name = 'Cross tenant'"));

        // The same cookie relabelled for B is simply not a session of B (the token is only in A).
        var token = cookie[(cookie.LastIndexOf('.') + 1)..];
        AssertExpired(await InfoAsync(url, "wsi-bbb." + token, tenant: "wsi-bbb"));
        // A forged token claiming A on B's request is refused but proves nothing, so it is not audited.
        var forged = "wsi-aaa." + System.Buffers.Text.Base64Url.EncodeToString(new byte[32]);
        AssertExpired(await InfoAsync(url, forged, tenant: "wsi-bbb"));
        Assert.Equal(2L, await AuditAsync());

        // A copy of A's session table in B's database (a duplicated or branched database) does not make it B's session.
        await postgres.ExecuteAsync("wsi-bbb", "DELETE FROM loomworks_web_session");
        var rows = await postgres.ScalarAsync<string>("wsi-aaa",
            "SELECT string_agg(encode(token_hash, 'hex'), ',') FROM loomworks_web_session");
        foreach (var hex in rows!.Split(','))
        {
            await postgres.ExecuteAsync("wsi-bbb",
                $"INSERT INTO loomworks_web_session (token_hash, database_name, uid, auth_fingerprint) SELECT decode('{hex}', 'hex'), " +
                "'wsi-aaa', 2, " +
                "encode(sha256(convert_to(u.id::text || chr(10) || u.login || chr(10) || coalesce(u.password, ''), 'UTF8')), 'hex') FROM " +
                "res_users u WHERE u.id = 2");
        }
        AssertExpired(await InfoAsync(url, "wsi-bbb." + token));

        // In its own tenant the session still works, by db alone or with the matching header.
        Assert.Equal("wsi-aaa", (await InfoAsync(url, cookie)).Result.GetProperty("db").GetString());
        Assert.Equal("wsi-aaa", (await InfoAsync(url, cookie, tenant: "wsi-aaa")).Result.GetProperty("db").GetString());
    }

    [Fact]
    public async Task Bad_cookies_and_malformed_bodies_get_clear_errors_and_change_nothing()
    {
        await using var server = await TenantRpcServer.StartAsync(postgres, "websess_bad", null, "wsb-one");
        var url = server.Url;
        var cookie = await SessionAsync(url, "wsb-one");
        var before = await CountAsync("wsb-one", "SELECT count(*) FROM res_partner");

        var badCookies = new Dictionary<string, string?>
        {
            ["absent"] = null,
            ["empty"] = "",
            ["no database"] = cookie[(cookie.LastIndexOf('.') + 1)..],
            ["short token"] = "wsb-one.abc",
            ["not base64url"] = "wsb-one." + new string('*', WebSessionCookie.TokenLength),
            ["oversized"] = "wsb-one." + new string('A', 4000),
            ["quotes and SQL"] = "wsb-one'%3B DROP TABLE res_partner;--." + cookie[(cookie.LastIndexOf('.') + 1)..],
            ["forged"] = "wsb-one." + System.Buffers.Text.Base64Url.EncodeToString(new byte[32]),
            ["unknown database"] = "wsb-nope." + cookie[(cookie.LastIndexOf('.') + 1)..],
        };
        foreach (var (what, value) in badCookies)
        {
            var answer = await CallKwAsync(url, value!, "res.partner", "create", new object[] { new { name = "Bad " + what } });
            Assert.True(answer.IsError, what + ": " + answer.Text);
            Assert.True(answer.Error.GetProperty("code").GetInt32() is 100 or 200, what);
            Assert.True(answer.ErrorName is "odoo.http.SessionExpiredException" or "odoo.exceptions.AccessDenied", what + ": "
                + answer.ErrorName);
        }
        AssertExpired(await InfoAsync(url, badCookies["oversized"]));
        Assert.Contains("malformed", (await InfoAsync(url, badCookies["not base64url"])).ErrorMessage, StringComparison.Ordinal);
        Assert.Contains("no session_id cookie", (await InfoAsync(url, null)).ErrorMessage, StringComparison.Ordinal);

        // Expired by idleness: last used eight days ago.
        await postgres.ExecuteAsync("wsb-one", "UPDATE loomworks_web_session SET last_seen = now() - interval '8 days'");
        AssertExpired(await InfoAsync(url, cookie));
        // The next login sweeps expired rows.
        cookie = await SessionAsync(url, "wsb-one");
        Assert.Equal(1L, await CountAsync("wsb-one", "SELECT count(*) FROM loomworks_web_session"));

        // Malformed bodies, with a live session: named problems, nothing written.
        var bodies = new Dictionary<string, (string Body, string ContentType, string Expect)>
        {
            ["not JSON"] = ("{\"jsonrpc\": \"2.0\", \"params\": ", "application/json", "Invalid JSON"),
            ["array"] = ("[1, 2]", "application/json", "must be an object"),
            ["params not an object"] = ("{\"jsonrpc\":\"2.0\",\"method\":\"call\",\"params\":[1]}", "application/json",
                "params must be an object"),
            ["wrong content type"] = (Call(new { model = "res.partner", method = "create", args = new object[] { new { name = "x" } },
                kwargs = new { } }), "text/plain", "application/json"),
            ["args not a list"] = (Call(new { model = "res.partner", method = "create", args = "x", kwargs = new { } }), "application/json",
                "'args' must be a list"),
            ["kwargs missing"] = (Call(new { model = "res.partner", method = "create", args = Array.Empty<object>() }), "application/json",
                "'kwargs'"),
            ["private method"] = (Call(new { model = "res.partner", method = "_write", args = Array.Empty<object>(), kwargs = new { } }),
                "application/json", "Private methods"),
            ["deep nesting"] = (new string('[', 200) + new string(']', 200), "application/json", "Invalid JSON"),
        };
        foreach (var (what, (body, contentType, expect)) in bodies)
        {
            var answer = await PostAsync(url, "/web/dataset/call_kw", body, cookie, contentType: contentType);
            Assert.Equal(200, answer.Status);
            Assert.True(answer.IsError, what + ": " + answer.Text);
            Assert.Contains(expect, answer.ErrorMessage, StringComparison.Ordinal);
        }
        var garbage = await PostAsync(url, "/web/session/authenticate", "\u0000\u0001garbage", contentType: "application/json");
        Assert.Contains("Invalid JSON", garbage.ErrorMessage, StringComparison.Ordinal);

        // Nothing changed, the server is up and the session still works.
        Assert.Equal(before, await CountAsync("wsb-one", "SELECT count(*) FROM res_partner"));
        Assert.Equal(2, (await InfoAsync(url, cookie)).Result.GetProperty("uid").GetInt64());
    }

    [Fact]
    public async Task A_password_change_or_deactivation_ends_the_users_sessions_and_cookies_are_Secure_behind_https()
    {
        await using var server = await TenantRpcServer.StartAsync(postgres, "websess_pwd",
            new Dictionary<string, string> { ["proxy_mode"] = "True" }, "wsp-one");
        var url = server.Url;
        var admin = await SessionAsync(url, "wsp-one");

        // Behind a TLS-terminating proxy (trusted, proxy_mode): the cookie is Secure.
        var https = await PostAsync(url, "/web/session/authenticate", Call(new { db = "wsp-one", login = "admin", password = "admin" }),
            headers: new Dictionary<string, string> { ["X-Forwarded-Proto"] = "https" });
        Assert.Contains("secure", Assert.Single(https.SetCookies).ToLowerInvariant(), StringComparison.Ordinal);

        var created = await CallKwAsync(url, admin, "res.users", "create",
            new object[] { new { name = "Clerk", login = "clerk", password = "clerk-one" } });
        Assert.False(created.IsError, created.Text);
        var clerkId = created.Result.GetInt64();
        var first = await SessionAsync(url, "wsp-one", "clerk", "clerk-one");
        var second = await SessionAsync(url, "wsp-one", "clerk", "clerk-one");
        var info = (await InfoAsync(url, first)).Result;
        Assert.Equal(clerkId, info.GetProperty("uid").GetInt64());
        Assert.False(info.GetProperty("is_admin").GetBoolean());

        // The administrator changes the clerk's password: every session of the clerk ends, the admin's does not.
        var changed = await CallKwAsync(url, admin, "res.users", "write",
            new object[] { new[] { clerkId }, new { password = "clerk-two" } });
        Assert.False(changed.IsError, changed.Text);
        AssertExpired(await InfoAsync(url, first));
        AssertExpired(await CallKwAsync(url, second, "res.partner", "create", new object[] { new { name = "By a dead session" } }));
        Assert.Equal(0L, await CountAsync("wsp-one", "SELECT count(*) FROM res_partner WHERE name = 'By a dead session'"));
        Assert.Equal(2, (await InfoAsync(url, admin)).Result.GetProperty("uid").GetInt64());
        Assert.Equal("odoo.exceptions.AccessDenied", (await LoginAsync(url, "wsp-one", "clerk", "clerk-one")).ErrorName);

        // Deactivating the user ends the session opened with the new password.
        var third = await SessionAsync(url, "wsp-one", "clerk", "clerk-two");
        Assert.Equal(clerkId, (await InfoAsync(url, third)).Result.GetProperty("uid").GetInt64());
        var deactivated = await CallKwAsync(url, admin, "res.users", "write", new object[] { new[] { clerkId }, new { active = false } });
        Assert.False(deactivated.IsError, deactivated.Text);
        AssertExpired(await InfoAsync(url, third));
        Assert.Equal("odoo.exceptions.AccessDenied", (await LoginAsync(url, "wsp-one", "clerk", "clerk-two")).ErrorName);
    }
}
