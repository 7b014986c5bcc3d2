using System.CommandLine;
using Loomworks.Server.Cli;

// `loomworks` with no command runs the server; every command is declared in Cli/.
// Signals are left to the commands: the server drains requests on SIGTERM for up to loomworks_shutdown_timeout,
// longer than System.CommandLine's own two-second grace would allow.
return await LoomworksCli.Create().Parse(args).InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = null });
