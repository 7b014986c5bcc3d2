using System.Net;
using System.Text.Json;
using System.Text.RegularExpressions;
using Loomworks.Server.Hosting;
using Loomworks.Tests.Infrastructure;
using Loomworks.Tests.Tenancy;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace Loomworks.Tests.Server;

/// <summary>The admin API's generated OpenAPI document, and the ProblemDetails its refusals are answered with.</summary>
[Collection(PostgresGroup.Name)]
public sealed partial class AdminApiDocumentTests(PostgresFixture postgres)
{
    private const string Master = "master-of-documents";

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [GeneratedRegex(@"\{(\w+)(:[^}]*)?\}")]
    private static partial Regex RouteParameter();

    [Fact]
    public async Task Every_admin_route_is_in_the_document_with_a_name_a_summary_and_its_responses()
    {
        await using var host = await TenancyHost.StartAsync(postgres, "admin_doc_mgmt",
            new Dictionary<string, string> { ["admin_passwd"] = Master });
        var response = await host.Client.GetAsync(AdminApi.OpenApiPath, Ct);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var document = JsonDocument.Parse(await response.Content.ReadAsStringAsync(Ct));
        var root = document.RootElement;
        Assert.Equal("Loomworks admin API", root.GetProperty("info").GetProperty("title").GetString());
        Assert.Equal("basic", root.GetProperty("components").GetProperty("securitySchemes").GetProperty("master")
            .GetProperty("scheme").GetString());
        var paths = root.GetProperty("paths");

        var routes = host.App.Services.GetRequiredService<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>()
            .Where(e => e.RoutePattern.RawText!.StartsWith(AdminApi.Prefix + "/", StringComparison.Ordinal)
                && e.RoutePattern.RawText != AdminApi.OpenApiPath)
            .SelectMany(e => e.Metadata.GetMetadata<HttpMethodMetadata>()!.HttpMethods
                .Select(method => (Path: RouteParameter().Replace(e.RoutePattern.RawText!.TrimEnd('/'), "{$1}"), Method: method)))
            .ToList();
        // Tenants (list, create, show, change, delete, suspend, activate, archive), snapshots (create, list, delete,
        // restore, job) and operations (list, undo).
        Assert.True(routes.Count >= 15, $"only {routes.Count} admin routes were found");
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (path, method) in routes)
        {
            Assert.True(paths.TryGetProperty(path, out var item), $"{path} is not in the document");
            Assert.True(item.TryGetProperty(method.ToLowerInvariant(), out var operation), $"{method} {path} is not in the document");
            Assert.False(string.IsNullOrWhiteSpace(operation.GetProperty("summary").GetString()), $"{method} {path} has no summary");
            Assert.True(names.Add(operation.GetProperty("operationId").GetString()!), $"{method} {path} repeats an operationId");
            var responses = operation.GetProperty("responses");
            Assert.True(responses.EnumerateObject().Any(r => r.Name.StartsWith('2')), $"{method} {path} names no success response");
            Assert.True(responses.TryGetProperty("401", out _), $"{method} {path} does not say it needs the master password");
        }
        Assert.All(paths.EnumerateObject(), p => Assert.StartsWith(AdminApi.Prefix + "/", p.Name, StringComparison.Ordinal));
        Assert.True(paths.GetProperty("/api/v1/tenants").GetProperty("post").TryGetProperty("requestBody", out _));
        var show = paths.GetProperty("/api/v1/tenants/{subdomain}").GetProperty("get").GetProperty("responses");
        Assert.True(show.GetProperty("200").GetProperty("content").TryGetProperty("application/json", out _));
        Assert.True(show.GetProperty("404").GetProperty("content").TryGetProperty("application/problem+json", out _));
    }

    [Fact]
    public async Task Refusals_of_every_admin_feature_are_problem_details_with_the_status_of_their_kind()
    {
        await using var host = await TenancyHost.StartAsync(postgres, "admin_problem_mgmt",
            new Dictionary<string, string> { ["admin_passwd"] = Master });
        host.Client.DefaultRequestHeaders.Authorization = TenancyHost.Basic("admin", Master);

        async Task<JsonElement> Problem(HttpMethod method, string path, HttpStatusCode status)
        {
            using var request = new HttpRequestMessage(method, path);
            var response = await host.Client.SendAsync(request, Ct);
            var text = await response.Content.ReadAsStringAsync(Ct);
            Assert.True(status == response.StatusCode, $"{method} {path}: {response.StatusCode} {text}");
            Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
            return JsonDocument.Parse(text).RootElement.Clone();
        }

        var tenant = await Problem(HttpMethod.Get, "/api/v1/tenants/no-such-tenant", HttpStatusCode.NotFound);
        Assert.Equal("tenant not found", tenant.GetProperty("title").GetString());
        Assert.Contains("no-such-tenant", tenant.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Equal(404, tenant.GetProperty("status").GetInt32());
        var state = await Problem(HttpMethod.Post, "/api/v1/tenants/no-such-tenant/suspend", HttpStatusCode.NotFound);
        Assert.Equal("tenant not found", state.GetProperty("title").GetString());
        var operations = await Problem(HttpMethod.Get, "/api/v1/tenants/no-such-tenant/operations", HttpStatusCode.NotFound);
        Assert.Equal("there is no tenant 'no-such-tenant'", operations.GetProperty("detail").GetString());
        var badId = await Problem(HttpMethod.Post, "/api/v1/tenants/no-such-tenant/operations/x/undo", HttpStatusCode.BadRequest);
        Assert.Contains("operation id must be a positive whole number", badId.GetProperty("detail").GetString(), StringComparison.Ordinal);
        var job = await Problem(HttpMethod.Get, "/api/v1/jobs/987654", HttpStatusCode.NotFound);
        Assert.Equal("there is no job 987654", job.GetProperty("detail").GetString());
    }
}
