using System.Diagnostics;

namespace Loomworks.Postgres;

/// <summary>Finds PostgreSQL's server programs: <c>pg_config --bindir</c> first, then the newest /usr/lib/postgresql/*/bin.</summary>
public sealed class PostgresBinaries
{
    public const string DebianPackage = "postgresql-15";
    private static readonly string[] Required = ["initdb", "pg_ctl", "postgres"];

    private PostgresBinaries(string directory) => Directory = directory;

    public string Directory { get; }

    public string this[string program] => Path.Combine(Directory, program);

    /// <summary>Locates the binaries, in <paramref name="explicitDirectory"/> when one is configured.</summary>
    public static PostgresBinaries Locate(string? explicitDirectory = null)
    {
        if (explicitDirectory is not null)
        {
            return HasServerPrograms(explicitDirectory)
                ? new PostgresBinaries(explicitDirectory)
                : throw new InvalidOperationException(
                    $"PostgreSQL server programs ({string.Join(", ", Required)}) are not in {explicitDirectory}; " +
                    $"install the Debian package {DebianPackage} (apt-get install {DebianPackage}) or fix loomworks_pg_bindir");
        }
        foreach (var candidate in Candidates())
        {
            if (HasServerPrograms(candidate))
            {
                return new PostgresBinaries(candidate);
            }
        }
        throw new InvalidOperationException(
            $"PostgreSQL server programs ({string.Join(", ", Required)}) were not found through pg_config or in " +
            $"/usr/lib/postgresql/*/bin; install the Debian package {DebianPackage} (apt-get install {DebianPackage}), " +
            "or set db_host to use an existing PostgreSQL server");
    }

    private static bool HasServerPrograms(string directory) => Required.All(p => File.Exists(Path.Combine(directory, p)));

    private static IEnumerable<string> Candidates()
    {
        if (PgConfigBinDir() is { } fromPgConfig)
        {
            yield return fromPgConfig;
        }
        if (System.IO.Directory.Exists("/usr/lib/postgresql"))
        {
            foreach (var versioned in System.IO.Directory.GetDirectories("/usr/lib/postgresql")
                .OrderByDescending(d => int.TryParse(Path.GetFileName(d), out var v) ? v : 0))
            {
                yield return Path.Combine(versioned, "bin");
            }
        }
    }

    private static string? PgConfigBinDir()
    {
        try
        {
            using var process = Process.Start(new ProcessStartInfo("pg_config", "--bindir")
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            });
            if (process is null)
            {
                return null;
            }
            var output = process.StandardOutput.ReadToEnd().Trim();
            process.WaitForExit();
            return process.ExitCode == 0 && output.Length > 0 ? output : null;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return null; // no pg_config on PATH
        }
    }
}
