using Npgsql;
using NpgsqlTypes;

namespace Loomworks.Records;

/// <summary>Stored computed fields: partners' complete names, order lines' subtotals and orders' amounts.</summary>
public sealed partial class RecordEnvironment
{
    /// <summary>
    /// The stored computed fields of <paramref name="ids"/> after a create (<paramref name="written"/> null) or after a
    /// write of the <paramref name="written"/> fields, which recomputes only what depends on them: a partner's complete
    /// name its name, parent and company flag, an order's amounts its lines (its name is set once, at create). A new
    /// line needs none (its INSERT computed them); a new order gets its name and its amounts in one UPDATE.
    /// </summary>
    private async Task RecomputeAsync(ModelDef model, long[] ids, IReadOnlyCollection<string>? written, CancellationToken ct)
    {
        bool Wrote(params string[] fields) => written is null || fields.Any(written.Contains);
        if (model == ModelRegistry.Partner && Wrote("name", "parent_id", "is_company"))
        {
            // Own names first, then the children whose complete name shows this one.
            await ExecuteAsync("""
                UPDATE res_partner p SET complete_name = CASE
                    WHEN p.parent_id IS NOT NULL AND NOT coalesce(p.is_company, false) AND par.name IS NOT NULL
                        THEN par.name || ', ' || coalesce(p.name, '') ELSE p.name END
                FROM res_partner p2 LEFT JOIN res_partner par ON par.id = p2.parent_id
                WHERE p.id = p2.id AND (p.id = ANY($1) OR p.parent_id = ANY($1))
                """, ids, ct);
        }
        else if (model == ModelRegistry.SaleOrderLine)
        {
            var subtotal = LineSubtotalSql("product_uom_qty", "price_unit", "discount");
            await ExecuteAsync($"""
                UPDATE sale_order_line SET price_subtotal = {subtotal}, price_total = {subtotal},
                    name = coalesce(name, (SELECT pp.name FROM product_product pp WHERE pp.id = product_id))
                WHERE id = ANY($1)
                """, ids, ct);
            if (!_orderAmountsDeferred)
            {
                var orders = await ScalarsAsync("SELECT DISTINCT order_id FROM sale_order_line WHERE id = ANY($1)", ids, ct);
                await RecomputeOrdersAsync(orders.ToArray(), ct);
            }
        }
        else if (model == ModelRegistry.SaleOrder && Wrote("order_line"))
        {
            await ExecuteAsync(written is null ? NewOrdersSql : OrderAmountsSql, ids, ct);
        }
    }

    /// <summary>A line's subtotal (and total: no taxes) from its quantity, unit price and discount, given as SQL expressions.</summary>
    private static string LineSubtotalSql(string quantity, string unitPrice, string discount) =>
        $"round((coalesce({quantity}, 0) * coalesce({unitPrice}, 0) * (1 - coalesce({discount}, 0) / 100.0))::numeric, 2)";

    private const string OrderAmountsSql = """
        UPDATE sale_order o SET amount_untaxed = s.total, amount_tax = 0, amount_total = s.total
        FROM (SELECT so.id, coalesce(sum(l.price_subtotal), 0) AS total FROM sale_order so
              LEFT JOIN sale_order_line l ON l.order_id = so.id WHERE so.id = ANY($1) GROUP BY so.id) s
        WHERE o.id = s.id
        """;

    /// <summary>New orders: their amounts, and the name S00042 from the id when the client left the default.</summary>
    private static readonly string NewOrdersSql = OrderAmountsSql.Replace(
        "SET amount_untaxed", "SET name = CASE WHEN o.name = 'New' THEN 'S' || lpad(o.id::text, 5, '0') ELSE o.name END, amount_untaxed",
        StringComparison.Ordinal);

    private Task RecomputeOrdersAsync(long[] orderIds, CancellationToken ct) => ExecuteAsync(OrderAmountsSql, orderIds, ct);

    private async Task ExecuteAsync(string text, long[] ids, CancellationToken ct)
    {
        await using var command = new NpgsqlCommand(text, connection, transaction);
        command.Parameters.Add(new NpgsqlParameter { Value = ids, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Integer });
        await command.ExecuteNonQueryAsync(ct);
    }
}
