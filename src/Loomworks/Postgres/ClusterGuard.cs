using System.Globalization;

namespace Loomworks.Postgres;

/// <summary>A start refused because data_dir does not hold the cluster it should: what is wrong and how to fix it.</summary>
public sealed class ClusterRefusedException(string problem, string fix) : InvalidOperationException($"{problem}. Fix: {fix}")
{
    public string Problem { get; } = problem;
    public string Fix { get; } = fix;
}

/// <summary>What a start may do with data_dir: use the cluster there or create one, and whether to record it.</summary>
public sealed record ClusterPlan(bool MayCreate, bool Records);

/// <summary>
/// Compares data_dir with the marker before anything is created: only the server creates a cluster, only on a first
/// start, and a cluster that was created and is now missing, or replaced by another one, is refused with its fix.
/// </summary>
public static class ClusterGuard
{
    public const string InitFlag = "loomworks server --init-cluster";

    public static ClusterPlan Decide(string dataDir, string pgData, ClusterMarker? marker, ClusterCreation creation)
    {
        var record = marker?.Read();
        var exists = File.Exists(Path.Combine(pgData, "PG_VERSION"));
        var recordable = marker is not null && creation != ClusterCreation.Never;
        if (!exists)
        {
            if (creation == ClusterCreation.Deliberate || (record is null && creation == ClusterCreation.FirstStart))
            {
                return new ClusterPlan(MayCreate: true, Records: recordable);
            }
            throw record is null ? NoCluster(dataDir, pgData, marker) : Missing(dataDir, pgData, marker!, record);
        }
        if (record is null || creation == ClusterCreation.Deliberate)
        {
            // A cluster made before markers existed, or one the operator has just said is the right one.
            return new ClusterPlan(MayCreate: false, Records: recordable);
        }
        var identifier = ReadIdentifier(pgData);
        if (identifier == record.SystemIdentifier)
        {
            // The same cluster, perhaps moved to a new data_dir along with the configuration: the server follows it.
            return new ClusterPlan(MayCreate: false, Records: recordable && record.DataDir != dataDir);
        }
        if (record.DataDir != dataDir)
        {
            // The configuration now names another data_dir that holds a cluster of its own: the operator chose it.
            return new ClusterPlan(MayCreate: false, Records: recordable);
        }
        throw new ClusterRefusedException(
            $"data_dir {dataDir} holds a PostgreSQL cluster with system identifier {identifier}, but the marker {marker!.Path} " +
            $"records that Loomworks created the one with {record.SystemIdentifier} there{When(record)}: this is not " +
            "the cluster whose tenants this server had",
            $"put the right cluster back into {pgData}, or, if this one is to be served, record it with `{InitFlag}`");
    }

    private static ClusterRefusedException NoCluster(string dataDir, string pgData, ClusterMarker? marker) => new(
        $"data_dir {dataDir} holds no PostgreSQL cluster (no {pgData})" +
        (marker is null ? "" : $" and the marker {marker.Path} records none") + "; only `loomworks server` creates one",
        "start `loomworks server` once with this data_dir (it creates the cluster on its first start), check that data_dir " +
        "is the one you mean, or set db_host to an existing PostgreSQL server");

    private static ClusterRefusedException Missing(string dataDir, string pgData, ClusterMarker marker, ClusterRecord record) =>
        record.DataDir == dataDir
            ? new(
                $"data_dir {dataDir} holds no PostgreSQL cluster (no {pgData}), but the marker {marker.Path} records that " +
                $"Loomworks created one there{When(record)} (system identifier {record.SystemIdentifier}): the tenants' " +
                "databases are missing, so nothing is started in their place",
                $"mount the volume or correct data_dir if that is why it is empty, or restore the cluster into {pgData}; to " +
                $"start over with a new, empty cluster, run `{InitFlag}` deliberately")
            : new(
                $"data_dir {dataDir} holds no PostgreSQL cluster (no {pgData}), and the marker {marker.Path} records that " +
                $"Loomworks created its cluster in {record.DataDir}{When(record)}",
                $"check data_dir (is it a typo of {record.DataDir}?); to create a new, empty cluster in {dataDir}, run " +
                $"`{InitFlag}` deliberately");

    private static ulong ReadIdentifier(string pgData)
    {
        try
        {
            return ClusterMarker.SystemIdentifierOf(pgData)
                ?? throw new InvalidOperationException($"{pgData} has PG_VERSION but no global/pg_control: it is damaged");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new InvalidOperationException($"cannot read {pgData}/global/pg_control to identify the cluster: {e.Message}", e);
        }
    }

    private static string When(ClusterRecord record) =>
        record.Recorded == DateTimeOffset.MinValue
            ? ""
            : " on " + record.Recorded.ToUniversalTime().ToString("yyyy-MM-dd HH:mm 'UTC'", CultureInfo.InvariantCulture);
}
