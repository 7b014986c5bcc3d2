namespace Loomworks.Postgres;

/// <summary>
/// Test-only crash injection: <see cref="Variable"/> names one point (<c>provision:database_created</c>,
/// <c>tenant-restore:loaded</c>, <c>db:restore:loaded</c>, <c>undo:applied</c>, …) and the process kills itself with
/// SIGKILL on reaching it, as a kill -9 or a power cut would, so the tests can check what the next start makes of it.
/// </summary>
public static class CrashPoint
{
    public const string Variable = "LOOMWORKS_TEST_CRASH";

    public static void Reached(string point)
    {
        if (string.Equals(Environment.GetEnvironmentVariable(Variable), point, StringComparison.Ordinal))
        {
            _ = Native.Kill(Environment.ProcessId, 9);
            Thread.Sleep(Timeout.Infinite); // SIGKILL is delivered asynchronously: never run past the point
        }
    }
}
