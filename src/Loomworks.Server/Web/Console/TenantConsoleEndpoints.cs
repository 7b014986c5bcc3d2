using System.Text;
using System.Text.Json.Serialization;
using Loomworks.Snapshots;

namespace Loomworks.Server.Web.Console;

/// <summary>
/// The tenant console's services, the restore progress a page's script polls, and that script. The progress answer is
/// reached with the token the page was given, not with the session: an in-place restore takes the tenant, and so its
/// sessions, offline until it ends.
/// </summary>
public static class TenantConsoleEndpoints
{
    /// <summary>Below a prefix the tenant router leaves alone (see TenancyServerExtensions).</summary>
    public const string ProgressPrefix = "/console/restore-progress";
    public const string ScriptPath = StaticAssets.Prefix + "/restore-progress.js";
    public const string StylesheetPath = StaticAssets.Prefix + "/tenant-console.css";

    public sealed record ProgressAnswer(
        [property: JsonPropertyName("state")] string State,
        [property: JsonPropertyName("step")] string Step,
        [property: JsonPropertyName("progress")] int Progress,
        [property: JsonPropertyName("steps")] IReadOnlyList<string> Steps,
        [property: JsonPropertyName("error")] string? Error,
        [property: JsonPropertyName("target")] string Target,
        [property: JsonPropertyName("as_subdomain")] string? AsSubdomain);

    public static IServiceCollection AddTenantConsole(this IServiceCollection services)
    {
        services.AddSingleton<ConsoleRights>();
        services.AddSingleton<ConsoleOperations>();
        services.AddSingleton<ConsoleSnapshots>();
        services.AddSingleton<ConsoleRecords>();
        return services;
    }

    public static IEndpointRouteBuilder MapTenantConsole(this IEndpointRouteBuilder app)
    {
        app.MapGet(ProgressPrefix + "/{token}", async (string token, ConsoleSnapshots snapshots, HttpContext http, CancellationToken ct) =>
        {
            http.Response.Headers.CacheControl = "no-store";
            var job = await snapshots.ProgressAsync(token, ct);
            return job is null
                ? Results.NotFound(new { error = "no such restore, or the link has expired" })
                : Results.Ok(new ProgressAnswer(job.State, job.StepName, job.Progress, RestoreSteps.Names, job.Error, job.Target,
                    job.AsSubdomain));
        });
        app.MapGet(ScriptPath, (HttpContext http) =>
        {
            http.Response.Headers.CacheControl = "no-cache";
            return Results.Bytes(Script, "text/javascript; charset=utf-8");
        });
        app.MapGet(StylesheetPath, (HttpContext http) =>
        {
            http.Response.Headers.CacheControl = "no-cache";
            return Results.Bytes(Stylesheet, "text/css; charset=utf-8");
        });
        return app;
    }

    /// <summary>What the tenant console's pages add to the site's stylesheet: filters, pager, row changes, restore steps.</summary>
    private static readonly byte[] Stylesheet = Encoding.UTF8.GetBytes("""
        .visually-hidden { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
        .filters { flex-wrap: wrap; }
        .pager { display: flex; gap: 1rem; margin-top: 1rem; }
        .actions { display: flex; flex-wrap: wrap; gap: .75rem; align-items: flex-end; }
        .actions form { margin: 0; }
        .change { margin: 1rem 0; }
        .change td.before { background: #fdecea; }
        .change td.after { background: #e8f5e9; }
        .change td { word-break: break-word; }
        .usage { display: grid; grid-template-columns: repeat(auto-fit, minmax(14rem, 1fr)); gap: 1rem; }
        .usage meter { width: 100%; }
        .ok { color: #1b5e20; }
        .bad { color: #b71c1c; }
        .steps { list-style: none; padding: 0; display: flex; flex-wrap: wrap; gap: .5rem; }
        .steps li { border: 1px solid #767676; border-radius: .25rem; padding: .25rem .5rem; }
        .steps li.done { background: #e8f5e9; border-color: #1b5e20; }
        .secret { font-family: monospace; font-size: 1.1rem; word-break: break-all; background: #fff8e1; padding: .5rem; }
        """);

    /// <summary>
    /// Polls the restore's progress once a second and moves the bar and the step list; when the job ends it shows the
    /// result. Our own file, no inline code: the Content-Security-Policy allows scripts of this host only.
    /// </summary>
    private static readonly byte[] Script = Encoding.UTF8.GetBytes("""
        "use strict";
        document.querySelectorAll("[data-restore-progress]").forEach((box) => {
          const bar = box.querySelector("progress");
          const status = box.querySelector("[data-status]");
          const result = box.querySelector("[data-result]");
          const steps = box.querySelectorAll("[data-step]");
          const poll = async () => {
            let job;
            try {
              const answer = await fetch(box.dataset.restoreProgress, { cache: "no-store", credentials: "same-origin" });
              job = await answer.json();
              if (!answer.ok) {
                status.textContent = job.error || "The restore's progress cannot be read.";
                return;
              }
            } catch (e) {
              status.textContent = "Waiting for the server…";
              window.setTimeout(poll, 2000);
              return;
            }
            bar.value = job.progress;
            bar.textContent = job.progress + "%";
            const reached = job.steps.indexOf(job.step);
            steps.forEach((li) => {
              const index = job.steps.indexOf(li.dataset.step);
              li.classList.toggle("done", index <= reached);
              if (index === reached) {
                li.setAttribute("aria-current", "step");
              } else {
                li.removeAttribute("aria-current");
              }
            });
            status.textContent = "Step: " + job.step.replace("_", " ") + " (" + job.progress + "%)";
            if (job.state === "running" || job.state === "undoing") {
              window.setTimeout(poll, 1000);
              return;
            }
            box.dataset.state = job.state;
            result.hidden = false;
            result.textContent = job.state === "done"
              ? "The restore finished: the tenant " + (job.as_subdomain ? "'" + job.as_subdomain + "' was created" : "is back")
                + " as of " + job.target + ". You may have to log in again."
              : "The restore " + job.state + (job.error ? ": " + job.error : "") + ". The tenant was left as it was.";
            result.focus();
          };
          poll();
        });
        """);
}
