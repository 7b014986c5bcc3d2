using Loomworks.Configuration;
using Loomworks.Server.Rpc;

namespace Loomworks.Tests.Rpc;

/// <summary>How the RPC body cap follows the attachment cap unless it is configured.</summary>
public sealed class RpcBodyCapTests
{
    private const long Mebibyte = 1024 * 1024;

    [Theory]
    [InlineData(64)]
    [InlineData(1)]
    [InlineData(4096)]
    public void By_default_the_cap_fits_the_largest_attachment_base64_encoded_and_little_more(int attachmentMb)
    {
        var settings = LoomworksSettings.Defaults(new Dictionary<string, string>
        {
            ["loomworks_attachment_max_mb"] = attachmentMb.ToString(System.Globalization.CultureInfo.InvariantCulture),
        });
        var cap = RpcEndpoints.BodyCapBytes(settings);
        var base64 = (attachmentMb * Mebibyte + 2) / 3 * 4;
        // Room for base64 wrapped in 76-character lines (XML-RPC clients do) and the call around it…
        Assert.True(cap >= base64 + base64 / 76 + 64 * 1024, $"cap {cap} < attachment {base64} in base64");
        // …and not much more: half again the encoded size at most.
        Assert.True(cap <= base64 * 3 / 2 + Mebibyte, $"cap {cap} far above attachment {base64} in base64");
    }

    [Fact]
    public void A_configured_cap_wins_and_the_default_refuses_a_120_mb_body()
    {
        Assert.Equal(8 * Mebibyte, RpcEndpoints.BodyCapBytes(LoomworksSettings.Defaults(new Dictionary<string, string>
        {
            ["loomworks_rpc_body_max_mb"] = "8",
        })));
        Assert.True(RpcEndpoints.BodyCapBytes(LoomworksSettings.Defaults(new Dictionary<string, string>())) < 120 * Mebibyte);
    }
}
