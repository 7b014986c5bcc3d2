namespace Loomworks.Tests.Infrastructure;

/// <summary>
/// One throwaway PostgreSQL cluster for the whole test run (an assembly fixture: any test class may take it in its
/// constructor). Tests work in databases named after themselves, created fresh by each test, and never assert
/// global counts, so classes that use it run in parallel.
/// </summary>
public sealed class PostgresFixture : ThrowawayCluster, IAsyncLifetime
{
    public ValueTask InitializeAsync() => new(StartAsync(CancellationToken.None));
}

/// <summary>
/// The classes that run alone, after the parallel ones: they compare response times or count failures against real
/// time windows, which a busy neighbour would distort. They use the run's cluster like every other class.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class PostgresGroup
{
    public const string Name = "postgres";
}
