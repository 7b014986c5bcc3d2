using Loomworks.Configuration;

namespace Loomworks.Filestore;

/// <summary>The largest attachment a tenant may store (loomworks_attachment_max_mb), bound once from loomworks.conf.</summary>
public sealed record AttachmentOptions(long MaxBytes)
{
    public static AttachmentOptions From(LoomworksSettings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        return new AttachmentOptions(settings.GetInt(ConfigKeys.AttachmentMaxMb) * 1024L * 1024);
    }
}
