using Loomworks.Tests.Infrastructure;

// One cluster for the whole run, shared by every class that takes a PostgresFixture.
[assembly: AssemblyFixture(typeof(PostgresFixture))]
