using System.Data;
using Loomworks.Records;
using Loomworks.Tests.Infrastructure;
using Npgsql;

namespace Loomworks.Tests.Records;

/// <summary>
/// How a read-only call's statements travel: the pending security stamp goes with the first one and voids the call
/// when it changed, and a search_read of one statement sends COMMIT with it.
/// </summary>
public sealed class RecordStatementsTests(PostgresFixture postgres) : IAsyncLifetime
{
    private RecordsDatabase _db = null!;
    private Guid _stamp;
    private static CancellationToken Ct => TestContext.Current.CancellationToken;
    private static ModelDef Partner => ModelRegistry.Partner;

    public async ValueTask InitializeAsync()
    {
        _db = await RecordsDatabase.CreateAsync(postgres, "records_statements");
        _stamp = (await postgres.ScalarAsync<Guid>(_db.Name, $"SELECT stamp FROM {SecurityStamp.Table}"))!;
    }

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;

    /// <summary>Runs <paramref name="call"/> as the admin in a REPEATABLE READ transaction that is not begun on the server yet.</summary>
    private async Task CallAsync(PendingStampCheck? pending, Func<RecordEnvironment, NpgsqlConnection, Task> call)
    {
        AccessRights access;
        await using (var setup = await _db.DataSource.OpenConnectionAsync(Ct))
        {
            access = await AccessRights.LoadAsync(setup, null, 2, Ct);
        }
        await using var connection = await _db.DataSource.OpenConnectionAsync(Ct);
        await using var transaction = await connection.BeginTransactionAsync(IsolationLevel.RepeatableRead, Ct);
        var env = new RecordEnvironment(connection, transaction, access) { PendingStamp = pending, CommitsWithRead = true };
        await call(env, connection);
    }

    /// <summary>The isolation of the connection's transaction: repeatable read inside the call's, read committed after it.</summary>
    private static async Task<string> IsolationAsync(NpgsqlConnection connection)
    {
        await using var command = new NpgsqlCommand("SHOW transaction_isolation", connection);
        return (string)(await command.ExecuteScalarAsync(Ct))!;
    }

    [Fact]
    public async Task A_search_read_of_one_statement_commits_with_it_and_one_that_needs_more_leaves_the_commit_to_the_caller()
    {
        await CallAsync(null, async (env, connection) =>
        {
            var rows = await env.SearchReadAsync(Partner, null, ["name"], 0, 5, null, Ct);
            Assert.NotEmpty(rows);
            Assert.True(env.Committed);
            Assert.Equal("read committed", await IsolationAsync(connection));
            await env.CommitAsync(Ct);
        });
        await CallAsync(null, async (env, connection) =>
        {
            var rows = await env.SearchReadAsync(Partner, null, ["name", "child_ids"], 0, 5, null, Ct);
            Assert.IsType<List<object?>>(rows[0]["child_ids"]);
            Assert.False(env.Committed);
            Assert.Equal("repeatable read", await IsolationAsync(connection));
            await env.CommitAsync(Ct);
            Assert.True(env.Committed);
            Assert.Equal("read committed", await IsolationAsync(connection));
        });
    }

    [Fact]
    public async Task The_pending_stamp_is_read_with_the_first_statement_and_a_changed_one_voids_the_call()
    {
        var current = new PendingStampCheck(_stamp);
        await CallAsync(current, async (env, _) =>
        {
            Assert.NotEmpty(await env.SearchAsync(Partner, null, 0, 5, null, Ct));
            Assert.True(current.Matched);
            await env.CommitAsync(Ct);
        });

        var changed = new PendingStampCheck(Guid.NewGuid());
        await CallAsync(changed, async (env, _) =>
        {
            await Assert.ThrowsAsync<SecurityStampChangedException>(() => env.SearchReadAsync(Partner, null, ["name"], 0, 5, null, Ct));
            Assert.False(changed.Matched);
        });
    }

    [Fact]
    public async Task A_call_without_statements_reads_the_pending_stamp_when_it_commits()
    {
        var current = new PendingStampCheck(_stamp);
        await CallAsync(current, async (env, connection) =>
        {
            Assert.NotNull(env.DefaultGet(Partner, ["type"])["type"]);
            Assert.Null(current.Matched);
            await env.CommitAsync(Ct);
            Assert.True(current.Matched);
            Assert.Equal("read committed", await IsolationAsync(connection));
        });

        var changed = new PendingStampCheck(Guid.NewGuid());
        await CallAsync(changed, async (env, _) =>
        {
            await Assert.ThrowsAsync<SecurityStampChangedException>(() => env.CommitAsync(Ct));
            Assert.False(changed.Matched);
        });
    }
}
