using System.Globalization;
using Loomworks.Operations;
using Loomworks.Postgres;
using Loomworks.Security;
using Loomworks.Snapshots;
using Loomworks.Testing;
using Loomworks.Tests.Infrastructure;
using Loomworks.Tests.Rpc;
using Loomworks.Tests.Snapshots;

namespace Loomworks.Tests.Ai;

/// <summary>The pre-AI snapshot on a cluster with pgBackRest: taken before a session's first change, named by every
/// operation of the session, and good for restoring the whole tenant to how it was before the agent started.</summary>
public sealed class McpPreAiSnapshotTests(PitrFixture pitr) : IClassFixture<PitrFixture>
{
    private const string Tenant = "mcp-preai";

    [Fact]
    public async Task A_sessions_first_change_takes_a_pre_ai_snapshot_every_operation_names_it_and_restoring_to_it_undoes_the_session()
    {
        var cancel = TestContext.Current.CancellationToken;
        await pitr.CreateTenantAsync(Tenant);
        await using (var connection = await Sql.OpenUnpooledAsync(pitr.Server.Endpoint, Tenant))
        {
            var setup = new ErpTenantSetup();
            await SchemaMigrator.ApplyAsync(connection, setup.Migrations, cancel);
            await setup.CreateAdminUserAsync(connection, "admin", Passwords.Hash("admin"), cancel);
        }
        await pitr.Feature.Snapshots.BackupAsync("incr", cancel);
        await using var app = await LoomworksHost.StartAsync(options =>
        {
            options.Set("data_dir", pitr.DataDir).Set("db_port", pitr.Settings.DbPort!.Value.ToString(CultureInfo.InvariantCulture));
            options.Server = pitr.Server;
        }, cancel);
        string key;
        using (var rpc = new RpcClient(app.Url))
        {
            key = (string)(await rpc.ObjectAsync(Tenant, 2, "admin", "res.users.apikeys", "generate", ["pre-ai agent"]))!;
        }
        var before = await pitr.ContentAsync(Tenant);

        await using (var client = await McpServer.ConnectAsync(app.Url, null, key, database: Tenant))
        {
            var first = await client.OkAsync("create_records", new()
            {
                ["model"] = "res.partner", ["values"] = new Dictionary<string, object?> { ["name"] = "Before the damage" },
            });
            var session = first.GetProperty("session_id").GetString()!;
            var snapshotId = first.GetProperty("snapshot_id").GetInt64();
            var second = await client.OkAsync("update_records", new()
            {
                ["model"] = "res.partner", ["ids"] = new[] { 2L, first.GetProperty("ids")[0].GetInt64() },
                ["values"] = new Dictionary<string, object?> { ["comment"] = "touched by the agent" }, ["session_id"] = session,
            });
            Assert.Equal(snapshotId, second.GetProperty("snapshot_id").GetInt64());
            var operations = (await client.OkAsync("list_operations", new() { ["session_id"] = session })).GetProperty("operations");
            Assert.All(operations.EnumerateArray(), o => Assert.Equal(snapshotId, o.GetProperty("snapshot_id").GetInt64()));
            var snapshots = (await client.OkAsync("list_snapshots")).GetProperty("snapshots");
            Assert.Contains(snapshots.EnumerateArray(), s => s.GetProperty("id").GetInt64() == snapshotId
                && s.GetProperty("kind").GetString() == SnapshotTypes.PreAi);

            // A second session gets a snapshot of its own.
            var other = await client.OkAsync("create_records", new()
            {
                ["model"] = "res.partner", ["values"] = new Dictionary<string, object?> { ["name"] = "Another task" },
            });
            Assert.NotEqual(snapshotId, other.GetProperty("snapshot_id").GetInt64());
            Assert.NotEqual(before, await pitr.ContentAsync(Tenant));

            var snapshot = (await pitr.Feature.Snapshots.GetAsync(snapshotId, cancel))!;
            snapshot = await pitr.Feature.Snapshots.WaitReadyAsync(snapshot, TimeSpan.FromSeconds(60), cancel);
            Assert.Equal("ready", snapshot.State);
        }
        var job = await pitr.Feature.Restore.StartAsync(new RestoreRequest(Tenant, SnapshotId: (await pitr.Feature.Snapshots
            .ListAsync(Tenant, cancel)).Where(s => s.SnapshotType == SnapshotTypes.PreAi).MinBy(s => s.Id)!.Id), cancel);
        job = await pitr.Feature.Restore.RunAsync(job.Id, null, cancel);
        Assert.True(job.State == "done", job.Error);
        Assert.Equal(before, await pitr.ContentAsync(Tenant));
        await app.StopAsync(cancel);
    }
}
