namespace Loomworks.Bench;

/// <summary>A directory under the system temp folder (reachable by the postgres user), removed on dispose.</summary>
public sealed class ScratchDirectory : IDisposable
{
    public ScratchDirectory()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "loomworks-bench-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(Path);
        File.SetUnixFileMode(Path, (UnixFileMode)0b111_101_101);
        Loomworks.Postgres.CommandRunner.GiveToServerUser(Path);
    }

    public string Path { get; }

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
            // Left for the OS's temp cleaning; a bench must not fail over it.
        }
    }
}
