namespace Loomworks.Tests.Distribution;

/// <summary>
/// Exclusive use of this machine's dpkg for one test: a lock file keeps concurrent test runs apart, and dpkg is
/// retried while apt (another run's dev.sh, say) holds its own lock.
/// </summary>
public sealed class DpkgMachine : IAsyncDisposable
{
    private const string LockPath = "/tmp/loomworks-tests-dpkg.lock";
    private static readonly string[] KeptByPurge = ["/var/lib/loomworks", "/var/lib/loomworks.state"];
    private readonly FileStream _lock;

    private DpkgMachine(FileStream fileLock) => _lock = fileLock;

    public static async Task<DpkgMachine> LockAsync()
    {
        var deadline = DateTime.UtcNow.AddMinutes(5);
        while (true)
        {
            try
            {
                return new DpkgMachine(new FileStream(LockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None));
            }
            catch (IOException) when (DateTime.UtcNow < deadline)
            {
                await Task.Delay(500);
            }
        }
    }

    public Task<string> DpkgAsync(params string[] arguments) => DpkgAsync(arguments, new Dictionary<string, string?>());

    /// <summary>Runs dpkg non-interactively (debconf questions take their answer or default) and returns its output.</summary>
    public async Task<string> DpkgAsync(string[] arguments, IReadOnlyDictionary<string, string?> environment)
    {
        // dpkg runs only while this test holds the machine.
        ObjectDisposedException.ThrowIf(!_lock.CanRead, this);
        var deadline = DateTime.UtcNow.AddMinutes(3);
        var variables = new Dictionary<string, string?>(environment) { ["DEBIAN_FRONTEND"] = "noninteractive" };
        while (true)
        {
            var (exitCode, output) = await Tool.RunAsync("dpkg", arguments, environment: variables);
            if (exitCode == 0)
            {
                return output;
            }
            if (!output.Contains("lock", StringComparison.OrdinalIgnoreCase) || DateTime.UtcNow > deadline)
            {
                Assert.Fail($"dpkg {string.Join(' ', arguments)} exited {exitCode}:\n{output}");
            }
            await Task.Delay(1000);
        }
    }

    /// <summary>
    /// Purges the package if any trace of it is known to dpkg (installed, or configuration left); with
    /// <paramref name="removeData"/> its data goes too (LOOMWORKS_PURGE_DATA=yes), as does data an earlier purge kept.
    /// </summary>
    public async Task PurgeAsync(string package, bool removeData = true)
    {
        var (exitCode, _) = await Tool.RunAsync("dpkg-query", ["-W", package]);
        if (exitCode == 0)
        {
            await DpkgAsync(["-P", package], new Dictionary<string, string?> { ["LOOMWORKS_PURGE_DATA"] = removeData ? "yes" : null });
        }
        if (removeData)
        {
            foreach (var kept in KeptByPurge.Where(Directory.Exists))
            {
                Directory.Delete(kept, recursive: true);
            }
        }
    }

    public static (int Uid, string Home, string Shell)? PasswdEntry(string user)
    {
        foreach (var line in File.ReadLines("/etc/passwd"))
        {
            var fields = line.Split(':');
            if (fields.Length >= 7 && fields[0] == user)
            {
                return (int.Parse(fields[2], System.Globalization.CultureInfo.InvariantCulture), fields[5], fields[6]);
            }
        }
        return null;
    }

    public async ValueTask DisposeAsync() => await _lock.DisposeAsync();
}
