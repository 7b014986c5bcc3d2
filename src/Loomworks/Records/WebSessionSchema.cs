namespace Loomworks.Records;

/// <summary>
/// The table of web sessions in each tenant database (migration 1100 in Records/Migrations; web sessions own
/// 1100–1199). It is not a model and not change-captured: an undo or rewind must never bring a logged-out session back,
/// and token hashes have no business in the operation log.
/// </summary>
public static class WebSessionSchema
{
    public const string Table = "loomworks_web_session";

    /// <summary>
    /// What a session is bound to besides its user: a digest of the id, login and password hash as Odoo's session token
    /// covers them, so a changed password or login ends every session of that user.
    /// </summary>
    public const string FingerprintSql =
        "encode(sha256(convert_to(u.id::text || chr(10) || u.login || chr(10) || coalesce(u.password, ''), 'UTF8')), 'hex')";
}
