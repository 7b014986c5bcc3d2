using System.CommandLine;
using System.Globalization;
using Loomworks.Snapshots;

namespace Loomworks.Server.Cli;

/// <summary><c>loomworks restore</c>: one tenant back to a snapshot, a time or an LSN (or into a new tenant), and undo.</summary>
public static class RestoreCommand
{
    public static Command Create(ConfigOptions config)
    {
        var tenant = new Argument<string?>("tenant") { Description = "The tenant's subdomain", Arity = ArgumentArity.ZeroOrOne };
        var snapshot = new Option<long?>("--snapshot") { Description = "Restore to this snapshot id" };
        var time = new Option<string?>("--time") { Description = "Restore to this time (ISO 8601, such as 2025-01-31T14:05:00Z)" };
        var lsn = new Option<string?>("--lsn") { Description = "Restore to this WAL position (such as 0/16B3748)" };
        var asNew = new Option<string?>("--as")
        {
            Description = "Restore into a new tenant with this subdomain, leaving the tenant as it is",
        };
        var yes = new Option<bool>("--yes", "-y") { Description = "Do not ask for confirmation" };
        var undo = new Option<long?>("--undo") { Description = "Swap back the database a finished restore job replaced" };
        var command = new Command("restore",
            "Restore one tenant to a snapshot, a time or an LSN without stopping the others; " +
            "--undo <job> swaps the previous database back.")
        {
            tenant, snapshot, time, lsn, asNew, yes, undo,
        };
        command.SetAction((parseResult, cancellationToken) => SnapshotsCli.RunAsync(config, parseResult, async feature =>
        {
            if (parseResult.GetValue(undo) is { } undoJob)
            {
                if (!Confirm(parseResult.GetValue(yes),
                    $"Swap back the database restore job {undoJob} replaced? The restored data is dropped."))
                {
                    return 1;
                }
                var undone = await feature.Restore.UndoAsync(undoJob, cancellationToken);
                Console.WriteLine($"job {undone.Id} undone: {undone.TargetDatabase} is back as it was before the restore");
                return 0;
            }
            if (parseResult.GetValue(tenant) is not { } subdomain)
            {
                await Console.Error.WriteLineAsync("loomworks: name the tenant to restore (or give --undo <job>)");
                return 1;
            }
            var request = new RestoreRequest(subdomain, parseResult.GetValue(snapshot), parseResult.GetValue(time),
                parseResult.GetValue(lsn), parseResult.GetValue(asNew));
            var job = await feature.Restore.StartAsync(request, cancellationToken);
            var what = request.AsSubdomain is null
                ? $"Replace the data of tenant '{subdomain}' with its state at {job.TargetType} {job.Target}?"
                : $"Create tenant '{request.AsSubdomain}' from '{subdomain}' at {job.TargetType} {job.Target}?";
            if (!Confirm(parseResult.GetValue(yes), what))
            {
                await feature.Restore.RecoverAsync(cancellationToken); // rolls the unstarted job back
                return 1;
            }
            var finished = await feature.Restore.RunAsync(job.Id, new Progress<RestoreJob>(ShowProgress), cancellationToken);
            await Console.Error.WriteLineAsync();
            if (finished.State != "done")
            {
                await Console.Error.WriteLineAsync($"loomworks: restore job {finished.Id} failed: {finished.Error}");
                return 1;
            }
            Console.WriteLine(finished.AsSubdomain is null
                ? $"job {finished.Id} done: tenant '{subdomain}' restored; undo with 'loomworks restore --undo {finished.Id}'"
                : $"job {finished.Id} done: tenant '{finished.AsSubdomain}' created");
            return 0;
        }, cancellationToken));
        return command;
    }

    private static bool Confirm(bool yes, string question)
    {
        if (yes)
        {
            return true;
        }
        if (Console.IsInputRedirected)
        {
            Console.Error.WriteLine($"loomworks: {question} Add --yes to confirm; nothing was changed.");
            return false;
        }
        Console.Error.Write($"{question} [y/N] ");
        return Console.ReadLine()?.Trim().ToLowerInvariant() is "y" or "yes";
    }

    private static void ShowProgress(RestoreJob job)
    {
        const int width = 30;
        var filled = job.Progress * width / 100;
        Console.Error.Write(string.Create(CultureInfo.InvariantCulture,
            $"\r[{new string('#', filled)}{new string(' ', width - filled)}] {job.Progress,3}% {job.StepName,-16}"));
    }
}
