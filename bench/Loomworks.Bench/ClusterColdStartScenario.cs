using Loomworks.Postgres;

namespace Loomworks.Bench;

/// <summary>Our embedded cluster's first start (initdb, settings, start, first connection) beside a bare initdb + pg_ctl start.</summary>
public sealed class ClusterColdStartScenario : IScenario
{
    public string Name => "cluster-cold-start";
    public string Description => "embedded cluster first start vs bare initdb --data-checksums + pg_ctl start -w";

    public async Task<IReadOnlyList<ScenarioResult>> RunAsync(int runs, CancellationToken cancellationToken)
    {
        var binaries = PostgresBinaries.Locate();
        var ours = new List<double>();
        var baseline = new List<double>();
        for (var i = 0; i < runs; i++)
        {
            using (var scratch = new Scratch("bench", giveToServerUser: true))
            {
                var cluster = new EmbeddedCluster(new EmbeddedClusterOptions { DataDir = scratch.Path, Port = 55400 + i });
                ours.Add(await BenchRunner.TimeAsync(() => cluster.StartAsync(cancellationToken)));
                await cluster.StopAsync(cancellationToken);
            }
            using (var scratch = new Scratch("bench", giveToServerUser: true))
            {
                var pgData = Path.Combine(scratch.Path, "pgdata");
                Directory.CreateDirectory(pgData);
                CommandRunner.GiveToServerUser(pgData);
                baseline.Add(await BenchRunner.TimeAsync(async () =>
                {
                    await Check(CommandRunner.RunAsync(binaries["initdb"], ["-D", pgData, "--data-checksums", "-U", "postgres"],
                        CommandRunner.ServerUser, cancellationToken: cancellationToken));
                    await Check(CommandRunner.RunAsync(binaries["pg_ctl"],
                        ["start", "-D", pgData, "-w", "-s", "-l", Path.Combine(pgData, "log"), "-o",
                            $"-p {55500 + i} -k {scratch.Path} -c listen_addresses=127.0.0.1"],
                        CommandRunner.ServerUser, cancellationToken: cancellationToken));
                }));
                await Check(CommandRunner.RunAsync(binaries["pg_ctl"], ["stop", "-D", pgData, "-m", "fast", "-w"],
                    CommandRunner.ServerUser, cancellationToken: cancellationToken));
            }
        }
        return [new ScenarioResult(Name, ours, baseline, "initdb + pg_ctl start")];
    }

    private static async Task Check(Task<CommandResult> command)
    {
        var result = await command;
        if (!result.Succeeded)
        {
            throw new InvalidOperationException(result.Diagnostic);
        }
    }
}
