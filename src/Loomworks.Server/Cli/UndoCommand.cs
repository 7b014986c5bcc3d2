using System.CommandLine;
using Loomworks.Operations;

namespace Loomworks.Server.Cli;

/// <summary><c>loomworks undo &lt;tenant&gt; &lt;op-id&gt; [--force]</c> and <c>loomworks undo &lt;tenant&gt; --session S</c>.</summary>
public static class UndoCommand
{
    public static Command Create(ConfigOptions config)
    {
        var tenant = new Argument<string>("tenant") { Description = "The tenant (its subdomain)" };
        var operation = new Argument<string?>("op-id") { Description = "The operation to undo", Arity = ArgumentArity.ZeroOrOne };
        var session = new Option<string?>("--session") { Description = "Undo every operation of this session, newest first" };
        var force = new Option<bool>("--force") { Description = "Undo even when later operations changed the same rows" };
        var command = new Command("undo",
            "Undo one operation of a tenant (or a whole session) from the operation log, in one transaction; undo the undo to redo.")
        {
            tenant, operation, session, force,
        };
        command.SetAction(async (parseResult, cancellationToken) =>
        {
            if (LoomworksCli.LoadSettings(config, parseResult) is not { } settings)
            {
                return LoomworksCli.ConfigErrorExitCode;
            }
            var id = parseResult.GetValue(operation);
            var sessionId = parseResult.GetValue(session);
            if ((id is null) == (sessionId is null))
            {
                await Console.Error.WriteLineAsync("loomworks: give either an operation id or --session, not both or neither");
                return LoomworksCli.ConfigErrorExitCode;
            }
            long? operationId = null;
            if (id is not null && (operationId = TenantLog.Parse(() => OperationInput.WholeNumber(id, "operation id"))) is null)
            {
                return LoomworksCli.ConfigErrorExitCode;
            }
            var forced = parseResult.GetValue(force);
            return await TenantLog.RunAsync(settings, parseResult.GetValue(tenant)!, async dataSource =>
            {
                var undo = new UndoService(dataSource);
                var results = operationId is { } one
                    ? [await undo.UndoAsync(one, forced, TenantLog.By("cli:undo"), cancellationToken)]
                    : await undo.UndoSessionAsync(sessionId!, forced, TenantLog.By("cli:undo"), cancellationToken);
                foreach (var r in results)
                {
                    Console.WriteLine($"undone operation {r.OperationId}: {r.RowsChanged} row(s) changed back " +
                        $"by operation {r.UndoOperationId} (undo it to redo)");
                }
                return 0;
            }, cancellationToken);
        });
        return command;
    }
}
