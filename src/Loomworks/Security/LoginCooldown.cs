namespace Loomworks.Security;

/// <summary>
/// Odoo's login cooldown (<c>res.users._assert_can_auth</c>): failed password checks are counted per database and
/// client address; once <see cref="After"/> have failed, that address may try again only after
/// <see cref="Duration"/> has passed since its last failure, and a success clears its count. An online guess costs
/// the attacker a minute per try while other addresses and other databases are untouched. <see cref="After"/> = 0
/// turns it off, as <c>base.login_cooldown_after = 0</c> does in Odoo.
/// </summary>
public sealed class LoginCooldown(int after, TimeSpan duration, TimeProvider? time = null)
{
    /// <summary>Odoo's text for a refused attempt.</summary>
    public const string Message = "Too many login failures, please wait a bit before trying again.";

    private readonly FailureCounter<(string Db, string Client)> _failures =
        new(after, duration, window: TimeSpan.MaxValue, clearOnLockOut: false, time);

    public int After { get; } = after;
    public TimeSpan Duration { get; } = duration;

    /// <summary>True while <paramref name="client"/> may not try a password on <paramref name="db"/>.</summary>
    public bool IsCooling(string db, string? client) => RemainingWait(db, client) is not null;

    /// <summary>How long <paramref name="client"/> must still wait before trying a password on <paramref name="db"/>, or null.</summary>
    public TimeSpan? RemainingWait(string db, string? client) => After <= 0 ? null : _failures.LockedFor((db, client ?? ""));

    public void Failed(string db, string? client)
    {
        if (After > 0)
        {
            _failures.Fail((db, client ?? ""));
        }
    }

    public void Succeeded(string db, string? client) => _failures.Clear((db, client ?? ""));
}
