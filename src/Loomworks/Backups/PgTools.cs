using System.Diagnostics;
using System.Text;
using Loomworks.Postgres;
using Npgsql;

namespace Loomworks.Backups;

/// <summary>pg_dump, pg_restore and psql started against our PostgreSQL server, with their error output kept for messages.</summary>
public sealed class PgTools(PostgresEndpoint endpoint, string binDirectory)
{
    public string BinDirectory => binDirectory;

    /// <summary>Starts <paramref name="program"/>; the caller pipes its standard streams and then awaits <see cref="PgProcess.WaitAsync"/>.</summary>
    public PgProcess Start(string program, IEnumerable<string> arguments, bool redirectInput = false, bool redirectOutput = false)
    {
        var info = new ProcessStartInfo(Path.Combine(binDirectory, program))
        {
            RedirectStandardInput = redirectInput,
            RedirectStandardOutput = redirectOutput,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = "/",
        };
        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }
        // Connection settings travel in the environment, never on a command line other users can read.
        info.Environment["PGHOST"] = endpoint.Host;
        info.Environment["PGPORT"] = endpoint.Port.ToString(System.Globalization.CultureInfo.InvariantCulture);
        info.Environment["PGUSER"] = endpoint.Username;
        info.Environment["PGAPPNAME"] = "loomworks-backups";
        info.Environment["PGSSLMODE"] = endpoint.SslMode switch
        {
            SslMode.Disable => "disable",
            SslMode.Allow => "allow",
            SslMode.Require => "require",
            SslMode.VerifyCA => "verify-ca",
            SslMode.VerifyFull => "verify-full",
            _ => "prefer",
        };
        if (endpoint.Password is not null)
        {
            info.Environment["PGPASSWORD"] = endpoint.Password;
        }
        var process = new Process { StartInfo = info };
        try
        {
            process.Start();
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            process.Dispose();
            throw new DatabaseManagerException(DatabaseManagerError.Failed,
                $"cannot run {program} from {binDirectory}: {e.Message}; install {PostgresBinaries.DebianPackage}", e);
        }
        return new PgProcess(program, process);
    }

    /// <summary>Runs a program to its end and returns its standard output; a failure throws with its error output.</summary>
    public async Task<string> RunAsync(string program, IEnumerable<string> arguments, CancellationToken cancellationToken)
    {
        using var process = Start(program, arguments, redirectOutput: true);
        var output = process.Process.StandardOutput.ReadToEndAsync(cancellationToken);
        await process.WaitAsync(cancellationToken);
        return await output;
    }
}

/// <summary>A running PostgreSQL program; its error output is drained continuously (the last 8 KB kept) so it never blocks.</summary>
public sealed class PgProcess : IDisposable
{
    private const int KeptErrorChars = 8192;
    private readonly StringBuilder _error = new();
    private readonly Task _errorPump;

    internal PgProcess(string program, Process process)
    {
        Program = program;
        Process = process;
        _errorPump = PumpErrorsAsync();
    }

    public string Program { get; }
    public Process Process { get; }

    public string Error
    {
        get
        {
            lock (_error)
            {
                return _error.ToString().Trim();
            }
        }
    }

    /// <summary>Waits for the exit; a non-zero exit throws with the program's own words.</summary>
    public async Task WaitAsync(CancellationToken cancellationToken)
    {
        try
        {
            await Process.WaitForExitAsync(cancellationToken);
        }
        catch (OperationCanceledException)
        {
            Kill();
            throw;
        }
        await _errorPump;
        if (Process.ExitCode != 0)
        {
            throw new DatabaseManagerException(DatabaseManagerError.Failed,
                $"{Program} failed (exit code {Process.ExitCode}): {Error}");
        }
    }

    public void Kill()
    {
        try
        {
            if (!Process.HasExited)
            {
                Process.Kill(entireProcessTree: true);
            }
        }
        catch (InvalidOperationException)
        {
            // Already gone.
        }
    }

    public void Dispose()
    {
        Kill();
        Process.Dispose();
    }

    private async Task PumpErrorsAsync()
    {
        var buffer = new char[4096];
        int read;
        while ((read = await Process.StandardError.ReadAsync(buffer)) > 0)
        {
            lock (_error)
            {
                _error.Append(buffer, 0, read);
                if (_error.Length > KeptErrorChars)
                {
                    _error.Remove(0, _error.Length - KeptErrorChars);
                }
            }
        }
    }
}
