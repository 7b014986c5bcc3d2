using Loomworks.Postgres;

namespace Loomworks.Snapshots;

/// <summary>
/// Test-only crash injection for snapshots and restores: LOOMWORKS_TEST_CRASH_AFTER_STEP (the variable provisioning
/// uses too; the step names differ) names a step, and the process kills itself with SIGKILL right after it, as a
/// kill -9 or a power cut would, so the tests can check what the next start makes of it.
/// </summary>
internal static class TestCrash
{
    public const string Variable = "LOOMWORKS_TEST_CRASH_AFTER_STEP";

    public static void AfterStep(string step)
    {
        if (string.Equals(Environment.GetEnvironmentVariable(Variable), step, StringComparison.Ordinal))
        {
            _ = Native.Kill(Environment.ProcessId, 9);
            Thread.Sleep(Timeout.Infinite); // SIGKILL is delivered asynchronously: never run past the step
        }
    }
}
