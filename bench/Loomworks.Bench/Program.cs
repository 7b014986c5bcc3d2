using Loomworks.Bench;

// dotnet run -c Release --project bench/Loomworks.Bench -- [scenario…] [--runs N]
// Each scenario measures our code and a baseline in the same process, and prints one row of a markdown table.
return await BenchRunner.RunAsync(args);
