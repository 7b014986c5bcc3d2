using System.CommandLine;
using Loomworks.Operations;

namespace Loomworks.Server.Cli;

/// <summary><c>loomworks rewind &lt;tenant&gt; --to &lt;time&gt;</c>: undo every operation after a time, while the log covers it.</summary>
public static class RewindCommand
{
    public static Command Create(ConfigOptions config)
    {
        var tenant = new Argument<string>("tenant") { Description = "The tenant (its subdomain)" };
        var to = new Option<string>("--to") { Description = "The time to go back to, e.g. 2025-01-31T14:00:00Z", Required = true };
        var force = new Option<bool>("--force")
        {
            Description = "Rewind the operations even if changes outside any operation happened since",
        };
        var command = new Command("rewind",
            "Undo every operation of a tenant after a time, newest first, in one transaction; refuses (pointing to restore) " +
            "when the log does not reach back that far.")
        {
            tenant, to, force,
        };
        command.SetAction(async (parseResult, cancellationToken) =>
        {
            if (LoomworksCli.LoadSettings(config, parseResult) is not { } settings)
            {
                return LoomworksCli.ConfigErrorExitCode;
            }
            if (TenantLog.Parse(() => OperationInput.Time(parseResult.GetValue(to), "--to")!.Value) is not { } time)
            {
                return LoomworksCli.ConfigErrorExitCode;
            }
            var name = parseResult.GetValue(tenant)!;
            return await TenantLog.RunAsync(settings, name, async dataSource =>
            {
                var results = await new UndoService(dataSource).RewindAsync(time, parseResult.GetValue(force), name, cancellationToken);
                Console.WriteLine(results.Count == 0
                    ? $"nothing to rewind: no operation after {time.ToUniversalTime():o}"
                    : $"rewound {results.Count} operation(s) to {time.ToUniversalTime():o}: " +
                        string.Join(", ", results.Select(r => r.OperationId)));
                return 0;
            }, cancellationToken);
        });
        return command;
    }
}
