using Loomworks.Configuration;
using Loomworks.Operations;
using Loomworks.Postgres;
using Loomworks.Server.Operations;
using Loomworks.Tenancy;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;

namespace Loomworks.Server.Cli;

/// <summary>What the operation-log commands share: open PostgreSQL, find the tenant, print refusals, pick exit codes.</summary>
internal static class TenantLog
{
    /// <summary>Runs <paramref name="work"/> against the tenant's database; refusals print one line and exit 1.</summary>
    public static async Task<int> RunAsync(LoomworksSettings settings, string tenant,
        Func<PooledDatabase, Task<int>> work, CancellationToken cancellationToken)
    {
        try
        {
            await using var postgres = await PostgresServer.OpenAsync(settings, NullLogger.Instance, cancellationToken);
            var (dataSources, management) = ManagementDatabase.Open(postgres.Endpoint, settings.ManagementDatabase,
                Hosting.ManagementMigrations.All);
            await using var _ = dataSources;
            var tenants = new TenantStore(management);
            var dataSource = await OperationsEndpoints.ResolveAsync(tenant, tenants, dataSources, cancellationToken);
            return await work(dataSource);
        }
        catch (OperationException e)
        {
            await Console.Error.WriteLineAsync($"loomworks: {e.Message}");
            return e.Kind == OperationErrorKind.BadInput ? LoomworksCli.ConfigErrorExitCode : LoomworksCli.StartupErrorExitCode;
        }
        catch (Exception e) when (e is NpgsqlException or InvalidOperationException or System.Net.Sockets.SocketException)
        {
            await Console.Error.WriteLineAsync($"loomworks: {e.Message}");
            return LoomworksCli.StartupErrorExitCode;
        }
    }

    /// <summary>Parses a command-line value, printing the refusal and returning null when it is not acceptable.</summary>
    public static T? Parse<T>(Func<T> parse) where T : struct
    {
        try
        {
            return parse();
        }
        catch (OperationException e)
        {
            Console.Error.WriteLine($"loomworks: {e.Message}");
            return null;
        }
    }

    public static OperationInfo By(string tool) => new("undo", ToolName: tool, AgentId: Environment.UserName);
}
