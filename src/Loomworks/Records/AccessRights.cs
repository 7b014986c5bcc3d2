using Npgsql;

namespace Loomworks.Records;

/// <summary>What one user may do per model: the union of ir.model.access rows of the user's groups.</summary>
public sealed class AccessRights
{
    public const long SuperuserId = 1;

    private readonly Dictionary<string, (bool Read, bool Write, bool Create, bool Unlink)> _byModel;

    private AccessRights(long uid, bool isAdmin, Dictionary<string, (bool, bool, bool, bool)> byModel)
    {
        Uid = uid;
        IsAdmin = isAdmin;
        _byModel = byModel;
    }

    public long Uid { get; }

    /// <summary>Member of base.group_system (Settings), or the superuser.</summary>
    public bool IsAdmin { get; }

    public static async Task<AccessRights> LoadAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, long uid,
        CancellationToken cancellationToken)
    {
        var byModel = new Dictionary<string, (bool, bool, bool, bool)>(StringComparer.Ordinal);
        var isAdmin = uid == SuperuserId;
        await using var command = new NpgsqlCommand("""
            SELECT a.model, bool_or(a.perm_read), bool_or(a.perm_write), bool_or(a.perm_create), bool_or(a.perm_unlink),
                   bool_or(g.xml_id = 'base.group_system')
            FROM ir_model_access a
            JOIN res_groups g ON g.id = a.group_id
            JOIN res_groups_users_rel r ON r.gid = a.group_id
            WHERE r.uid = $1
            GROUP BY a.model
            """, connection, transaction);
        command.Parameters.AddWithValue(uid);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            byModel[reader.GetString(0)] = (reader.GetBoolean(1), reader.GetBoolean(2), reader.GetBoolean(3), reader.GetBoolean(4));
            isAdmin |= reader.GetBoolean(5);
        }
        return new AccessRights(uid, isAdmin, byModel);
    }

    public bool Allows(string model, string operation)
    {
        if (IsIntrospectionWrite(model, operation))
        {
            return false; // They describe the registry: nobody writes them, the superuser neither.
        }
        if (Uid == SuperuserId)
        {
            return true;
        }
        var rights = _byModel.GetValueOrDefault(model);
        return operation switch
        {
            "read" => rights.Read,
            "write" => rights.Write,
            "create" => rights.Create,
            "unlink" => rights.Unlink,
            _ => throw OdooException.Value($"Invalid access mode '{operation}'"),
        };
    }

    private static bool IsIntrospectionWrite(string model, string operation) =>
        model is "ir.model" or "ir.model.fields" && operation is "write" or "create" or "unlink";

    /// <summary>Raises Odoo's AccessError when the user may not do <paramref name="operation"/> on <paramref name="model"/>.</summary>
    public void Check(ModelDef model, string operation)
    {
        if (!Allows(model.Name, operation))
        {
            var verb = operation switch { "read" => "access", "write" => "modify", "create" => "create", _ => "delete" };
            if (IsIntrospectionWrite(model.Name, operation))
            {
                throw OdooException.Access($"You are not allowed to {verb} '{model.Label}' ({model.Name}) records.\n\n" +
                    "They describe the models and fields of this database, which only a new version of the server changes.");
            }
            throw OdooException.Access(
                $"You are not allowed to {verb} '{model.Label}' ({model.Name}) records.\n\n" +
                "This operation is allowed for the following groups:\n\t- Administration/Settings\n\n" +
                "Contact your administrator to request access if necessary.");
        }
    }
}
