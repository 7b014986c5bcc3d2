using Loomworks.Configuration;

namespace Loomworks.Operations;

/// <summary>The operation log's settings, bound once from loomworks.conf.</summary>
public sealed record OperationsOptions(int RetentionDays)
{
    /// <summary>The binder: loomworks_oplog_retention_days.</summary>
    public static OperationsOptions From(LoomworksSettings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        return new OperationsOptions(settings.GetInt(ConfigKeys.OplogRetentionDays));
    }
}
