using Loomworks.Postgres;

namespace Loomworks.Testing;

/// <summary>
/// A folder under the system temp directory, removed on dispose. Not under /root: PostgreSQL runs as the postgres
/// user when the tests run as root, and must reach the clusters' folders.
/// </summary>
public sealed class Scratch : IDisposable
{
    /// <param name="purpose">A word in the folder's name, to tell what left it behind.</param>
    /// <param name="giveToServerUser">Hands the folder to the postgres user when running as root (a cluster's own data).</param>
    public Scratch(string purpose = "test", bool giveToServerUser = false)
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"loomworks-{purpose}-{Guid.NewGuid():N}"[..40]);
        Directory.CreateDirectory(Path);
        System.IO.File.SetUnixFileMode(Path, (UnixFileMode)0b111_101_101);
        if (giveToServerUser)
        {
            CommandRunner.GiveToServerUser(Path);
        }
    }

    public string Path { get; }

    public string File(string name) => System.IO.Path.Combine(Path, name);

    /// <summary>Writes <paramref name="text"/> to the file <paramref name="name"/> in this folder and returns its path.</summary>
    public string Write(string name, string text)
    {
        var path = File(name);
        System.IO.File.WriteAllText(path, text);
        return path;
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
            // A process we started may still hold a file; the temp folder is cleaned by the OS.
        }
    }

    /// <summary>A TCP port nobody listens on right now.</summary>
    public static int FreePort()
    {
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        return ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>Stops an embedded cluster and deletes its folder; used by fixtures that own a cluster.</summary>
    public static async Task StopAndDeleteAsync(EmbeddedCluster cluster, Scratch scratch)
    {
        await cluster.StopAsync();
        scratch.Dispose();
    }
}
