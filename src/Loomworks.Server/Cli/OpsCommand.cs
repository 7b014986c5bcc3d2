using System.CommandLine;
using System.Globalization;
using Loomworks.Operations;

namespace Loomworks.Server.Cli;

/// <summary><c>loomworks ops list &lt;tenant&gt;</c>: a tenant's operation log, newest first, with filters.</summary>
public static class OpsCommand
{
    public static Command Create(ConfigOptions config)
    {
        var tenant = new Argument<string>("tenant") { Description = "The tenant (its subdomain)" };
        var session = new Option<string?>("--session") { Description = "Only this session" };
        var agent = new Option<string?>("--agent") { Description = "Only this agent" };
        var model = new Option<string?>("--model") { Description = "Only this model, e.g. sale.order" };
        var since = new Option<string?>("--since") { Description = "Only operations at or after this time" };
        var until = new Option<string?>("--until") { Description = "Only operations at or before this time" };
        var limit = new Option<string?>("--limit")
        {
            Description = $"At most this many (default {OperationFilter.DefaultLimit}, at most {OperationFilter.MaxLimit})",
        };
        var list = new Command("list", "List a tenant's operations, newest first.") { tenant, session, agent, model, since, until, limit };
        list.SetAction(async (parseResult, cancellationToken) =>
        {
            if (LoomworksCli.LoadSettings(config, parseResult) is not { } settings)
            {
                return LoomworksCli.ConfigErrorExitCode;
            }
            OperationFilter filter;
            try
            {
                var max = parseResult.GetValue(limit);
                filter = new OperationFilter(parseResult.GetValue(session), parseResult.GetValue(agent), parseResult.GetValue(model),
                    OperationInput.Time(parseResult.GetValue(since), "--since"),
                    OperationInput.Time(parseResult.GetValue(until), "--until"),
                    max is null ? OperationFilter.DefaultLimit : (int)Math.Min(OperationInput.WholeNumber(max, "--limit"), int.MaxValue));
            }
            catch (OperationException e)
            {
                await Console.Error.WriteLineAsync($"loomworks: {e.Message}");
                return LoomworksCli.ConfigErrorExitCode;
            }
            return await TenantLog.RunAsync(settings, parseResult.GetValue(tenant)!, async dataSource =>
            {
                var rows = await new OperationLog(dataSource).ListAsync(filter, cancellationToken);
                Console.WriteLine("id\tcreated_at\ttype\tmodel\trecords\tstate\tundone\tsession\tagent\ttool");
                foreach (var r in rows)
                {
                    Console.WriteLine(string.Join('\t', r.Id.ToString(CultureInfo.InvariantCulture),
                        r.CreatedAt.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture),
                        r.OperationType, r.ModelName ?? "-", string.Join(',', r.RecordIds), r.State,
                        r.Undone ? $"by {r.UndoneBy}" : "no", r.SessionId ?? "-", r.AgentId ?? "-", r.ToolName ?? "-"));
                }
                return 0;
            }, cancellationToken);
        });
        return new Command("ops", "The operation log of a tenant.") { list };
    }
}
