using Loomworks.Postgres;
using System.Globalization;
using System.Text;
using Loomworks.Filestore;
using Microsoft.AspNetCore.StaticFiles;
using Npgsql;

namespace Loomworks.Records;

/// <summary>
/// Where a record environment keeps attachment bytes: the filestore, the database's folder name in it, and the size limit.
/// </summary>
public sealed record AttachmentStorage(FileStore Files, string Database, long MaxBytes)
{
    /// <summary>Default of loomworks_attachment_max_mb, for environments built without configuration.</summary>
    public const long DefaultMaxBytes = 64L * 1024 * 1024;
}

/// <summary>
/// Odoo's ir.attachment behaviour on top of the content-addressed filestore: <c>datas</c> (base64) and <c>raw</c> are
/// written to files named by their sha1, the row keeps checksum, file_size, store_fname and mimetype; the bytes never
/// enter the database. Old files are left to the collector, which spares them for the snapshot retention window.
/// </summary>
public static class Attachments
{
    public const string OctetStream = "application/octet-stream";

    /// <summary>The sha1 of no bytes: Odoo's checksum of an emptied attachment.</summary>
    public const string EmptyChecksum = "da39a3ee5e6b4b0d3255bfef95601890afd80709";

    private static readonly FileExtensionContentTypeProvider Extensions = new();
    private static readonly byte[] Png = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A];
    private static readonly byte[] Jpeg = [0xFF, 0xD8, 0xFF];
    private static readonly byte[] Icon = [0x00, 0x00, 0x01, 0x00];
    private static readonly byte[] OleCompound = [0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];

    /// <summary>The attachment fields that live in the filestore instead of a column.</summary>
    public static bool IsFileField(ModelDef model, FieldDef field) =>
        model == ModelRegistry.Attachment && field.Name is "datas" or "raw";

    /// <summary>
    /// Create and write: takes datas/raw out of <paramref name="values"/>, stores the bytes and puts the related values in
    /// their place (Odoo's _check_contents and _get_datas_related_values).
    /// </summary>
    public static async Task PrepareAsync(RecordEnvironment env, Dictionary<string, object?> values, bool creating, CancellationToken ct)
    {
        if (values.TryGetValue("store_fname", out var fname) && fname is string { Length: > 0 } s && !FileStore.IsStoreFname(s))
        {
            throw OdooException.User(
                $"Invalid store_fname {Domain.Show(s)}: a stored file name has the form xx/<sha1> and cannot point elsewhere.");
        }
        var hasRaw = values.Remove("raw", out var raw);
        var hasDatas = values.Remove("datas", out var datas);
        byte[]? content = null;
        if (hasRaw && Values.Truthy(raw))
        {
            content = raw switch
            {
                string text => Encoding.UTF8.GetBytes(text),
                byte[] bytes => bytes,
                _ => throw OdooException.User($"raw must be a string, not {Domain.Show(raw)}"),
            };
            CheckSize(env, content.LongLength);
        }
        else if (hasDatas && Values.Truthy(datas))
        {
            content = datas switch
            {
                string text => Decode(env, text),
                byte[] bytes => bytes,
                _ => throw OdooException.User($"datas must be base64 text, not {Domain.Show(datas)}"),
            };
        }
        if (creating || hasRaw || hasDatas || values.ContainsKey("mimetype"))
        {
            values["mimetype"] = Mimetype(values, content, env.Access.IsAdmin);
        }
        if (content is null)
        {
            if (hasRaw || hasDatas)
            {
                // Emptying the content, as Odoo does: no file, size 0, the checksum of nothing.
                values["store_fname"] = null;
                values["file_size"] = 0L;
                values["checksum"] = EmptyChecksum;
            }
            return;
        }
        var storage = Storage(env);
        StoredFile stored;
        using (var stream = new MemoryStream(content, writable: false))
        {
            stored = await storage.Files.StoreAsync(storage.Database, stream, ct);
        }
        values["store_fname"] = stored.StoreFname;
        values["file_size"] = stored.Size;
        values["checksum"] = stored.Checksum;
    }

    /// <summary>Fills datas (base64, or the human size with bin_size in the context) for rows read from ir.attachment.</summary>
    public static async Task ReadAsync(RecordEnvironment env, IEnumerable<FieldDef> fields,
        IReadOnlyDictionary<long, Dictionary<string, object?>> rows, CancellationToken ct)
    {
        var wanted = fields.Where(f => f.Name == "datas").ToList();
        if (wanted.Count == 0 || rows.Count == 0)
        {
            return;
        }
        var binSize = env.Context.TryGetValue("bin_size", out var b) && Values.Truthy(b);
        var files = new Dictionary<long, (string? Fname, long Size)>();
        await using (var command = new NpgsqlCommand(
            "SELECT id, store_fname, file_size FROM ir_attachment WHERE id = ANY($1)", env.Connection, env.Transaction))
        {
            command.Parameters.AddWithValue(rows.Keys.Select(id => (int)id).ToArray());
            await using var reader = await command.ExecuteReaderAsync(ct);
            while (await reader.ReadAsync(ct))
            {
                files[reader.GetInt32(0)] = (reader.IsDBNull(1) ? null : reader.GetString(1), reader.IsDBNull(2) ? 0 : reader.GetInt32(2));
            }
        }
        foreach (var (id, row) in rows)
        {
            var (fname, size) = files.GetValueOrDefault(id);
            if (binSize)
            {
                row["datas"] = fname is null ? false : HumanSize(size);
                continue;
            }
            var bytes = await ReadFileAsync(env, fname, ct);
            row["datas"] = bytes is { Length: > 0 } ? Convert.ToBase64String(bytes) : false;
        }
    }

    /// <summary>The store_fnames of attachment rows, before they are dropped or replaced.</summary>
    public static async Task<List<string>> StoreFnamesAsync(RecordEnvironment env, IReadOnlyCollection<long> ids, CancellationToken ct)
    {
        var result = new List<string>();
        await using var command = new NpgsqlCommand(
            "SELECT DISTINCT store_fname FROM ir_attachment WHERE id = ANY($1) AND store_fname IS NOT NULL",
            env.Connection, env.Transaction);
        command.Parameters.AddWithValue(ids.Select(id => (int)id).ToArray());
        await using var reader = await command.ExecuteReaderAsync(ct);
        while (await reader.ReadAsync(ct))
        {
            result.Add(reader.GetString(0));
        }
        return result;
    }

    /// <summary>
    /// Odoo's _file_delete: nothing is deleted, the files are only marked (their time set to now) so that the collector
    /// counts the retention window from the moment they lost this reference.
    /// </summary>
    public static void MarkDereferenced(RecordEnvironment env, IEnumerable<string> storeFnames)
    {
        if (env.Attachments is not { } storage)
        {
            return;
        }
        foreach (var fname in storeFnames)
        {
            storage.Files.Touch(storage.Database, fname);
        }
    }

    /// <summary>
    /// Deletes the database's files no ir_attachment row references and that were last written or referenced before
    /// <paramref name="olderThan"/>; referenced files get their time refreshed, so the window counts from the last reference.
    /// </summary>
    public static async Task<long> CollectAsync(PooledDatabase dataSource, FileStore files, string database, DateTimeOffset olderThan,
        CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(dataSource);
        ArgumentNullException.ThrowIfNull(files);
        var referenced = new List<string>();
        await using (var command = dataSource.CreateCommand("SELECT DISTINCT store_fname FROM ir_attachment WHERE store_fname IS NOT NULL"))
        await using (var reader = await command.ExecuteReaderAsync(ct))
        {
            while (await reader.ReadAsync(ct))
            {
                referenced.Add(reader.GetString(0));
            }
        }
        return await files.DeleteUnreferencedAsync(database, referenced, olderThan, ct);
    }

    /// <summary>
    /// Odoo's _compute_mimetype: the given one, else from the name, the url, then the content; markup becomes text/plain
    /// for non-administrators.
    /// </summary>
    public static string Mimetype(IReadOnlyDictionary<string, object?> values, byte[]? content, bool mayStoreMarkup)
    {
        string? mimetype = null;
        if (values.GetValueOrDefault("mimetype") is string { Length: > 0 } given)
        {
            mimetype = given;
        }
        if (mimetype is null && values.GetValueOrDefault("name") is string { Length: > 0 } name)
        {
            mimetype = FromName(name);
        }
        if (mimetype is null && values.GetValueOrDefault("url") is string { Length: > 0 } url)
        {
            mimetype = FromName(url.Split('?')[0]);
        }
        if ((mimetype is null || mimetype == OctetStream) && content is { Length: > 0 })
        {
            mimetype = Sniff(content);
        }
        mimetype ??= OctetStream;
        // Odoo serves attachments inline: HTML, SVG or XML stored by a user who cannot edit views would be stored XSS.
        var xmlLike = mimetype.Contains("ht", StringComparison.OrdinalIgnoreCase)
            || (mimetype.Contains("xml", StringComparison.OrdinalIgnoreCase)
                && !mimetype.Contains("openxmlformats", StringComparison.OrdinalIgnoreCase));
        return xmlLike && !mayStoreMarkup ? "text/plain" : mimetype;
    }

    private static string? FromName(string name) => Extensions.TryGetContentType(name, out var type) ? type : null;

    /// <summary>Odoo's guess_mimetype: the magic numbers of the common formats.</summary>
    public static string Sniff(ReadOnlySpan<byte> content)
    {
        if (content.StartsWith("%PDF"u8))
        {
            return "application/pdf";
        }
        if (content.StartsWith(Png))
        {
            return "image/png";
        }
        if (content.StartsWith(Jpeg))
        {
            return "image/jpeg";
        }
        if (content.StartsWith("GIF87a"u8) || content.StartsWith("GIF89a"u8))
        {
            return "image/gif";
        }
        if (content.StartsWith("RIFF"u8) && content.Length >= 12 && content[8..12].SequenceEqual("WEBP"u8))
        {
            return "image/webp";
        }
        if (content.StartsWith("BM"u8))
        {
            return "image/bmp";
        }
        if (content.StartsWith(Icon))
        {
            return "image/x-icon";
        }
        if (content.StartsWith(OleCompound))
        {
            return "application/msword";
        }
        if (content.StartsWith("PK\x03\x04"u8))
        {
            var head = Encoding.Latin1.GetString(content[..Math.Min(content.Length, 4096)]);
            const string OpenXml = "application/vnd.openxmlformats-officedocument.";
            const string OpenDocument = "application/vnd.oasis.opendocument.";
            return head.Contains("word/", StringComparison.Ordinal) ? OpenXml + "wordprocessingml.document"
                : head.Contains("xl/", StringComparison.Ordinal) ? OpenXml + "spreadsheetml.sheet"
                : head.Contains("ppt/", StringComparison.Ordinal) ? OpenXml + "presentationml.presentation"
                : head.Contains("mimetype" + OpenDocument + "text", StringComparison.Ordinal) ? OpenDocument + "text"
                : head.Contains("mimetype" + OpenDocument + "spreadsheet", StringComparison.Ordinal) ? OpenDocument + "spreadsheet"
                : "application/zip";
        }
        if (content.StartsWith("<"u8))
        {
            var head = Encoding.UTF8.GetString(content[..Math.Min(content.Length, 1024)]);
            if (head.Contains("<svg", StringComparison.OrdinalIgnoreCase))
            {
                return "image/svg+xml";
            }
        }
        return OctetStream;
    }

    /// <summary>Odoo's human_size: "12.00 bytes", "1.50 Kb".</summary>
    public static string HumanSize(long size)
    {
        string[] units = ["bytes", "Kb", "Mb", "Gb", "Tb"];
        double value = size;
        var unit = 0;
        while (value >= 1024 && unit < units.Length - 1)
        {
            value /= 1024;
            unit++;
        }
        return string.Create(CultureInfo.InvariantCulture, $"{value:F2} {units[unit]}");
    }

    private static AttachmentStorage Storage(RecordEnvironment env) => env.Attachments
        ?? throw OdooException.User("This server has no filestore configured: attachment contents cannot be stored.");

    private static byte[] Decode(RecordEnvironment env, string text)
    {
        // Checked before decoding: an oversized upload must not be decoded into memory only to be refused.
        CheckSize(env, text.Length / 4L * 3);
        try
        {
            var bytes = Convert.FromBase64String(text);
            CheckSize(env, bytes.LongLength);
            return bytes;
        }
        catch (FormatException)
        {
            throw OdooException.User(
                $"The attachment's datas is not valid base64 ({text.Length} characters received); nothing was stored.");
        }
    }

    private static void CheckSize(RecordEnvironment env, long bytes)
    {
        var limit = env.Attachments?.MaxBytes ?? AttachmentStorage.DefaultMaxBytes;
        if (bytes > limit)
        {
            var size = (bytes / (1024.0 * 1024)).ToString("F1", CultureInfo.InvariantCulture);
            var limitMb = (limit / (1024 * 1024)).ToString(CultureInfo.InvariantCulture);
            throw OdooException.User($"The attachment is {size} MB, larger than the limit of {limitMb} MB "
                + "(loomworks_attachment_max_mb); nothing was stored.");
        }
    }

    private static async Task<byte[]?> ReadFileAsync(RecordEnvironment env, string? fname, CancellationToken ct)
    {
        if (fname is null || env.Attachments is not { } storage || !FileStore.IsStoreFname(fname))
        {
            return null;
        }
        try
        {
            await using var stream = await storage.Files.OpenAsync(storage.Database, fname);
            using var buffer = new MemoryStream();
            await stream.CopyToAsync(buffer, ct);
            return buffer.ToArray();
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            // As Odoo's _file_read: a missing file reads as empty, the row stays usable.
            return null;
        }
    }
}
