using System.Globalization;
using System.Text.Json;
using Loomworks.Backups;
using Loomworks.Configuration;
using Loomworks.Filestore;
using Loomworks.Postgres;
using Loomworks.Tenancy;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Net.Http.Headers;

namespace Loomworks.Server.Backups;

/// <summary>Odoo's database-manager routes under /web/database/, with Odoo's form field names.</summary>
public static class DatabaseManagerEndpoints
{
    private const int MaxFieldChars = 4096;

    /// <summary>Parts of a restore form beyond Odoo's five (and a few unknown ones) are refused, not read on and on.</summary>
    private const int MaxSections = 16;

    /// <summary>The fields of Odoo's restore form kept besides the file; others are read and dropped.</summary>
    private static readonly HashSet<string> RestoreFields = new(StringComparer.Ordinal)
    {
        "master_pwd", "name", "copy", "neutralize_database",
    };

    /// <summary>
    /// The database manager, its master-password gate, the filestore and its collector, and recovery of interrupted jobs
    /// at start.
    /// </summary>
    public static IServiceCollection AddDatabaseManager(this IServiceCollection services, LoomworksSettings settings)
    {
        services.AddSingleton(_ => new FileStore(settings.DataDir));
        // A backup is restorable when its schema is one this binary's tenant migrations know.
        services.AddSingleton(sp => DatabaseManagerOptions.From(settings, sp.GetRequiredService<ITenantDatabaseSetup>()));
        services.AddSingleton<TenantRegistration>();
        services.AddSingleton(sp => new PgTools(sp.GetRequiredService<TenantDataSources>().Endpoint,
            PostgresBinaries.Locate(sp.GetRequiredService<DatabaseManagerOptions>().PgBinDir).Directory));
        services.AddSingleton<DatabaseManager>();
        services.AddSingleton<IMasterPasswordCheck, MasterPasswordGate>();
        services.AddHostedService<DatabaseManagerRecovery>();
        services.AddSingleton<FilestoreCollector>();
        services.AddHostedService(sp => sp.GetRequiredService<FilestoreCollector>());
        return services;
    }

    public static IEndpointRouteBuilder MapDatabaseManager(this IEndpointRouteBuilder endpoints)
    {
        var group = endpoints.MapGroup("/web/database");
        group.MapPost("/backup", BackupAsync);
        group.MapPost("/restore", RestoreAsync);
        group.MapPost("/duplicate", (HttpContext c, DatabaseManager m, IMasterPasswordCheck g) => FormAsync(c, g, "duplicate", async f =>
        {
            await m.DuplicateAsync(f.Get("name"), f.Get("new_name"), Truthy(f.Optional("neutralize_database")), c.RequestAborted);
            return Redirect();
        }));
        group.MapPost("/drop", (HttpContext c, DatabaseManager m, IMasterPasswordCheck g) => FormAsync(c, g, "drop", async f =>
        {
            var name = f.Get("name");
            return await m.DropAsync(name, c.RequestAborted)
                ? Redirect()
                : Error(new DatabaseManagerException(DatabaseManagerError.NotFound, $"database '{name}' does not exist"), "drop");
        }));
        group.MapPost("/rename", (HttpContext c, DatabaseManager m, IMasterPasswordCheck g) => FormAsync(c, g, "rename", async f =>
        {
            await m.RenameAsync(f.Get("name"), f.Get("new_name"), c.RequestAborted);
            return Redirect();
        }));
        group.MapPost("/change_password", (HttpContext c, IMasterPasswordCheck g) => FormAsync(c, null, "change_password", async f =>
        {
            await g.ChangeAsync(f.Optional("master_pwd"), f.Get("master_pwd_new"), Client(c), c.RequestAborted);
            return Redirect();
        }));
        group.MapPost("/list", ListAsync);
        return endpoints;
    }

    private static async Task<IResult> ListAsync(HttpContext context, DatabaseManager manager, IMasterPasswordCheck gate)
    {
        JsonElement id = default;
        try
        {
            using var body = await JsonDocument.ParseAsync(context.Request.Body, cancellationToken: context.RequestAborted);
            if (body.RootElement.ValueKind == JsonValueKind.Object && body.RootElement.TryGetProperty("id", out var given))
            {
                id = given.Clone();
            }
        }
        catch (JsonException)
        {
            // Odoo's mobile app sends a JSON-RPC envelope; an empty or odd body still gets the list.
        }
        try
        {
            await gate.CheckEnabledAsync(context.RequestAborted);
            var names = await manager.ListAsync(context.RequestAborted);
            return TypedResults.Json(new Dictionary<string, object?>
            {
                ["jsonrpc"] = "2.0",
                ["id"] = id.ValueKind == JsonValueKind.Undefined ? null : id,
                ["result"] = names,
            });
        }
        catch (DatabaseManagerException e)
        {
            return Error(e, "list");
        }
    }

    internal static async Task<IResult> BackupAsync(HttpContext context, DatabaseManager manager, IMasterPasswordCheck gate)
    {
        Form form;
        try
        {
            form = await Form.ReadAsync(context);
            await gate.CheckAsync(form.Optional("master_pwd"), Client(context), context.RequestAborted);
        }
        catch (DatabaseManagerException e)
        {
            return Error(e, "backup");
        }
        var name = form.Optional("name") ?? "";
        var formatText = form.Optional("backup_format") ?? "zip";
        if (formatText is not ("zip" or "dump"))
        {
            return Error(new DatabaseManagerException(DatabaseManagerError.InvalidBackup,
                $"backup_format must be zip or dump, not '{formatText}'"), "backup");
        }
        var format = formatText == "zip" ? BackupFormat.Zip : BackupFormat.Dump;
        var problem = DatabaseNames.Problem(name);
        if (problem is not null || !await manager.DatabaseExistsAsync(name, context.RequestAborted))
        {
            return Error(new DatabaseManagerException(problem is null ? DatabaseManagerError.NotFound : DatabaseManagerError.InvalidName,
                problem ?? $"database '{name}' does not exist"), "backup");
        }
        var stamp = DateTime.UtcNow.ToString("yyyy-MM-dd_HH-mm-ss", CultureInfo.InvariantCulture);
        context.Response.ContentType = format == BackupFormat.Zip ? "application/zip" : "application/octet-stream";
        context.Response.Headers.ContentDisposition = $"attachment; filename=\"{name}_{stamp}.{formatText}\"";
        context.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
        if (context.Features.Get<IHttpBodyControlFeature>() is { } bodyControl)
        {
            // DeflateStream flushes its last block synchronously when a zip entry is closed, even from DisposeAsync.
            bodyControl.AllowSynchronousIO = true;
        }
        // Unbuffered, every 8 KB block the zip's deflater writes would be its own flush and send; 1 MB writes are what
        // a backup written to a file gets from its FileStream. It is flushed only on success and never disposed, since
        // disposing would flush a half-written buffer into the response after a failure.
        var body = new BufferedStream(context.Response.Body, 1 << 20);
        try
        {
            await manager.DumpAsync(name, body, format, Truthy(form.Optional("filestore") ?? "true"), context.RequestAborted);
            await body.FlushAsync(context.RequestAborted);
        }
        catch (Exception e) when (context.Response.HasStarted)
        {
            // The download is under way: cutting the connection is the only way to say it is not whole.
            context.RequestServices.GetRequiredService<ILogger<DatabaseManager>>()
                .LogError(e, "Backup of {Database} failed mid-stream", name);
            context.Abort();
        }
        catch (DatabaseManagerException e)
        {
            return Error(e, "backup");
        }
        return TypedResults.Empty;
    }

    internal static async Task<IResult> RestoreAsync(HttpContext context, DatabaseManager manager, IMasterPasswordCheck gate,
        DatabaseManagerOptions options)
    {
        if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit)
        {
            limit.MaxRequestBodySize = options.MaxRestoreBytes + (1 << 20);
        }
        var boundary = context.Request.ContentType is { } type && MediaTypeHeaderValue.TryParse(type, out var media)
            && media.MediaType.Equals("multipart/form-data", StringComparison.OrdinalIgnoreCase)
                ? HeaderUtilities.RemoveQuotes(media.Boundary).Value
                : null;
        if (string.IsNullOrEmpty(boundary))
        {
            return Error(new DatabaseManagerException(DatabaseManagerError.InvalidBackup,
                "send the backup as multipart/form-data with fields master_pwd, name, backup_file"), "restore");
        }
        UploadSpool.SpooledUpload? upload = null;
        var fields = new Dictionary<string, string>(StringComparer.Ordinal);
        try
        {
            // Not a byte of the body is read while the manager is off.
            await gate.CheckEnabledAsync(context.RequestAborted);
            var reader = new MultipartReader(boundary, context.Request.Body);
            var sections = 0;
            while (await reader.ReadNextSectionAsync(context.RequestAborted) is { } section)
            {
                if (++sections > MaxSections)
                {
                    throw new DatabaseManagerException(DatabaseManagerError.InvalidBackup,
                        $"the form has more than {MaxSections} parts; send master_pwd, backup_file, name, copy, neutralize_database");
                }
                if (!ContentDispositionHeaderValue.TryParse(section.ContentDisposition, out var disposition))
                {
                    continue;
                }
                var field = HeaderUtilities.RemoveQuotes(disposition.Name).Value ?? "";
                if (field != "backup_file")
                {
                    var value = await ReadFieldAsync(section.Body, field, context.RequestAborted);
                    if (RestoreFields.Contains(field))
                    {
                        fields[field] = value;
                    }
                    continue;
                }
                if (upload is not null)
                {
                    throw new DatabaseManagerException(DatabaseManagerError.InvalidBackup, "the form has more than one backup_file");
                }
                // Odoo's form, as every browser, sends master_pwd first: the password is checked before a byte of the file is
                // stored, and a body that puts the file first is refused rather than held anywhere.
                if (!fields.TryGetValue("master_pwd", out var password))
                {
                    throw new DatabaseManagerException(DatabaseManagerError.AccessDenied,
                        "Access Denied: master_pwd must come before backup_file in the form; nothing was stored");
                }
                await gate.CheckAsync(password, Client(context), context.RequestAborted);
                upload = manager.Uploads.Begin("upload");
                await upload.WriteFromAsync(section.Body, context.RequestAborted);
            }
            if (upload is null)
            {
                await gate.CheckAsync(fields.GetValueOrDefault("master_pwd"), Client(context), context.RequestAborted);
                throw new DatabaseManagerException(DatabaseManagerError.InvalidBackup, "no backup_file was uploaded");
            }
            await manager.RestoreFileAsync(fields.GetValueOrDefault("name") ?? "", upload.Path,
                Truthy(fields.GetValueOrDefault("copy")), Truthy(fields.GetValueOrDefault("neutralize_database")), context.RequestAborted);
            return Redirect();
        }
        catch (DatabaseManagerException e)
        {
            return Error(e, "restore");
        }
        catch (IOException e)
        {
            return Error(new DatabaseManagerException(DatabaseManagerError.InvalidBackup,
                $"the upload was cut short or malformed ({e.Message}); nothing was restored"), "restore");
        }
        catch (InvalidDataException e)
        {
            return Error(new DatabaseManagerException(DatabaseManagerError.InvalidBackup, $"malformed upload: {e.Message}"), "restore");
        }
        finally
        {
            upload?.Dispose();
        }
    }

    private static async Task<string> ReadFieldAsync(Stream body, string field, CancellationToken cancellationToken)
    {
        using var reader = new StreamReader(body);
        var buffer = new char[MaxFieldChars + 1];
        var length = await reader.ReadBlockAsync(buffer, cancellationToken);
        return length > MaxFieldChars
            ? throw new DatabaseManagerException(DatabaseManagerError.InvalidName,
                $"the field '{field}' is longer than {MaxFieldChars} characters")
            : new string(buffer, 0, length);
    }

    private static async Task<IResult> FormAsync(HttpContext context, IMasterPasswordCheck? gate, string verb,
        Func<Form, Task<IResult>> action)
    {
        try
        {
            var form = await Form.ReadAsync(context);
            if (gate is not null)
            {
                await gate.CheckAsync(form.Optional("master_pwd"), Client(context), context.RequestAborted);
            }
            return await action(form);
        }
        catch (DatabaseManagerException e)
        {
            return Error(e, verb);
        }
    }

    /// <summary>As Odoo: back to the manager page after a change.</summary>
    private static Microsoft.AspNetCore.Http.HttpResults.RedirectHttpResult Redirect() => TypedResults.Redirect("/web/database/manager");

    /// <summary>Odoo's wording ("Could not restore database. …") with a status that says what kind of problem it is.</summary>
    public static IResult Error(DatabaseManagerException e, string verb)
    {
        var status = e.Error switch
        {
            DatabaseManagerError.Disabled or DatabaseManagerError.AccessDenied => StatusCodes.Status403Forbidden,
            DatabaseManagerError.TooManyAttempts => StatusCodes.Status429TooManyRequests,
            DatabaseManagerError.Busy => StatusCodes.Status503ServiceUnavailable,
            DatabaseManagerError.NotFound => StatusCodes.Status404NotFound,
            DatabaseManagerError.AlreadyExists => StatusCodes.Status409Conflict,
            DatabaseManagerError.Failed => StatusCodes.Status500InternalServerError,
            _ => StatusCodes.Status422UnprocessableEntity,
        };
        var text = TypedResults.Text($"Could not {verb} database. {e.Message}\n", "text/plain; charset=utf-8", statusCode: status);
        return e.RetryAfter is { } retry ? new WithRetryAfter(text, retry) : text;
    }

    private static string Client(HttpContext context) => context.Connection.RemoteIpAddress?.ToString() ?? "unknown";

    /// <summary>Odoo's str2bool: 1/true/yes/on/t/y mean true.</summary>
    private static bool Truthy(string? value) =>
        value is not null && value.Trim().ToLowerInvariant() is "1" or "true" or "yes" or "on" or "t" or "y";

    private sealed class WithRetryAfter(IResult inner, TimeSpan retry) : IResult
    {
        public Task ExecuteAsync(HttpContext httpContext)
        {
            httpContext.Response.Headers.RetryAfter =
                Math.Max(1, (int)Math.Ceiling(retry.TotalSeconds)).ToString(CultureInfo.InvariantCulture);
            return inner.ExecuteAsync(httpContext);
        }
    }

    /// <summary>An urlencoded or multipart form of small fields.</summary>
    private sealed class Form(IFormCollection values)
    {
        public static async Task<Form> ReadAsync(HttpContext context)
        {
            if (!context.Request.HasFormContentType)
            {
                throw new DatabaseManagerException(DatabaseManagerError.InvalidName,
                    "send the fields as a form (application/x-www-form-urlencoded or multipart/form-data)");
            }
            try
            {
                return new Form(await context.Request.ReadFormAsync(context.RequestAborted));
            }
            catch (Exception e) when (e is InvalidDataException or IOException)
            {
                throw new DatabaseManagerException(DatabaseManagerError.InvalidName, $"malformed form: {e.Message}");
            }
        }

        public string? Optional(string name) => values.TryGetValue(name, out var value) ? value.ToString() : null;

        public string Get(string name) => Optional(name) is { Length: > 0 } value
            ? value
            : throw new DatabaseManagerException(DatabaseManagerError.InvalidName, $"the field '{name}' is required");
    }
}

/// <summary>Finishes or rolls back database-manager jobs a previous process left running, before requests are served.</summary>
internal sealed class DatabaseManagerRecovery(DatabaseManager manager, ILogger<DatabaseManagerRecovery> logger) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        try
        {
            await manager.RecoverAsync(cancellationToken);
        }
        catch (Npgsql.NpgsqlException e)
        {
            // Half-made databases stay in a state that is never served; the next start or `loomworks db` retries.
            logger.LogError("Could not recover interrupted database-manager jobs: {Message}", e.Message);
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
