using System.Text.Json;
using System.Text.Json.Nodes;

namespace Loomworks.Backups;

/// <summary>
/// manifest.json of a backup zip. Odoo's keys (db_name, version, major_version, pg_version) plus our format marker
/// <c>loomworks_dump</c> and the tenant schema version, so a restore can refuse foreign or newer dumps before loading.
/// </summary>
public sealed record BackupManifest(string DbName, string Version, string PgVersion, int SchemaVersion,
    string FormatVersion = BackupManifest.CurrentFormat)
{
    public const string Marker = "loomworks_dump";
    public const string CurrentFormat = "1";
    public const string FileName = "manifest.json";
    public const string DumpFileName = "dump.sql";
    public const string FilestorePrefix = "filestore/";

    public byte[] ToJson() => JsonSerializer.SerializeToUtf8Bytes(new JsonObject
    {
        [Marker] = FormatVersion,
        ["db_name"] = DbName,
        ["version"] = Version,
        ["major_version"] = LoomworksVersion.OdooVersion,
        ["pg_version"] = PgVersion,
        ["schema_version"] = SchemaVersion,
    }, IndentedOptions);

    /// <summary>Reads a manifest; a JSON without our marker is refused with what it seems to be instead.</summary>
    public static BackupManifest Parse(ReadOnlySpan<byte> json)
    {
        JsonObject root;
        try
        {
            root = JsonNode.Parse(json) as JsonObject ?? throw new JsonException("not an object");
        }
        catch (JsonException e)
        {
            throw new DatabaseManagerException(DatabaseManagerError.InvalidBackup, $"manifest.json is not valid JSON: {e.Message}");
        }
        if (!root.ContainsKey(Marker))
        {
            var what = root.ContainsKey("odoo_dump") ? "an Odoo backup" : "a backup of another product";
            throw new DatabaseManagerException(DatabaseManagerError.InvalidBackup,
                $"this is {what}, not a Loomworks backup (manifest.json has no '{Marker}' marker)");
        }
        var format = Text(root, Marker);
        if (format != CurrentFormat)
        {
            throw new DatabaseManagerException(DatabaseManagerError.InvalidBackup,
                $"backup format {format} is not supported by Loomworks {LoomworksVersion.Version} (it reads format {CurrentFormat})");
        }
        var schema = root["schema_version"] is JsonValue v && v.TryGetValue<int>(out var s) ? s
            : throw new DatabaseManagerException(DatabaseManagerError.InvalidBackup, "manifest.json has no schema_version");
        return new BackupManifest(Text(root, "db_name"), Text(root, "version"), Text(root, "pg_version"), schema, format);
    }

    private static string Text(JsonObject root, string key) =>
        root[key] is JsonValue value && value.TryGetValue<string>(out var text) ? text : "";

    private static readonly JsonSerializerOptions IndentedOptions = new() { WriteIndented = true };
}
