using System.CommandLine;
using System.Globalization;
using Loomworks.Postgres;
using Loomworks.Tenancy;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;

namespace Loomworks.Server.Cli;

/// <summary><c>loomworks tenant …</c>: the admin API's operations, straight on the management database, server or not.</summary>
public static class TenantCommand
{
    public static Command Create(ConfigOptions config)
    {
        var command = new Command("tenant", "Create, list, show, suspend, activate, archive, delete tenants and set their limits.");
        var subdomain = () => new Argument<string>("subdomain") { Description = "The tenant's subdomain" };

        var createSubdomain = subdomain();
        var name = new Option<string?>("--name") { Description = "Display name (default: the subdomain)" };
        var adminLogin = new Option<string>("--admin-login")
        {
            Description = "Login of the first administrator",
            DefaultValueFactory = _ => "admin",
        };
        var adminPassword = new Option<string?>("--admin-password")
        {
            Description = "Password of the first administrator (or LOOMWORKS_TENANT_ADMIN_PASSWORD)",
        };
        var adminPasswordHash = new Option<string?>("--admin-password-hash")
        {
            Description = "The first administrator's password already hashed (passlib pbkdf2-sha512), instead of --admin-password",
        };
        var tier = new Option<string>("--tier") { DefaultValueFactory = _ => "standard" };
        var (maxUsers, maxStorage, maxAi) = LimitOptions();
        var expires = new Option<string?>("--subscription-expires") { Description = "ISO date-time after which the tenant is suspended" };
        var create = new Command("create", "Provision a tenant.")
        {
            createSubdomain, name, adminLogin, adminPassword, adminPasswordHash, tier, maxUsers, maxStorage, maxAi, expires,
        };
        create.SetAction((p, ct) => RunAsync(new Invocation(config, p, ct), async (s, ct2) =>
        {
            var hash = p.GetValue(adminPasswordHash);
            var password = p.GetValue(adminPassword)
                ?? (hash is null ? Environment.GetEnvironmentVariable("LOOMWORKS_TENANT_ADMIN_PASSWORD") : null);
            if (string.IsNullOrEmpty(password) && hash is null)
            {
                throw new TenantValidationException(
                    "admin_password is required (--admin-password, LOOMWORKS_TENANT_ADMIN_PASSWORD or --admin-password-hash)");
            }
            var sub = p.GetValue(createSubdomain)!;
            var tenant = await s.Provisioner.CreateAsync(new TenantRequest(p.GetValue(name) ?? sub, sub, p.GetValue(adminLogin)!, password,
                p.GetValue(tier)!, p.GetValue(maxUsers) ?? 10, p.GetValue(maxStorage) ?? 10, p.GetValue(maxAi) ?? 1000,
                ParseDate(p.GetValue(expires)), hash), ct2, "cli");
            Print(tenant);
        }));

        var list = new Command("list", "List tenants.");
        list.SetAction((p, ct) => RunAsync(new Invocation(config, p, ct), async (s, ct2) =>
        {
            Console.WriteLine($"{"subdomain",-24} {"state",-12} {"tier",-10} {"users",5} {"gb",5} name");
            foreach (var t in await s.Store.ListAsync(ct2))
            {
                Console.WriteLine($"{t.Subdomain,-24} {t.State,-12} {t.Tier,-10} {t.MaxUsers,5} {t.MaxStorageGb,5} {t.Name}");
            }
        }));

        var showSubdomain = subdomain();
        var show = new Command("show", "Show one tenant.") { showSubdomain };
        show.SetAction((p, ct) => RunAsync(new Invocation(config, p, ct), async (s, ct2) =>
        {
            var tenant = await s.Store.FindBySubdomainAsync(p.GetValue(showSubdomain)!, ct2)
                ?? throw new TenantStateException(
                    $"no tenant has the subdomain '{TenantRules.Printable(p.GetValue(showSubdomain)!)}'", true);
            Print(tenant);
            var usage = await s.AiQuota.UsageAsync(tenant, ct2);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"ai_operations_today: {usage.Used} of {usage.Limit} (resets {usage.ResetsAt:yyyy-MM-dd'T'HH:mm:ss'Z'})"));
        }));

        Command StateCommand(string verb, string description, Func<TenantLifecycle, string, CancellationToken, Task<Tenant>> change)
        {
            var argument = subdomain();
            var c = new Command(verb, description) { argument };
            c.SetAction((p, ct) => RunAsync(new Invocation(config, p, ct),
                async (s, ct2) => Print(await change(s.Lifecycle, p.GetValue(argument)!, ct2))));
            return c;
        }

        var deleteSubdomain = subdomain();
        var force = new Option<bool>("--force") { Description = "Delete even when the tenant is not archived" };
        var delete = new Command("delete", "Drop a tenant's database, role and filestore (archived tenants only unless --force).")
        {
            deleteSubdomain, force,
        };
        delete.SetAction((p, ct) => RunAsync(new Invocation(config, p, ct), async (s, ct2) =>
        {
            await s.Lifecycle.DeleteAsync(p.GetValue(deleteSubdomain)!, p.GetValue(force), "cli", ct2);
            Console.WriteLine($"deleted {p.GetValue(deleteSubdomain)}");
        }));

        var limitsSubdomain = subdomain();
        var (lUsers, lStorage, lAi) = LimitOptions();
        var lTier = new Option<string?>("--tier");
        var lExpires = new Option<string?>("--subscription-expires") { Description = "ISO date-time, or 'none' to clear" };
        var setLimits = new Command("set-limits", "Change a tenant's limits, tier or subscription end.")
        {
            limitsSubdomain, lUsers, lStorage, lAi, lTier, lExpires,
        };
        setLimits.SetAction((p, ct) => RunAsync(new Invocation(config, p, ct), async (s, ct2) =>
        {
            var e = p.GetValue(lExpires);
            var change = new TenantLimitsChange(p.GetValue(lUsers), p.GetValue(lStorage), p.GetValue(lAi), p.GetValue(lTier),
                e is null or "none" ? null : ParseDate(e), e == "none");
            Print(await s.Lifecycle.SetLimitsAsync(p.GetValue(limitsSubdomain)!, change, "cli", ct2));
        }));

        command.Subcommands.Add(create);
        command.Subcommands.Add(list);
        command.Subcommands.Add(show);
        command.Subcommands.Add(StateCommand("suspend", "Suspend a tenant (its requests get 403).",
            (l, s, ct) => l.SuspendAsync(s, "cli", ct)));
        command.Subcommands.Add(StateCommand("activate", "Activate a suspended or archived tenant.",
            (l, s, ct) => l.ActivateAsync(s, "cli", ct)));
        command.Subcommands.Add(StateCommand("archive", "Archive a tenant (kept, not served).",
            (l, s, ct) => l.ArchiveAsync(s, "cli", ct)));
        command.Subcommands.Add(delete);
        command.Subcommands.Add(setLimits);
        command.Subcommands.Add(ApiKeyCommand.Create(config));
        return command;
    }

    private static (Option<int?> MaxUsers, Option<int?> MaxStorageGb, Option<int?> MaxAiOperationsDaily) LimitOptions() =>
        (new Option<int?>("--max-users"), new Option<int?>("--max-storage-gb"), new Option<int?>("--max-ai-operations-daily"));

    private sealed record Services(TenantStore Store, TenantProvisioner Provisioner, TenantLifecycle Lifecycle, AiOperationQuota AiQuota);

    private sealed record Invocation(ConfigOptions Config, ParseResult ParseResult, CancellationToken Cancellation);

    private static async Task<int> RunAsync(Invocation invocation, Func<Services, CancellationToken, Task> action)
    {
        var (config, parseResult, ct) = invocation;
        if (LoomworksCli.LoadSettings(config, parseResult) is not { } settings)
        {
            return LoomworksCli.ConfigErrorExitCode;
        }
        try
        {
            await using var postgres = await PostgresServer.OpenAsync(settings, NullLogger.Instance, ct);
            await using var services = await CliServices.OpenManagementAsync(settings, postgres, NullLoggerFactory.Instance, ct);
            var provisioner = services.GetRequiredService<TenantProvisioner>();
            // A provisioning interrupted by a crash is settled before anything else is done.
            await provisioner.RecoverAsync(ct);
            await action(new Services(services.GetRequiredService<TenantStore>(), provisioner,
                services.GetRequiredService<TenantLifecycle>(), services.GetRequiredService<AiOperationQuota>()), ct);
            return 0;
        }
        catch (TenantValidationException e)
        {
            Console.Error.WriteLine($"loomworks: {e.Message}");
            return LoomworksCli.ConfigErrorExitCode;
        }
        catch (TenantStateException e)
        {
            Console.Error.WriteLine($"loomworks: {e.Message}");
            return e.NotFound ? 3 : 4;
        }
        catch (Exception e) when (e is NpgsqlException or InvalidOperationException or System.Net.Sockets.SocketException)
        {
            Console.Error.WriteLine($"loomworks: {e.Message}");
            return LoomworksCli.StartupErrorExitCode;
        }
    }

    private static DateTimeOffset? ParseDate(string? text) =>
        text is null ? null
        : DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var d) ? d
        : throw new TenantValidationException($"subscription_expires '{TenantRules.Printable(text)}' is not an ISO date-time");

    private static void Print(Tenant t)
    {
        Console.WriteLine($"subdomain: {t.Subdomain}");
        Console.WriteLine($"name: {t.Name}");
        Console.WriteLine($"database: {t.DatabaseName}");
        Console.WriteLine($"state: {t.State}");
        Console.WriteLine($"tier: {t.Tier}");
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"limits: max_users={t.MaxUsers} max_storage_gb={t.MaxStorageGb} max_ai_operations_daily={t.MaxAiOperationsDaily}"));
        Console.WriteLine($"subscription_expires: {t.SubscriptionExpires?.ToString("O", CultureInfo.InvariantCulture) ?? "none"}");
    }
}
