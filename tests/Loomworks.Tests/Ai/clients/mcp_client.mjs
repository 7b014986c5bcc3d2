// Drives every Loomworks MCP tool with the TypeScript SDK (protocol 2025-11-25, initialize handshake) against a
// running server: node mcp_client.mjs <url> <database> <api key>. Prints OK, or fails with the step that went wrong.
import assert from "node:assert/strict";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [url, database, key] = process.argv.slice(2);
const transport = new StreamableHTTPClientTransport(new URL(url + "/mcp"), {
  requestInit: { headers: { Authorization: `Bearer ${key}`, "X-Odoo-Database": database } },
});
const client = new Client({ name: "ts-agent", version: "1.32.2" });
await client.connect(transport);

const tools = (await client.listTools()).tools;
assert.equal(tools.length, 14);
assert.equal(tools.find((t) => t.name === "delete_records").annotations.destructiveHint, true);
assert.equal(tools.find((t) => t.name === "search_records").annotations.readOnlyHint, true);

async function ok(name, args = {}) {
  const result = await client.callTool({ name, arguments: args });
  assert.notEqual(result.isError, true, `${name}: ${result.content?.[0]?.text}`);
  assert.deepEqual(JSON.parse(result.content[0].text), result.structuredContent);
  return result.structuredContent;
}

assert.ok((await ok("list_models")).models.some((m) => m.model === "res.partner"));
assert.equal((await ok("describe_model", { model: "res.partner" })).fields.name.type, "char");
const created = await ok("create_records", { model: "res.partner", values: [{ name: "TS One" }, { name: "TS Two" }] });
const session = created.session_id;
assert.equal(created.ids.length, 2);
await ok("update_records", { model: "res.partner", ids: created.ids, values: { comment: "from TS" }, session_id: session });
const dry = await ok("delete_records", { model: "res.partner", ids: [created.ids[0]], dry_run: true });
assert.ok(dry.changes.some((c) => c.kind === "delete"));
const found = await ok("search_records", { model: "res.partner", domain: [["comment", "=", "from TS"]], fields: ["name"] });
assert.deepEqual(found.records.map((r) => r.name).sort(), ["TS One", "TS Two"]);
assert.equal((await ok("count_records", { model: "res.partner", domain: [["name", "=like", "TS %"]] })).count, 2);
assert.equal((await ok("read_records", { model: "res.partner", ids: created.ids, fields: ["name"] })).records.length, 2);
const groups = await ok("aggregate_records", {
  model: "res.partner", domain: [["name", "=like", "TS %"]], groupby: ["comment"], fields: ["id:count"],
});
assert.equal(groups.groups[0].__count, 2);
await ok("delete_records", { model: "res.partner", ids: [created.ids[1]], session_id: session });
const operations = (await ok("list_operations", { session_id: session })).operations;
assert.deepEqual(operations.map((o) => o.tool_name), ["delete_records", "update_records", "create_records"]);
const undone = await ok("undo_operation", { operation_id: operations[0].id });
assert.ok(undone.operation_id > 0);
await ok("undo_session", { session_id: session });
assert.equal((await ok("count_records", { model: "res.partner", domain: [["name", "=like", "TS %"]] })).count, 0);
assert.ok(Array.isArray((await ok("list_snapshots")).snapshots));
const snapshot = await client.callTool({ name: "create_snapshot", arguments: { name: "ts" } });
assert.equal(snapshot.isError, true);
const refused = await client.callTool({ name: "search_records", arguments: { model: "no.such'model" } });
assert.equal(refused.isError, true);
assert.match(refused.content[0].text, /there is no model/);

await client.close();
console.log("OK");
