using System.Text.Json;
using Microsoft.Playwright;

namespace Loomworks.Tests.Web;

/// <summary>What every browser test does to every page it visits: an axe-core audit and a screenshot.</summary>
public static class PageChecks
{
    private static readonly Lazy<string> AxeSource = new(() => File.ReadAllText(Path.Combine(ClientsDirectory(),
        "node_modules", "axe-core", "axe.min.js")));

    /// <summary>Screenshots land in the test output's TestResults/screenshots folder, which git ignores.</summary>
    public static string ScreenshotDirectory { get; } = Path.Combine(AppContext.BaseDirectory, "TestResults", "screenshots");

    /// <summary>
    /// Audits the page with axe-core and fails on any critical or serious violation; then saves a full-page
    /// screenshot named <paramref name="name"/>. The engine is evaluated through the browser's debugging protocol,
    /// which the page's Content-Security-Policy does not govern, so the page keeps its real policy.
    /// </summary>
    public static async Task AuditAsync(IPage page, string name)
    {
        ArgumentNullException.ThrowIfNull(page);
        if (!await page.EvaluateAsync<bool>("() => typeof window.axe === 'object'"))
        {
            await page.EvaluateAsync(AxeSource.Value);
        }
        var found = await page.EvaluateAsync<JsonElement>("""
            async () => (await axe.run(document, { resultTypes: ['violations'] })).violations
                .filter(v => v.impact === 'critical' || v.impact === 'serious')
                .map(v => v.id + ' (' + v.impact + '): ' + v.help + ' at ' + v.nodes.map(n => n.target.join(' ')).join(', '))
            """);
        var violations = found.EnumerateArray().Select(v => v.GetString()).ToList();
        Directory.CreateDirectory(ScreenshotDirectory);
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(ScreenshotDirectory, name + ".png"), FullPage = true });
        Assert.True(violations.Count == 0, $"axe found on {page.Url}:\n" + string.Join("\n", violations));
    }

    /// <summary>tests/Loomworks.Tests/Web/clients, where `npm ci` put axe-core.</summary>
    public static string ClientsDirectory()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "tests", "Loomworks.Tests", "Web", "clients");
            if (Directory.Exists(candidate))
            {
                return File.Exists(Path.Combine(candidate, "node_modules", "axe-core", "axe.min.js"))
                    ? candidate
                    : throw new InvalidOperationException(
                        $"axe-core is not installed: run npm ci --prefix tests/Loomworks.Tests/Web/clients");
            }
        }
        throw new InvalidOperationException("tests/Loomworks.Tests/Web/clients not found above " + AppContext.BaseDirectory);
    }
}
