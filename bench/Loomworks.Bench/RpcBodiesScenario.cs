using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;

namespace Loomworks.Bench;

/// <summary>
/// Resident memory of the real <c>loomworks</c> server (a child process, so the figure is the server's alone) while 16
/// clients each post a 120 MB body to /jsonrpc at once: once with Content-Length, once chunked (no length announced,
/// so only the per-request cap and the in-flight bound stop it). Idle RSS before, peak RSS sampled during, RSS after.
/// </summary>
public sealed class RpcBodiesScenario : IScenario
{
    private const int Clients = 16;
    private const long BodyBytes = 120L * 1024 * 1024;
    private const int HttpPort = 55631;
    private const int DbPort = 55630;

    public string Name => "rpc-bodies";
    public string Description => "server RSS idle vs 16 parallel 120 MB JSON-RPC bodies in flight (declared and chunked), real executable";

    public async Task<IReadOnlyList<ScenarioResult>> RunAsync(int runs, CancellationToken cancellationToken)
    {
        using var scratch = new Scratch("bench", giveToServerUser: true);
        using var server = StartServer(scratch.Path);
        try
        {
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{HttpPort}"), Timeout = TimeSpan.FromMinutes(5) };
            await WaitUntilAnsweringAsync(http, server, cancellationToken);
            var results = new List<ScenarioResult>();
            foreach (var chunked in new[] { false, true })
            {
                var (idle, peak, after) = (new List<double>(), new List<double>(), new List<double>());
                var statuses = new SortedDictionary<string, int>();
                for (var run = 0; run < runs; run++)
                {
                    await SettleAsync();
                    idle.Add(RssMb(server.Id));
                    var sampling = new CancellationTokenSource();
                    var sampler = SamplePeakAsync(server.Id, sampling.Token);
                    var answers = await Task.WhenAll(Enumerable.Range(0, Clients).Select(_ => PostAsync(http, chunked, cancellationToken)));
                    await sampling.CancelAsync();
                    peak.Add(await sampler);
                    await SettleAsync();
                    after.Add(RssMb(server.Id));
                    foreach (var answer in answers)
                    {
                        statuses[answer] = statuses.GetValueOrDefault(answer) + 1;
                    }
                }
                var kind = chunked ? "chunked" : "declared";
                results.Add(new ScenarioResult($"rpc-bodies {kind}: peak RSS (MB)", peak, idle, "idle RSS (MB)",
                    string.Create(CultureInfo.InvariantCulture,
                        $"{kind}: idle {BenchRunner.Median(idle):F0} MB, peak {BenchRunner.Median(peak):F0} MB, " +
                        $"after {BenchRunner.Median(after):F0} MB " +
                        $"(medians of {runs}); answers: {string.Join(", ", statuses.Select(s => $"{s.Value}x {s.Key}"))}")));
            }
            return results;
        }
        finally
        {
            _ = kill(server.Id, 15);
            if (!server.WaitForExit(TimeSpan.FromSeconds(30)))
            {
                server.Kill(entireProcessTree: true);
            }
        }
    }

    private static Process StartServer(string dataDir)
    {
        var info = new ProcessStartInfo(Path.Combine(AppContext.BaseDirectory, "loomworks"))
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = Path.GetTempPath(),
        };
        foreach (var argument in new[] { "server", "--data-dir", dataDir, "--http-port", $"{HttpPort}", "--db-port", $"{DbPort}",
                     "--http-interface", "127.0.0.1" })
        {
            info.ArgumentList.Add(argument);
        }
        foreach (var name in info.Environment.Keys.Where(k => k.StartsWith("LOOMWORKS_", StringComparison.Ordinal)).ToList())
        {
            info.Environment.Remove(name);
        }
        var process = Process.Start(info)!;
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                Console.Error.WriteLine("loomworks: " + e.Data);
            }
        };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    private static async Task WaitUntilAnsweringAsync(HttpClient http, Process server, CancellationToken ct)
    {
        var watch = Stopwatch.StartNew();
        while (watch.Elapsed < TimeSpan.FromMinutes(2))
        {
            if (server.HasExited)
            {
                throw new InvalidOperationException($"loomworks exited with {server.ExitCode} before answering");
            }
            try
            {
                using var response = await http.GetAsync("/web/health", ct);
                if (response.StatusCode == HttpStatusCode.OK)
                {
                    return;
                }
            }
            catch (HttpRequestException)
            {
                // Not listening yet.
            }
            await Task.Delay(200, ct);
        }
        throw new TimeoutException("loomworks did not answer /web/health within 2 minutes");
    }

    /// <summary>The HTTP status, or how the exchange ended when the server closed the connection before answering.</summary>
    private static async Task<string> PostAsync(HttpClient http, bool chunked, CancellationToken ct)
    {
        using var content = new GeneratedBody(BodyBytes, chunked);
        try
        {
            using var response = await http.PostAsync("/jsonrpc", content, ct);
            await response.Content.ReadAsByteArrayAsync(ct);
            return ((int)response.StatusCode).ToString(CultureInfo.InvariantCulture);
        }
        catch (HttpRequestException e)
        {
            return "closed (" + (e.InnerException?.GetType().Name ?? e.GetType().Name) + ")";
        }
    }

    /// <summary>Lets the server's GC and the kernel settle so RSS reflects what is still held.</summary>
    private static Task SettleAsync() => Task.Delay(TimeSpan.FromSeconds(3));

    private static async Task<double> SamplePeakAsync(int pid, CancellationToken ct)
    {
        var peak = 0.0;
        while (!ct.IsCancellationRequested)
        {
            peak = Math.Max(peak, RssMb(pid));
            try
            {
                await Task.Delay(10, ct);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }
        return Math.Max(peak, RssMb(pid));
    }

    private static double RssMb(int pid)
    {
        var line = File.ReadLines($"/proc/{pid}/status").First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) / 1024.0;
    }

    [System.Runtime.InteropServices.DllImport("libc", SetLastError = true)]
    private static extern int kill(int pid, int signal);

    /// <summary>A JSON-looking body made as it is sent, so the bench never holds 16 × 120 MB itself.</summary>
    private sealed class GeneratedBody : HttpContent
    {
        private readonly long _length;
        private readonly bool _chunked;

        private static ReadOnlySpan<byte> Prefix =>
            "{\"jsonrpc\":\"2.0\",\"method\":\"call\",\"params\":{\"service\":\"common\",\"method\":\"version\",\"args\":[\""u8;

        public GeneratedBody(long length, bool chunked)
        {
            _length = length;
            _chunked = chunked;
            Headers.ContentType = new MediaTypeHeaderValue("application/json");
        }

        protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context)
        {
            var block = new byte[64 * 1024];
            Array.Fill(block, (byte)'a');
            var prefixLength = Prefix.Length;
            Prefix.CopyTo(block);
            var sent = 0L;
            try
            {
                while (sent < _length)
                {
                    var size = (int)Math.Min(block.Length, _length - sent);
                    await stream.WriteAsync(block.AsMemory(0, size));
                    sent += size;
                    // The call's opening is sent once; the rest of the body is one long string.
                    block.AsSpan(0, prefixLength).Fill((byte)'a');
                }
            }
            catch (Exception e) when (e is IOException or HttpRequestException or OperationCanceledException)
            {
                // The server refused the body and closed the connection: that is the answer being measured.
            }
        }

        protected override bool TryComputeLength(out long length)
        {
            length = _length;
            return !_chunked;
        }
    }
}
