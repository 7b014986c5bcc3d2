using System.CommandLine;
using System.Globalization;
using System.Text.RegularExpressions;
using Loomworks.Postgres;
using Loomworks.Records;
using Loomworks.Tenancy;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;

namespace Loomworks.Server.Cli;

/// <summary>
/// <c>loomworks tenant apikey create|list|revoke</c>: API keys of a tenant's users for agents and integrations, made as
/// <c>res.users.apikeys</c> <c>generate</c> makes them; the key itself is printed once, at creation, and never again.
/// </summary>
public static partial class ApiKeyCommand
{
    /// <summary>The longest description accepted: enough to name an agent and its purpose, short enough to list.</summary>
    public const int MaxDescriptionLength = 256;

    public const int NotFoundExitCode = 3;
    public const int NotUsableExitCode = 4;

    [GeneratedRegex("^[a-z0-9_.:-]{1,64}$")]
    private static partial Regex ScopePattern();

    private sealed class Refusal(string message, int exitCode) : Exception(message)
    {
        public int ExitCode { get; } = exitCode;
    }

    public static Command Create(ConfigOptions config)
    {
        var command = new Command("apikey", "Create, list and revoke API keys of a tenant's users (for AI agents and integrations).");
        var tenant = () => new Argument<string>("tenant") { Description = "The tenant (its subdomain)" };

        var createTenant = tenant();
        var createLogin = new Argument<string>("login") { Description = "The login of the user the key acts as" };
        var description = new Option<string?>("--description")
        {
            Description =
                $"What the key is for (1 to {MaxDescriptionLength} characters, required), shown in lists and in the operation log",
        };
        var scope = new Option<string>("--scope")
        {
            Description = "The key's scope, as res.users.apikeys stores it",
            DefaultValueFactory = _ => "rpc",
        };
        var create = new Command("create", "Make a new API key for a user and print it (only this once).")
        {
            createTenant, createLogin, description, scope,
        };
        create.SetAction((p, ct) => RunAsync(config, p, p.GetValue(createTenant)!, async (db, c) =>
        {
            var text = p.GetValue(description)
                ?? throw new Refusal("--description is required: say what the key is for", LoomworksCli.ConfigErrorExitCode);
            var scopeText = p.GetValue(scope)!;
            CheckDescription(text);
            if (!ScopePattern().IsMatch(scopeText))
            {
                throw new Refusal($"scope '{TenantRules.Printable(scopeText)}' must be 1 to 64 lower-case letters, digits, or . _ : -",
                    LoomworksCli.ConfigErrorExitCode);
            }
            var (id, key) = await CreateKeyAsync(db, p.GetValue(createLogin)!, text, scopeText, c);
            // The key alone goes to standard output, so that a script can take it; the rest is for the person.
            await Console.Error.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
                $"API key {id} created for '{p.GetValue(createLogin)}'; it is shown only this once, store it now:"));
            Console.WriteLine(key);
        }, ct));

        var listTenant = tenant();
        var listLogin = new Argument<string?>("login") { Description = "Only this user's keys", Arity = ArgumentArity.ZeroOrOne };
        var list = new Command("list", "List a tenant's API keys (never the keys themselves).") { listTenant, listLogin };
        list.SetAction((p, ct) => RunAsync(config, p, p.GetValue(listTenant)!,
            async (db, c) => await ListAsync(db, p.GetValue(listLogin), c), ct));

        var revokeTenant = tenant();
        var revokeId = new Argument<string>("id") { Description = "The key's id, as list shows it" };
        var revoke = new Command("revoke", "Revoke an API key: it stops working at once.") { revokeTenant, revokeId };
        revoke.SetAction((p, ct) => RunAsync(config, p, p.GetValue(revokeTenant)!,
            async (db, c) => await RevokeAsync(db, p.GetValue(revokeId)!, c), ct));

        command.Subcommands.Add(create);
        command.Subcommands.Add(list);
        command.Subcommands.Add(revoke);
        return command;
    }

    /// <summary>A stored description as one printable line: keys made over RPC may hold any character.</summary>
    private static string Printable(string text) => new(text.Select(c => char.IsControl(c) ? '?' : c).ToArray());

    private static void CheckDescription(string text)
    {
        if (string.IsNullOrWhiteSpace(text) || text.Length > MaxDescriptionLength || text.Any(char.IsControl))
        {
            throw new Refusal($"the description must be 1 to {MaxDescriptionLength} characters without control characters " +
                $"(got {text.Length} characters)", LoomworksCli.ConfigErrorExitCode);
        }
    }

    private static async Task<(long Id, string Key)> CreateKeyAsync(PooledDatabase db, string login, string description, string scope,
        CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        await using var transaction = await connection.BeginTransactionAsync(ct);
        var uid = await UserIdAsync(connection, transaction, login, ct);
        var access = await AccessRights.LoadAsync(connection, transaction, uid, ct);
        var key = await ApiKeys.GenerateAsync(new RecordEnvironment(connection, transaction, access), description, scope, null, ct);
        await using var command = new NpgsqlCommand(
            "SELECT max(id) FROM res_users_apikeys WHERE user_id = $1", connection, transaction);
        command.Parameters.AddWithValue((int)uid);
        var id = Convert.ToInt64(await command.ExecuteScalarAsync(ct), CultureInfo.InvariantCulture);
        await transaction.CommitAsync(ct);
        return (id, key);
    }

    private static async Task<long> UserIdAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, string login,
        CancellationToken ct)
    {
        await using var command = new NpgsqlCommand("SELECT id FROM res_users WHERE login = $1 AND active", connection, transaction);
        command.Parameters.AddWithValue(login);
        return await command.ExecuteScalarAsync(ct) is int id
            ? id
            : throw new Refusal($"no active user has the login '{TenantRules.Printable(login)}'", NotFoundExitCode);
    }

    private static async Task ListAsync(PooledDatabase db, string? login, CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        if (login is not null)
        {
            await UserIdAsync(connection, null, login, ct);
        }
        await using var command = new NpgsqlCommand("""
            SELECT k.id, u.login, k.name, coalesce(k.scope, ''), k.create_date, k.expiration_date
            FROM res_users_apikeys k JOIN res_users u ON u.id = k.user_id
            WHERE $1::varchar IS NULL OR u.login = $1
            ORDER BY k.id
            """, connection);
        command.Parameters.Add(new NpgsqlParameter
        {
            Value = (object?)login ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Varchar,
        });
        await using var reader = await command.ExecuteReaderAsync(ct);
        Console.WriteLine($"{"id",6}  {"login",-24} {"scope",-8} {"created",-19}  {"expires",-19}  description");
        while (await reader.ReadAsync(ct))
        {
            string Time(int i) => reader.IsDBNull(i) ? "never" : Values.FormatDateTime(reader.GetDateTime(i));
            var (user, keyScope) = (TenantRules.Printable(reader.GetString(1)), TenantRules.Printable(reader.GetString(3)));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{reader.GetInt32(0),6}  {user,-24} {keyScope,-8} {Time(4),-19}  {Time(5),-19}  {Printable(reader.GetString(2))}"));
        }
    }

    private static async Task RevokeAsync(PooledDatabase db, string idText, CancellationToken ct)
    {
        if (!int.TryParse(idText, NumberStyles.None, CultureInfo.InvariantCulture, out var id) || id <= 0)
        {
            throw new Refusal($"the key id must be a positive whole number, not '{TenantRules.Printable(idText)}'",
                LoomworksCli.ConfigErrorExitCode);
        }
        await using var connection = await db.OpenConnectionAsync(ct);
        await using var command = new NpgsqlCommand("""
            DELETE FROM res_users_apikeys k USING res_users u WHERE k.id = $1 AND u.id = k.user_id RETURNING u.login, k.name
            """, connection);
        command.Parameters.AddWithValue(id);
        await using var reader = await command.ExecuteReaderAsync(ct);
        if (!await reader.ReadAsync(ct))
        {
            throw new Refusal(string.Create(CultureInfo.InvariantCulture, $"the tenant has no API key {id}"), NotFoundExitCode);
        }
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"revoked API key {id} of '{TenantRules.Printable(reader.GetString(0))}' ({Printable(reader.GetString(1))})"));
    }

    /// <summary>Opens the tenant's database and runs <paramref name="work"/>; refusals print one line and pick the exit code.</summary>
    private static async Task<int> RunAsync(ConfigOptions config, ParseResult parseResult, string tenant,
        Func<PooledDatabase, CancellationToken, Task> work, CancellationToken ct)
    {
        if (LoomworksCli.LoadSettings(config, parseResult) is not { } settings)
        {
            return LoomworksCli.ConfigErrorExitCode;
        }
        try
        {
            await using var postgres = await PostgresServer.OpenAsync(settings, NullLogger.Instance, ct);
            await using var services = CliServices.Build(settings, postgres, NullLoggerFactory.Instance);
            await work(await ResolveAsync(services, tenant, ct), ct);
            return 0;
        }
        catch (Refusal e)
        {
            await Console.Error.WriteLineAsync($"loomworks: {e.Message}");
            return e.ExitCode;
        }
        catch (OdooException e)
        {
            await Console.Error.WriteLineAsync($"loomworks: {e.Message}");
            return LoomworksCli.ConfigErrorExitCode;
        }
        catch (Exception e) when (e is NpgsqlException or InvalidOperationException or System.Net.Sockets.SocketException)
        {
            await Console.Error.WriteLineAsync($"loomworks: {e.Message}");
            return LoomworksCli.StartupErrorExitCode;
        }
    }

    private static async Task<PooledDatabase> ResolveAsync(ServiceProvider services, string tenant, CancellationToken ct)
    {
        if (tenant.Length is 0 or > 63)
        {
            throw new Refusal("a tenant name must be 1 to 63 characters", LoomworksCli.ConfigErrorExitCode);
        }
        var found = await services.GetRequiredService<TenantStore>().FindBySubdomainAsync(tenant, ct)
            ?? throw new Refusal($"there is no tenant '{TenantRules.Printable(tenant)}'", NotFoundExitCode);
        if (found.State is not (TenantStates.Active or TenantStates.Suspended))
        {
            throw new Refusal($"tenant '{tenant}' is {found.State}; its keys cannot be managed now", NotUsableExitCode);
        }
        return services.GetRequiredService<TenantDataSources>().For(found.DatabaseName);
    }
}
