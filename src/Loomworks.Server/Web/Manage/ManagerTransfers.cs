using Loomworks.Backups;
using Loomworks.Server.Backups;
using Microsoft.AspNetCore.Antiforgery;

namespace Loomworks.Server.Web.Manage;

/// <summary>
/// The database manager page's backup download and restore upload: Odoo's <c>/web/database/backup</c> and
/// <c>/restore</c> handlers behind the page's antiforgery token. The restore form's script sends the token as a header,
/// so the upload streams straight to the spool; a form posted without the script is buffered once to find its token.
/// </summary>
public static class ManagerTransfers
{
    public const string BackupPath = "/web/database/manager/backup";
    public const string RestorePath = "/web/database/manager/restore";

    public static void MapManagerTransfers(this IEndpointRouteBuilder app)
    {
        app.MapPost(BackupPath, async (HttpContext context, IAntiforgery antiforgery, DatabaseManager manager, IMasterPasswordCheck gate) =>
            await antiforgery.IsRequestValidAsync(context)
                ? await DatabaseManagerEndpoints.BackupAsync(context, manager, gate)
                : Refused());
        app.MapPost(RestorePath, async (HttpContext context, IAntiforgery antiforgery, DatabaseManager manager, IMasterPasswordCheck gate,
            DatabaseManagerOptions options) =>
        {
            var byHeader = context.Request.Headers.ContainsKey(AntiforgeryHeader);
            if (!byHeader)
            {
                context.Request.EnableBuffering();
            }
            if (!await antiforgery.IsRequestValidAsync(context))
            {
                return Refused();
            }
            if (!byHeader)
            {
                context.Request.Body.Position = 0;
            }
            return await DatabaseManagerEndpoints.RestoreAsync(context, manager, gate, options);
        });
    }

    /// <summary>The header the restore form's script puts the token in (ASP.NET Core's default).</summary>
    public const string AntiforgeryHeader = "RequestVerificationToken";

    private static Microsoft.AspNetCore.Http.HttpResults.ContentHttpResult Refused() => TypedResults.Text(
        "The form's antiforgery token is missing or not valid: reload the database manager page and try again.\n",
        "text/plain; charset=utf-8", statusCode: StatusCodes.Status400BadRequest);
}
