using System.Security.Cryptography;
using System.Text;
using Loomworks.Backups;
using Loomworks.Postgres;
using Loomworks.Records;
using Loomworks.Tenancy;
using Microsoft.AspNetCore.Http;
using Npgsql;

namespace Loomworks.Rpc;

/// <summary>
/// The management calls of the db service on the real components: create_database through Tenancy's provisioner,
/// dump, restore, duplicate_database, drop and rename through the database manager (whose databases become tenants
/// through Tenancy), change_admin_password through the master password. Every call checks the master password first
/// (rate limited per client address; list_db = False or no admin_passwd switches them all off).
/// </summary>
public sealed class RpcDatabaseManager(
    IMasterPasswordCheck gate,
    TenantProvisioner provisioner,
    DatabaseManager manager,
    TenantDataSources dataSources) : IRpcDatabaseManager
{
    public async Task<object?> CallAsync(HttpContext http, string method, IList<object?> args, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(http);
        ArgumentNullException.ThrowIfNull(args);
        var client = http.Connection.RemoteIpAddress?.ToString() ?? "unknown";
        if (method is not ("create_database" or "drop" or "dump" or "restore" or "duplicate_database" or "rename"
            or "change_admin_password"))
        {
            throw new OdooException(OdooErrorKind.ServerError, $"Method not available {Domain.Show(method)} on service 'db'",
                "builtins.KeyError");
        }
        try
        {
            if (method == "change_admin_password")
            {
                Arity(method, args, 2, 2);
                await gate.ChangeAsync(Optional(args[0]), Text(args[1], "new_password"), client, ct);
                return true;
            }
            Arity(method, args, 1, int.MaxValue);
            await gate.CheckAsync(Optional(args[0]), client, ct);
            return method switch
            {
                "create_database" => await CreateAsync(args, ct),
                "drop" => await DropAsync(args, ct),
                "dump" => await DumpAsync(args, ct),
                "restore" => await RestoreAsync(args, ct),
                "duplicate_database" => await DuplicateAsync(args, ct),
                _ => await RenameAsync(args, ct),
            };
        }
        catch (DatabaseManagerException e)
        {
            if (e.RetryAfter is { } wait)
            {
                http.Response.Headers.RetryAfter =
                    ((int)Math.Ceiling(wait.TotalSeconds)).ToString(System.Globalization.CultureInfo.InvariantCulture);
            }
            throw e.Error switch
            {
                DatabaseManagerError.AccessDenied or DatabaseManagerError.TooManyAttempts or DatabaseManagerError.Disabled =>
                    OdooException.Denied(
                        e.Message.StartsWith("Access Denied", StringComparison.Ordinal) ? e.Message : "Access Denied: " + e.Message),
                DatabaseManagerError.Failed => new OdooException(OdooErrorKind.ServerError, e.Message, "builtins.Exception"),
                _ => OdooException.User(e.Message),
            };
        }
        catch (TenantValidationException e)
        {
            throw OdooException.User(e.Message);
        }
        catch (TenantStateException e)
        {
            throw OdooException.User(e.Message);
        }
    }

    /// <summary>
    /// create_database(master, db_name, demo, lang, user_password='admin', login='admin', country_code=None, phone=None).
    /// </summary>
    private async Task<object?> CreateAsync(IList<object?> args, CancellationToken ct)
    {
        Arity("create_database", args, 4, 8);
        var name = Text(args[1], "db_name");
        var password = args.Count > 4 ? Text(args[4], "user_password") : "admin";
        var login = args.Count > 5 ? Text(args[5], "login") : "admin";
        var country = args.Count > 6 ? Optional(args[6]) : null;
        var phone = args.Count > 7 ? Optional(args[7]) : null;
        if (string.IsNullOrEmpty(login) || string.IsNullOrEmpty(password))
        {
            throw OdooException.User("create_database needs a login and a password for the administrator");
        }
        var tenant = await provisioner.CreateAsync(new TenantRequest(name, name, login, password), ct, actor: "db.create_database");
        if (country is not null || phone is not null)
        {
            await using var connection = await dataSources.For(tenant.DatabaseName).OpenConnectionAsync(ct);
            await using var update = new NpgsqlCommand("""
                WITH c AS (
                    UPDATE res_company SET
                        country_id = coalesce((SELECT id FROM res_country WHERE code = upper($1)), country_id),
                        phone = coalesce($2, phone)
                    WHERE id = (SELECT min(id) FROM res_company) RETURNING partner_id, country_id, phone)
                UPDATE res_partner p SET country_id = c.country_id, phone = c.phone FROM c WHERE p.id = c.partner_id
                """, connection);
            update.Parameters.AddNullable(NpgsqlTypes.NpgsqlDbType.Text, country);
            update.Parameters.AddNullable(NpgsqlTypes.NpgsqlDbType.Text, phone);
            await update.ExecuteNonQueryAsync(ct);
        }
        return true;
    }

    private async Task<object?> DropAsync(IList<object?> args, CancellationToken ct)
    {
        Arity("drop", args, 2, 2);
        var name = Text(args[1], "db_name");
        return DatabaseNames.Problem(name) is null && await manager.DropAsync(name, ct);
    }

    /// <summary>dump(master, db, format): the backup as base64, encoded while pg_dump streams it.</summary>
    private async Task<object?> DumpAsync(IList<object?> args, CancellationToken ct)
    {
        Arity("dump", args, 2, 3);
        var name = Text(args[1], "db_name");
        var format = (args.Count > 2 ? Optional(args[2]) : null) switch
        {
            null or "zip" => BackupFormat.Zip,
            "dump" => BackupFormat.Dump,
            var other => throw OdooException.User($"Unknown backup format '{other}': use 'zip' or 'dump'"),
        };
        using var buffer = new MemoryStream();
        await using (var base64 = new CryptoStream(buffer, new ToBase64Transform(), CryptoStreamMode.Write, leaveOpen: true))
        {
            await manager.DumpAsync(name, base64, format, cancellationToken: ct);
        }
        return Encoding.ASCII.GetString(buffer.GetBuffer(), 0, (int)buffer.Length);
    }

    /// <summary>restore(master, db, data_b64, copy=False): the base64 decoded on the fly into the streamed restore.</summary>
    private async Task<object?> RestoreAsync(IList<object?> args, CancellationToken ct)
    {
        Arity("restore", args, 3, 4);
        var name = Text(args[1], "db_name");
        var data = Text(args[2], "data");
        var copy = args.Count > 3 && Values.Truthy(args[3]);
        await using var source = new CryptoStream(new MemoryStream(Encoding.ASCII.GetBytes(data)),
            new FromBase64Transform(FromBase64TransformMode.IgnoreWhiteSpaces), CryptoStreamMode.Read);
        try
        {
            await manager.RestoreAsync(name, source, copy, cancellationToken: ct);
        }
        catch (FormatException)
        {
            throw OdooException.User("restore: the data is not valid base64; nothing was restored");
        }
        return true;
    }

    private async Task<object?> DuplicateAsync(IList<object?> args, CancellationToken ct)
    {
        Arity("duplicate_database", args, 3, 4);
        await manager.DuplicateAsync(Text(args[1], "db_original_name"), Text(args[2], "db_name"),
            args.Count > 3 && Values.Truthy(args[3]), ct);
        return true;
    }

    private async Task<object?> RenameAsync(IList<object?> args, CancellationToken ct)
    {
        Arity("rename", args, 3, 3);
        await manager.RenameAsync(Text(args[1], "old_name"), Text(args[2], "new_name"), ct);
        return true;
    }

    private static void Arity(string method, IList<object?> args, int min, int max)
    {
        if (args.Count < min || args.Count > max)
        {
            var upTo = max == min ? "" : max == int.MaxValue ? " or more" : $" to {max}";
            throw OdooException.Type($"{method}() takes {min}{upTo} arguments ({args.Count} given)");
        }
    }

    private static string Text(object? value, string name) =>
        value as string ?? throw OdooException.Type($"{name} must be a string, not {Domain.Show(value)}");

    private static string? Optional(object? value) => value switch
    {
        null or false => null,
        string s => s,
        _ => throw OdooException.Type($"expected a string, not {Domain.Show(value)}"),
    };
}
