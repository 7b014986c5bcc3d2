using System.Text;

namespace Loomworks.Configuration;

/// <summary>Writes a configuration file the way Odoo saves one: [options], one key per line, mode 0600.</summary>
public static class ConfigWriter
{
    public static string Render(LoomworksSettings settings, bool includeDefaults)
    {
        var text = new StringBuilder("[options]\n");
        foreach (var key in ConfigKeys.All)
        {
            if (!includeDefaults && settings.SourceOf(key) == ConfigSource.Default)
            {
                continue;
            }
            text.Append(key.Name).Append(" = ").Append(settings.Get(key) ?? "False").Append('\n');
        }
        return text.ToString();
    }

    /// <summary>Writes atomically (temporary file, then rename) so a crash never leaves half a file.</summary>
    public static void Write(string path, string content)
    {
        var directory = Path.GetDirectoryName(Path.GetFullPath(path))!;
        Directory.CreateDirectory(directory);
        var temporary = Path.Combine(directory, $".{Path.GetFileName(path)}.{Environment.ProcessId}.tmp");
        using (var stream = new FileStream(temporary, new FileStreamOptions
        {
            Mode = FileMode.Create,
            Access = FileAccess.Write,
            UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
        }))
        {
            stream.Write(Encoding.UTF8.GetBytes(content));
            stream.Flush(flushToDisk: true);
        }
        File.SetUnixFileMode(temporary, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        File.Move(temporary, path, overwrite: true);
    }
}
