namespace Loomworks.Records;

/// <summary>
/// The models of the ERP core, declared with Odoo 18's model and field names, types and meanings so that integrations
/// written for Odoo work unchanged. The tables are created by <see cref="TenantSchema"/>.
/// </summary>
public static class ModelRegistry
{
    private static FieldDef Char(string name, string label) => new(name, FieldType.Char, label);
    private static FieldDef Text(string name, string label) => new(name, FieldType.Text, label);
    private static FieldDef Html(string name, string label) => new(name, FieldType.Html, label);
    private static FieldDef Int(string name, string label) => new(name, FieldType.Integer, label);
    private static FieldDef Float(string name, string label) => new(name, FieldType.Float, label);
    private static FieldDef Money(string name, string label) => new(name, FieldType.Monetary, label);
    private static FieldDef Bool(string name, string label) => new(name, FieldType.Boolean, label);
    private static FieldDef Date(string name, string label) => new(name, FieldType.Date, label);
    private static FieldDef DateTime(string name, string label) => new(name, FieldType.Datetime, label);
    private static FieldDef Binary(string name, string label) => new(name, FieldType.Binary, label);
    private static FieldDef M2o(string name, string label, string relation) => new(name, FieldType.Many2one, label) { Relation = relation };
    private static FieldDef O2m(string name, string label, string relation, string inverse) =>
        new(name, FieldType.One2many, label) { Relation = relation, InverseName = inverse };
    private static FieldDef M2m(string name, string label, string relation, string table, string column1, string column2) =>
        new(name, FieldType.Many2many, label) { Relation = relation, RelationTable = table, Column1 = column1, Column2 = column2 };
    private static FieldDef Sel(string name, string label, params (string, string)[] values) =>
        new(name, FieldType.Selection, label) { Selection = values };
    private static FieldDef Active() => Bool("active", "Active") with { Default = true };

    public static readonly ModelDef Country = new("res.country", "res_country", "Country",
    [
        Char("name", "Country Name") with { Required = true },
        Char("code", "Country Code") with { Help = "The ISO country code in two chars." },
        Int("phone_code", "Country Calling Code"),
    ], order: "name");

    public static readonly ModelDef Company = new("res.company", "res_company", "Companies",
    [
        Char("name", "Company Name") with { Required = true },
        M2o("partner_id", "Partner", "res.partner"),
        M2o("parent_id", "Parent Company", "res.company"),
        O2m("child_ids", "Branches", "res.company", "parent_id"),
        Int("sequence", "Sequence") with { Default = 10L },
        Char("email", "Email"),
        Char("phone", "Phone"),
        Char("website", "Website Link"),
        Char("vat", "Tax ID"),
        Char("street", "Street"),
        Char("city", "City"),
        Char("zip", "Zip"),
        M2o("country_id", "Country", "res.country"),
        Active(),
    ], order: "sequence, name");

    public static readonly ModelDef Partner = new("res.partner", "res_partner", "Contact",
    [
        Char("name", "Name"),
        Char("complete_name", "Complete Name") with { ReadOnly = true, Computed = true, Stored = true },
        M2o("parent_id", "Related Company", "res.partner"),
        O2m("child_ids", "Contact", "res.partner", "parent_id"),
        Char("ref", "Reference"),
        Char("lang", "Language"),
        Char("tz", "Timezone"),
        M2o("user_id", "Salesperson", "res.users"),
        Char("vat", "Tax ID"),
        Char("website", "Website Link"),
        Html("comment", "Notes"),
        Active(),
        Bool("is_company", "Is a Company") with { Default = false },
        Sel("company_type", "Company Type", ("person", "Individual"), ("company", "Company"))
            with { Computed = true, Sql = "CASE WHEN {0}.is_company THEN 'company' ELSE 'person' END" },
        Sel("type", "Address Type", ("contact", "Contact"), ("invoice", "Invoice Address"), ("delivery", "Delivery Address"),
            ("other", "Other Address")) with { Default = "contact" },
        Char("function", "Job Position"),
        Char("street", "Street"),
        Char("street2", "Street2"),
        Char("zip", "Zip"),
        Char("city", "City"),
        M2o("country_id", "Country", "res.country"),
        Char("email", "Email"),
        Char("phone", "Phone"),
        Char("mobile", "Mobile"),
        Bool("employee", "Employee"),
        Int("color", "Color Index") with { Default = 0L },
        M2o("company_id", "Company", "res.company"),
        Int("customer_rank", "Customer Rank") with { Default = 0L },
        Int("supplier_rank", "Supplier Rank") with { Default = 0L },
        Float("credit_limit", "Credit Limit"),
        Binary("image_1920", "Image"),
        O2m("sale_order_ids", "Sales Order", "sale.order", "partner_id"),
    ], order: "complete_name, id", displayNameSql: "coalesce({0}.complete_name, {0}.\"name\")");

    public static readonly ModelDef Groups = new("res.groups", "res_groups", "Access Groups",
    [
        Char("name", "Name") with { Required = true },
        Char("full_name", "Group Name") with { ReadOnly = true },
        Text("comment", "Comment"),
        Bool("share", "Share Group"),
        M2m("users", "Users", "res.users", "res_groups_users_rel", "gid", "uid"),
    ], order: "name");

    public static readonly ModelDef Users = new("res.users", "res_users", "User",
    [
        Char("name", "Name") with { Required = true },
        Char("login", "Login") with { Required = true },
        Char("password", "Password") with { Hidden = true },
        M2o("partner_id", "Related Partner", "res.partner") with { OnDelete = "restrict" },
        Char("email", "Email"),
        Char("lang", "Language"),
        Char("tz", "Timezone"),
        Html("signature", "Email Signature"),
        Active(),
        Bool("share", "Share User") with { ReadOnly = true },
        M2o("company_id", "Company", "res.company"),
        M2m("company_ids", "Companies", "res.company", "res_company_users_rel", "user_id", "cid"),
        M2m("groups_id", "Groups", "res.groups", "res_groups_users_rel", "uid", "gid"),
        DateTime("login_date", "Latest authentication") with { ReadOnly = true },
        O2m("api_key_ids", "API Keys", "res.users.apikeys", "user_id") with { ReadOnly = true },
    ], order: "name, login", recName: "name");

    public static readonly ModelDef ApiKeys = new("res.users.apikeys", "res_users_apikeys", "Users API Keys",
    [
        Char("name", "Description") with { Required = true, ReadOnly = true },
        M2o("user_id", "User", "res.users") with { Required = true, ReadOnly = true, OnDelete = "cascade" },
        Char("scope", "Scope") with { ReadOnly = true },
        DateTime("expiration_date", "Expiration Date") with { ReadOnly = true },
        Char("index", "Key index") with { Hidden = true },
        Char("key", "Key") with { Hidden = true },
    ]);

    public static readonly ModelDef Product = new("product.product", "product_product", "Product Variant",
    [
        Char("name", "Name") with { Required = true },
        Char("default_code", "Internal Reference"),
        Char("barcode", "Barcode"),
        Sel("type", "Product Type", ("consu", "Goods"), ("service", "Service"), ("combo", "Combo")) with { Default = "consu" },
        Float("list_price", "Sales Price") with { Default = 1.0 },
        Float("standard_price", "Cost") with { Default = 0.0 },
        Bool("sale_ok", "Can be Sold") with { Default = true },
        Bool("purchase_ok", "Can be Purchased") with { Default = true },
        Text("description", "Description"),
        Text("description_sale", "Sales Description"),
        Float("weight", "Weight"),
        Float("volume", "Volume"),
        M2o("company_id", "Company", "res.company"),
        Active(),
    ], order: "default_code, name, id",
        displayNameSql:
            "CASE WHEN {0}.default_code IS NOT NULL THEN '[' || {0}.default_code || '] ' || {0}.\"name\" ELSE {0}.\"name\" END");

    public static readonly ModelDef SaleOrder = new("sale.order", "sale_order", "Sales Order",
    [
        Char("name", "Order Reference") with { Required = true, Default = "New" },
        M2o("partner_id", "Customer", "res.partner") with { Required = true, OnDelete = "restrict" },
        Sel("state", "Status", ("draft", "Quotation"), ("sent", "Quotation Sent"), ("sale", "Sales Order"), ("cancel", "Cancelled"))
            with { Default = "draft", ReadOnly = true },
        DateTime("date_order", "Order Date") with { Required = true },
        Date("validity_date", "Expiration"),
        Char("client_order_ref", "Customer Reference"),
        Char("origin", "Source Document"),
        Html("note", "Terms and conditions"),
        M2o("user_id", "Salesperson", "res.users"),
        M2o("company_id", "Company", "res.company"),
        O2m("order_line", "Order Lines", "sale.order.line", "order_id"),
        Money("amount_untaxed", "Untaxed Amount") with { ReadOnly = true, Computed = true, Stored = true },
        Money("amount_tax", "Taxes") with { ReadOnly = true, Computed = true, Stored = true },
        Money("amount_total", "Total") with { ReadOnly = true, Computed = true, Stored = true },
    ], order: "date_order desc, id desc");

    public static readonly ModelDef SaleOrderLine = new("sale.order.line", "sale_order_line", "Sales Order Line",
    [
        M2o("order_id", "Order Reference", "sale.order") with { Required = true, OnDelete = "cascade" },
        Int("sequence", "Sequence") with { Default = 10L },
        Text("name", "Description"),
        M2o("product_id", "Product", "product.product") with { OnDelete = "restrict" },
        Float("product_uom_qty", "Quantity") with { Default = 1.0 },
        Float("price_unit", "Unit Price"),
        Float("discount", "Discount (%)") with { Default = 0.0 },
        Money("price_subtotal", "Subtotal") with { ReadOnly = true, Computed = true, Stored = true },
        Money("price_total", "Total") with { ReadOnly = true, Computed = true, Stored = true },
        M2o("order_partner_id", "Customer", "res.partner")
            with { ReadOnly = true, Computed = true, Sql = "(SELECT o.partner_id FROM sale_order o WHERE o.id = {0}.order_id)" },
        Sel("state", "Order Status", ("draft", "Quotation"), ("sent", "Quotation Sent"), ("sale", "Sales Order"), ("cancel", "Cancelled"))
            with { ReadOnly = true, Computed = true, Sql = "(SELECT o.state FROM sale_order o WHERE o.id = {0}.order_id)" },
        M2o("company_id", "Company", "res.company"),
    ], order: "order_id, sequence, id");

    public static readonly ModelDef Attachment = new("ir.attachment", "ir_attachment", "Attachment",
    [
        Char("name", "Name") with { Required = true },
        Text("description", "Description"),
        Char("res_model", "Resource Model"),
        Char("res_field", "Resource Field"),
        Int("res_id", "Resource ID"),
        M2o("company_id", "Company", "res.company"),
        Sel("type", "Type", ("url", "URL"), ("binary", "File")) with { Default = "binary" },
        Char("url", "Url"),
        Bool("public", "Is public document"),
        Char("access_token", "Access Token") with { Hidden = true },
        Char("store_fname", "Stored Filename") with { ReadOnly = true },
        Int("file_size", "File Size") with { ReadOnly = true },
        Char("checksum", "Checksum/SHA1") with { ReadOnly = true },
        Char("mimetype", "Mime Type"),
        // Kept in the filestore, never in a column: see Attachments.
        Binary("datas", "File Content (base64)") with { Computed = true, Inverse = true },
        Binary("raw", "File Content (raw)") with { Computed = true, Inverse = true, Hidden = true },
    ], order: "id desc");

    /// <summary>Odoo's ir.model: one row per model of the registry, see <see cref="IrModels"/>.</summary>
    public static readonly ModelDef IrModel = new("ir.model", "ir_model", "Models",
    [
        Char("model", "Model") with { Required = true },
        Char("name", "Model Description") with { Required = true },
        Text("info", "Information"),
        Char("order", "Order"),
        Sel("state", "Type", ("manual", "Custom Object"), ("base", "Base Object")) with { Default = "base" },
        Bool("transient", "Transient Model"),
        O2m("field_id", "Fields", "ir.model.fields", "model_id"),
    ], order: "model");

    /// <summary>Odoo's ir.model.fields: one row per field a client can read, see <see cref="IrModels"/>.</summary>
    public static readonly ModelDef IrModelFields = new("ir.model.fields", "ir_model_fields", "Fields",
    [
        Char("name", "Field Name") with { Required = true },
        Char("complete_name", "Complete Name"),
        Char("model", "Model Name") with { Required = true, Help = "The technical name of the model this field belongs to" },
        M2o("model_id", "Model", "ir.model") with { Required = true, OnDelete = "cascade" },
        Char("field_description", "Field Label") with { Required = true },
        Text("help", "Field Help"),
        Sel("ttype", "Field Type", [.. Enum.GetValues<FieldType>().Select(TypeChoice)]) with { Required = true },
        Char("relation", "Related Model") with { Help = "For relationship fields, the technical name of the target model" },
        Char("relation_field", "Relation Field")
            with { Help = "For one2many fields, the field on the target model that implement the opposite many2one relationship" },
        Char("relation_table", "Relation Table") with { Help = "Used for custom many2many fields to define a custom relation table name" },
        Char("column1", "Column 1") with { Help = "Column referring to the record in the model table" },
        Char("column2", "Column 2") with { Help = "Column referring to the record in the comodel table" },
        Bool("required", "Required"),
        Bool("readonly", "Readonly"),
        Bool("store", "Stored") with { Help = "Whether the value is stored in the database." },
        Bool("selectable", "Selectable"),
        Sel("state", "Type", ("manual", "Custom Field"), ("base", "Base Field")) with { Default = "base" },
    ], order: "name", recName: "field_description", displayNameSql: "{0}.field_description || ' (' || {0}.model || ')'");

    // Odoo labels each field type with its own name.
    private static (string, string) TypeChoice(FieldType type) => (type.ToString().ToLowerInvariant(), type.ToString().ToLowerInvariant());

    /// <summary>True for ir.model and ir.model.fields, which describe the registry and are never written by a client.</summary>
    public static bool IsIntrospection(ModelDef model) => model == IrModel || model == IrModelFields;

    private static readonly Lock RegistrationGate = new();
    private static ModelDef[] _all = [Country, Company, Partner, Groups, Users, ApiKeys, Product, SaleOrder, SaleOrderLine, Attachment];
    // The introspection models are found by name but are not among All: their rows are derived from the registry, so the
    // change capture and the undo that walk All leave them alone.
    private static Dictionary<string, ModelDef> _byName =
        _all.Append(IrModel).Append(IrModelFields).ToDictionary(m => m.Name, StringComparer.Ordinal);

    /// <summary>The ERP core's models and those the features above Records registered.</summary>
    public static IReadOnlyList<ModelDef> All => Volatile.Read(ref _all);

    /// <summary>
    /// Adds a model that a feature above Records declares (the operation log, by Operations) and returns it; registering
    /// the same model again changes nothing, another model of a taken name is refused.
    /// </summary>
    public static ModelDef Register(ModelDef model)
    {
        ArgumentNullException.ThrowIfNull(model);
        lock (RegistrationGate)
        {
            if (_byName.TryGetValue(model.Name, out var known))
            {
                return ReferenceEquals(known, model)
                    ? model
                    : throw new InvalidOperationException($"a model named {model.Name} is already registered");
            }
            Volatile.Write(ref _byName, new Dictionary<string, ModelDef>(_byName, StringComparer.Ordinal) { [model.Name] = model });
            Volatile.Write(ref _all, [.. _all, model]);
            return model;
        }
    }

    public static ModelDef? Find(string name) => Volatile.Read(ref _byName).GetValueOrDefault(name);

    /// <summary>The model, or Odoo's UserError for a name that is not one.</summary>
    public static ModelDef Get(string name) =>
        Find(name) ?? throw OdooException.User($"Object {name} doesn't exist");
}
