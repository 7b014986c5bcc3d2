using System.Text.Json.Nodes;

namespace Loomworks.Server.Tenancy;

/// <summary>The OpenAPI 3.1 document of the admin API, built once from the same field names the endpoints use.</summary>
public static class TenantAdminOpenApi
{
    public static string Document { get; } = Build().ToJsonString();

    private static JsonObject Build()
    {
        JsonObject Ref(string name) => new() { ["$ref"] = $"#/components/schemas/{name}" };
        JsonObject Int(int minimum = 0) => new() { ["type"] = "integer", ["minimum"] = minimum, ["maximum"] = 1_000_000 };
        JsonObject Str(string? pattern = null)
        {
            var s = new JsonObject { ["type"] = "string" };
            if (pattern is not null)
            {
                s["pattern"] = pattern;
            }
            return s;
        }
        JsonObject Problem(string description) => new()
        {
            ["description"] = description,
            ["content"] = new JsonObject { ["application/problem+json"] = new JsonObject { ["schema"] = Ref("Problem") } },
        };
        JsonObject Json(string description, JsonObject schema) => new()
        {
            ["description"] = description,
            ["content"] = new JsonObject { ["application/json"] = new JsonObject { ["schema"] = schema } },
        };
        JsonObject Responses(params (string Code, JsonObject Response)[] entries)
        {
            var r = new JsonObject();
            foreach (var (code, response) in entries)
            {
                r[code] = response;
            }
            r["401"] = Problem("missing or wrong master password");
            r["403"] = Problem("the admin API is disabled until admin_passwd is set");
            r["429"] = Problem("too many failures from this address");
            return r;
        }
        JsonArray SubdomainParameter() =>
        [
            new JsonObject { ["name"] = "subdomain", ["in"] = "path", ["required"] = true, ["schema"] = Str("^[a-z][a-z0-9-]{2,62}$") },
        ];
        JsonObject StateAction(string verb) => new()
        {
            ["post"] = new JsonObject
            {
                ["summary"] = $"{verb} a tenant",
                ["parameters"] = SubdomainParameter(),
                ["responses"] = Responses(("200", Json("the tenant", Ref("Tenant"))), ("404", Problem("unknown tenant")),
                    ("409", Problem("the tenant's state does not allow it"))),
            },
        };

        var tenantProperties = new JsonObject
        {
            ["id"] = new JsonObject { ["type"] = "integer" },
            ["name"] = Str(), ["subdomain"] = Str(), ["database_name"] = Str(),
            ["state"] = new JsonObject { ["enum"] = new JsonArray("draft", "provisioning", "active", "suspended", "archived", "restoring") },
            ["tier"] = Str(), ["max_users"] = Int(), ["max_storage_gb"] = Int(), ["max_ai_operations_daily"] = Int(),
            ["subscription_expires"] = new JsonObject { ["type"] = new JsonArray("string", "null"), ["format"] = "date-time" },
            ["database_server"] = Str(),
            ["created_at"] = new JsonObject { ["type"] = "string", ["format"] = "date-time" },
            ["updated_at"] = new JsonObject { ["type"] = "string", ["format"] = "date-time" },
        };
        return new JsonObject
        {
            ["openapi"] = "3.1.0",
            ["info"] = new JsonObject { ["title"] = "Loomworks admin API", ["version"] = LoomworksVersion.Full },
            ["components"] = new JsonObject
            {
                ["securitySchemes"] = new JsonObject
                {
                    ["master"] = new JsonObject { ["type"] = "http", ["scheme"] = "basic", ["description"] = "user admin, the master password" },
                },
                ["schemas"] = new JsonObject
                {
                    ["Tenant"] = new JsonObject { ["type"] = "object", ["properties"] = tenantProperties },
                    ["TenantCreate"] = new JsonObject
                    {
                        ["type"] = "object",
                        ["additionalProperties"] = false,
                        // One of admin_password and admin_password_hash (passlib pbkdf2-sha512, at least 600,000 rounds).
                        ["required"] = new JsonArray("name", "subdomain", "admin_login"),
                        ["properties"] = new JsonObject
                        {
                            ["name"] = Str(), ["subdomain"] = Str("^[a-z][a-z0-9-]{2,62}$"), ["admin_login"] = Str(),
                            ["admin_password"] = Str(), ["admin_password_hash"] = Str("^\\$pbkdf2-sha512\\$"), ["tier"] = Str("^[a-z0-9_-]{1,40}$"), ["max_users"] = Int(),
                            ["max_storage_gb"] = Int(), ["max_ai_operations_daily"] = Int(),
                            ["subscription_expires"] = new JsonObject { ["type"] = "string", ["format"] = "date-time" },
                        },
                    },
                    ["TenantPatch"] = new JsonObject
                    {
                        ["type"] = "object",
                        ["additionalProperties"] = false,
                        ["properties"] = new JsonObject
                        {
                            ["name"] = Str(), ["tier"] = Str("^[a-z0-9_-]{1,40}$"), ["max_users"] = Int(), ["max_storage_gb"] = Int(),
                            ["max_ai_operations_daily"] = Int(),
                            ["subscription_expires"] = new JsonObject { ["type"] = "string", ["format"] = "date-time" },
                            ["clear_subscription_expires"] = new JsonObject { ["type"] = "boolean" },
                        },
                    },
                    ["Problem"] = new JsonObject
                    {
                        ["type"] = "object",
                        ["properties"] = new JsonObject { ["title"] = Str(), ["status"] = Int(100), ["detail"] = Str() },
                    },
                },
            },
            ["security"] = new JsonArray(new JsonObject { ["master"] = new JsonArray() }),
            ["paths"] = new JsonObject
            {
                ["/api/v1/tenants"] = new JsonObject
                {
                    ["get"] = new JsonObject
                    {
                        ["summary"] = "List tenants",
                        ["responses"] = Responses(("200", Json("all tenants", new JsonObject { ["type"] = "array", ["items"] = Ref("Tenant") }))),
                    },
                    ["post"] = new JsonObject
                    {
                        ["summary"] = "Create (provision) a tenant",
                        ["requestBody"] = new JsonObject
                        {
                            ["required"] = true,
                            ["content"] = new JsonObject { ["application/json"] = new JsonObject { ["schema"] = Ref("TenantCreate") } },
                        },
                        ["responses"] = Responses(("201", Json("the new tenant", Ref("Tenant"))), ("400", Problem("invalid field")),
                            ("409", Problem("subdomain or database taken")), ("413", Problem("body too large"))),
                    },
                },
                ["/api/v1/tenants/{subdomain}"] = new JsonObject
                {
                    ["get"] = new JsonObject
                    {
                        ["summary"] = "Show a tenant",
                        ["parameters"] = SubdomainParameter(),
                        ["responses"] = Responses(("200", Json("the tenant", Ref("Tenant"))), ("404", Problem("unknown tenant"))),
                    },
                    ["patch"] = new JsonObject
                    {
                        ["summary"] = "Change limits, tier, name or subscription end",
                        ["parameters"] = SubdomainParameter(),
                        ["requestBody"] = new JsonObject
                        {
                            ["required"] = true,
                            ["content"] = new JsonObject { ["application/json"] = new JsonObject { ["schema"] = Ref("TenantPatch") } },
                        },
                        ["responses"] = Responses(("200", Json("the tenant", Ref("Tenant"))), ("400", Problem("invalid field")),
                            ("404", Problem("unknown tenant"))),
                    },
                    ["delete"] = new JsonObject
                    {
                        ["summary"] = "Delete a tenant: database, role and filestore (archived only unless force=true)",
                        ["parameters"] = new JsonArray(
                            new JsonObject { ["name"] = "subdomain", ["in"] = "path", ["required"] = true, ["schema"] = Str() },
                            new JsonObject { ["name"] = "force", ["in"] = "query", ["schema"] = new JsonObject { ["type"] = "boolean" } }),
                        ["responses"] = Responses(("204", new JsonObject { ["description"] = "deleted" }), ("404", Problem("unknown tenant")),
                            ("409", Problem("not archived"))),
                    },
                },
                ["/api/v1/tenants/{subdomain}/suspend"] = StateAction("Suspend"),
                ["/api/v1/tenants/{subdomain}/activate"] = StateAction("Activate"),
                ["/api/v1/tenants/{subdomain}/archive"] = StateAction("Archive"),
            },
        };
    }
}
