using System.Runtime.InteropServices;

namespace Loomworks.Postgres;

/// <summary>The few POSIX user calls .NET does not offer: look a user up in /etc/passwd, change a file's owner.</summary>
public static partial class OsUsers
{
    public static (int Uid, int Gid)? Lookup(string userName)
    {
        foreach (var line in File.ReadLines("/etc/passwd"))
        {
            var fields = line.Split(':');
            if (fields.Length >= 4 && fields[0] == userName
                && int.TryParse(fields[2], out var uid) && int.TryParse(fields[3], out var gid))
            {
                return (uid, gid);
            }
        }
        return null;
    }

    public static void Chown(string path, int uid, int gid)
    {
        if (Native.Chown(path, uid, gid) != 0)
        {
            throw new IOException($"cannot change the owner of {path}: errno {Marshal.GetLastPInvokeError()}");
        }
    }
}
