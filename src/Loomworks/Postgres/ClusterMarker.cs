using System.Buffers.Binary;
using System.Globalization;
using Loomworks.Configuration;

namespace Loomworks.Postgres;

/// <summary>Which commands may create the embedded cluster, and when.</summary>
public enum ClusterCreation
{
    /// <summary>Every command but the server: a running or stopped cluster is used, none is ever created.</summary>
    Never,

    /// <summary>The server: creates the cluster when data_dir holds none and the marker records none.</summary>
    FirstStart,

    /// <summary>
    /// <c>loomworks server --init-cluster</c>: creates the cluster when data_dir holds none even though the marker
    /// records one, and records the cluster data_dir holds as Loomworks' own.
    /// </summary>
    Deliberate,
}

/// <summary>What the marker says: the cluster the server created, where, and which one (its system identifier).</summary>
public sealed record ClusterRecord(string DataDir, ulong SystemIdentifier, DateTimeOffset Recorded);

/// <summary>
/// A file outside data_dir recording that the server created the embedded cluster there. A purge, a volume not
/// mounted yet or a typo in data_dir leaves data_dir empty but the marker in place, so the next start refuses
/// instead of serving a new empty cluster as if no tenant had ever existed.
/// </summary>
public sealed class ClusterMarker(string path)
{
    public const string FileName = "loomworks-cluster.marker";
    public const string PackageStateDir = "/var/lib/loomworks.state";

    public string Path { get; } = path;

    /// <summary>
    /// loomworks_state_dir; else /var/lib/loomworks.state for the package's configuration (/etc/loomworks) and for
    /// root without a configuration file (the package's defaults); else the folder of the configuration file in use;
    /// else $XDG_STATE_HOME/loomworks. Never data_dir itself, whose loss the marker is there to notice.
    /// </summary>
    public static ClusterMarker For(LoomworksSettings settings)
    {
        var home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        var userFile = System.IO.Path.Combine(home, ".loomworksrc");
        string folder;
        if (settings.Get(ConfigKeys.StateDir) is { } configured)
        {
            folder = System.IO.Path.GetFullPath(configured.StartsWith("~/", StringComparison.Ordinal)
                ? System.IO.Path.Combine(home, configured[2..])
                : configured);
        }
        else if (settings.ConfigFile is { } file && file.StartsWith("/etc/loomworks/", StringComparison.Ordinal))
        {
            folder = PackageStateDir;
        }
        else if (settings.ConfigFile is { } other && other != userFile)
        {
            folder = System.IO.Path.GetDirectoryName(other)!;
        }
        else if (Environment.UserName == "root")
        {
            folder = PackageStateDir;
        }
        else
        {
            var xdg = Environment.GetEnvironmentVariable("XDG_STATE_HOME");
            folder = System.IO.Path.Combine(
                string.IsNullOrEmpty(xdg) ? System.IO.Path.Combine(home, ".local", "state") : xdg, "loomworks");
        }
        return new ClusterMarker(System.IO.Path.Combine(folder, FileName));
    }

    /// <summary>The record, or null when there is none; an unreadable or damaged marker is refused, never ignored.</summary>
    public ClusterRecord? Read()
    {
        if (!File.Exists(Path))
        {
            return null;
        }
        Dictionary<string, string> values;
        try
        {
            values = File.ReadAllLines(Path)
                .Where(l => l.Length > 0 && l[0] != '#' && l.Contains('=', StringComparison.Ordinal))
                .Select(l => l.Split('=', 2))
                .ToDictionary(p => p[0].Trim(), p => p[1].Trim(), StringComparer.Ordinal);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
        {
            throw new InvalidOperationException($"the cluster marker {Path} cannot be read: {e.Message}", e);
        }
        if (!values.TryGetValue("data_dir", out var dataDir)
            || !values.TryGetValue("system_identifier", out var id)
            || !ulong.TryParse(id, NumberStyles.None, CultureInfo.InvariantCulture, out var systemIdentifier))
        {
            throw new InvalidOperationException(
                $"the cluster marker {Path} is damaged (it must name data_dir and system_identifier); " +
                "if data_dir holds the cluster you mean, `loomworks server --init-cluster` records it again");
        }
        var recorded = values.TryGetValue("recorded", out var when)
            && DateTimeOffset.TryParse(when, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var at)
            ? at
            : DateTimeOffset.MinValue;
        return new ClusterRecord(dataDir, systemIdentifier, recorded);
    }

    /// <summary>Fails, before anything is created, when the marker's folder cannot be written by this user.</summary>
    public void EnsureWritable()
    {
        var folder = System.IO.Path.GetDirectoryName(Path)!;
        try
        {
            Directory.CreateDirectory(folder);
            var probe = System.IO.Path.Combine(folder, $".write-test-{Environment.ProcessId}");
            File.WriteAllText(probe, "");
            File.Delete(probe);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new InvalidOperationException(
                $"cannot record the embedded cluster in {Path}: {e.Message}; set loomworks_state_dir to a folder outside " +
                "data_dir that this user may write", e);
        }
    }

    /// <summary>Written to a scratch file and renamed into place, so a crash never leaves half a marker.</summary>
    public void Write(ClusterRecord record)
    {
        EnsureWritable();
        var text = "# The embedded PostgreSQL cluster Loomworks created. While this file names it, Loomworks refuses to start\n"
            + "# on a data_dir without it instead of creating a new, empty one; `loomworks server --init-cluster` re-creates.\n"
            + $"data_dir={record.DataDir}\n"
            + string.Create(CultureInfo.InvariantCulture, $"system_identifier={record.SystemIdentifier}\n")
            + $"recorded={record.Recorded.ToUniversalTime().ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture)}\n";
        var scratch = Path + $".{Environment.ProcessId}.tmp";
        File.WriteAllText(scratch, text);
        File.Move(scratch, Path, overwrite: true);
    }

    /// <summary>
    /// The cluster's system identifier, chosen at random by initdb and kept by every copy and restore of it: the first
    /// eight bytes of global/pg_control, in the machine's byte order. Null when there is no pg_control.
    /// </summary>
    public static ulong? SystemIdentifierOf(string pgData)
    {
        var control = System.IO.Path.Combine(pgData, "global", "pg_control");
        if (!File.Exists(control))
        {
            return null;
        }
        Span<byte> head = stackalloc byte[8];
        using var stream = File.OpenRead(control);
        stream.ReadExactly(head);
        return BitConverter.IsLittleEndian ? BinaryPrimitives.ReadUInt64LittleEndian(head) : BinaryPrimitives.ReadUInt64BigEndian(head);
    }
}
