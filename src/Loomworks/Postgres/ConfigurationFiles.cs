namespace Loomworks.Postgres;

/// <summary>Small files that hold secrets: written whole, readable by their owner only.</summary>
public static class ConfigurationFiles
{
    public static void WriteSecret(string path, string content)
    {
        var temporary = path + ".tmp";
        File.WriteAllText(temporary, content);
        File.SetUnixFileMode(temporary, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        File.Move(temporary, path, overwrite: true);
    }
}
