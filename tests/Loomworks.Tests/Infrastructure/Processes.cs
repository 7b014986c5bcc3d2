namespace Loomworks.Tests.Infrastructure;

/// <summary>Looks through /proc for processes whose command line mentions a path: what a test left running.</summary>
public static class Processes
{
    public static IReadOnlyList<int> Mentioning(string path)
    {
        var found = new List<int>();
        foreach (var dir in Directory.GetDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid))
            {
                continue;
            }
            try
            {
                var commandLine = File.ReadAllText(Path.Combine(dir, "cmdline")).Replace('\0', ' ');
                if (commandLine.Contains(path, StringComparison.Ordinal))
                {
                    found.Add(pid);
                }
            }
            catch (IOException)
            {
                // The process ended while we looked.
            }
            catch (UnauthorizedAccessException)
            {
            }
        }
        return found;
    }

    /// <summary>Waits until no process mentions <paramref name="path"/>; returns those still there at the deadline.</summary>
    public static async Task<IReadOnlyList<int>> WaitUntilNoneMentionAsync(string path, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var left = Mentioning(path);
            if (left.Count == 0 || DateTime.UtcNow > deadline)
            {
                return left;
            }
            await Task.Delay(100);
        }
    }
}
