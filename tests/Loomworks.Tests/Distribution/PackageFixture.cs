using Loomworks.Tests.Infrastructure;

namespace Loomworks.Tests.Distribution;

/// <summary>
/// Builds the .deb and .rpm once per test run with the real build script (one self-contained publish), for every
/// package test to inspect and install.
/// </summary>
public sealed class PackageFixture : IAsyncLifetime
{
    private readonly Scratch _scratch = new("packages");

    public string DebPath { get; private set; } = "";
    public string RpmPath { get; private set; } = "";
    public TimeSpan BuildTime { get; private set; }

    public static string Version => LoomworksVersion.Full;

    public async ValueTask InitializeAsync()
    {
        var watch = System.Diagnostics.Stopwatch.StartNew();
        var (exitCode, output) = await Tool.RunAsync(Tool.Repo("infrastructure", "packaging", "build-packages.sh"),
            ["--arch", "amd64", "--fast", "--output", _scratch.Path], timeout: TimeSpan.FromMinutes(8));
        BuildTime = watch.Elapsed;
        if (exitCode != 0)
        {
            throw new InvalidOperationException($"build-packages.sh exited {exitCode}:\n{output}");
        }
        DebPath = _scratch.File($"loomworks-erp_{Version}_amd64.deb");
        RpmPath = _scratch.File($"loomworks-erp-{Version}-1.x86_64.rpm");
        foreach (var path in new[] { DebPath, RpmPath })
        {
            if (!File.Exists(path))
            {
                throw new InvalidOperationException($"build-packages.sh did not write {path}:\n{output}");
            }
        }
    }

    public ValueTask DisposeAsync()
    {
        _scratch.Dispose();
        return ValueTask.CompletedTask;
    }
}

/// <summary>The package tests share one build and run one at a time: dpkg operations on the machine must not overlap.</summary>
[CollectionDefinition(Name)]
public sealed class PackageGroup : ICollectionFixture<PackageFixture>
{
    public const string Name = "packages";
}
