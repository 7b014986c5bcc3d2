using System.Net;

namespace Loomworks.Tenancy.Routing;

/// <summary>
/// Who may name a tenant with the tenant header (loomworks_tenant_header): only clients whose address is in
/// loomworks_trusted_proxies, the internal services and proxies the operator vouches for. The address judged is the
/// client's as the server sees it after proxy_mode has applied X-Forwarded-For (which it believes only from those same
/// proxies), so an outside client that passes the header through a trusted proxy is still judged by its own address.
/// </summary>
public sealed class TenantHeaderTrust
{
    private readonly List<IPAddress> _addresses = [];
    private readonly List<IPNetwork> _networks = [];

    public TenantHeaderTrust(IEnumerable<string> trusted)
    {
        ArgumentNullException.ThrowIfNull(trusted);
        foreach (var entry in trusted)
        {
            if (IPAddress.TryParse(entry, out var address))
            {
                _addresses.Add(Normalise(address));
            }
            else if (IPNetwork.TryParse(entry, out var network))
            {
                _networks.Add(network);
            }
        }
    }

    /// <summary>True when the header of a request from <paramref name="client"/> is believed.</summary>
    public bool Trusts(IPAddress? client)
    {
        if (client is null)
        {
            return false;
        }
        var address = Normalise(client);
        return _addresses.Contains(address) || _networks.Any(n => n.Contains(address) || n.Contains(client));
    }

    // A dual-stack listener reports IPv4 clients as ::ffff:a.b.c.d; the configuration names them as a.b.c.d.
    private static IPAddress Normalise(IPAddress address) => address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address;
}
