using Loomworks.Tests.Web;
using Microsoft.Playwright;

// One Chromium for the whole run, started by the first browser test that asks for it.
[assembly: AssemblyFixture(typeof(BrowserFixture))]
namespace Loomworks.Tests.Web;

/// <summary>
/// Debian's Chromium driven by Playwright, shared by every browser test of the run. It is launched on first use, so a
/// run without browser tests starts none; names under <see cref="WebServer.BaseDomain"/> resolve to this machine.
/// </summary>
public sealed class BrowserFixture : IAsyncDisposable
{
    public const string ChromiumPath = "/usr/bin/chromium";
    private readonly SemaphoreSlim _launch = new(1, 1);
    private IPlaywright? _playwright;
    private IBrowser? _browser;

    public async Task<IBrowser> BrowserAsync()
    {
        await _launch.WaitAsync();
        try
        {
            if (_browser is null)
            {
                _playwright = await Playwright.CreateAsync();
                var args = new List<string> { $"--host-resolver-rules=MAP *.{WebServer.BaseDomain} 127.0.0.1" };
                if (Environment.UserName == "root")
                {
                    args.Add("--no-sandbox");
                }
                _browser = await _playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
                {
                    ExecutablePath = ChromiumPath,
                    Headless = true,
                    Args = args,
                });
            }
            return _browser;
        }
        finally
        {
            _launch.Release();
        }
    }

    /// <summary>A fresh context (own cookies) whose pages are 1280 px wide unless asked otherwise.</summary>
    public async Task<IBrowserContext> NewContextAsync(int width = 1280, int height = 900) =>
        await (await BrowserAsync()).NewContextAsync(new BrowserNewContextOptions
        {
            ViewportSize = new ViewportSize { Width = width, Height = height },
            AcceptDownloads = true,
        });

    public async ValueTask DisposeAsync()
    {
        if (_browser is not null)
        {
            await _browser.DisposeAsync();
        }
        _playwright?.Dispose();
        _launch.Dispose();
    }
}
