"""The db service driven by Python's standard xmlrpc.client: create, use, dump, restore, duplicate, drop."""
import sys
import xmlrpc.client

url, master, name, restored, restored_dump, duplicate = sys.argv[1:7]
db = xmlrpc.client.ServerProxy(f"{url}/xmlrpc/2/db")
common = xmlrpc.client.ServerProxy(f"{url}/xmlrpc/2/common")
models = xmlrpc.client.ServerProxy(f"{url}/xmlrpc/2/object")

assert db.server_version() == "18.0"
assert db.create_database(master, name, False, "en_US", "pw-boss", "boss", "FR", "+33 1 23 45 67 89") is True
uid = common.authenticate(name, "boss", "pw-boss", {})
assert uid, "authenticate in the created database"
pid = models.execute_kw(name, uid, "pw-boss", "res.partner", "create", [{"name": "Round Trip SA", "email": "rt@example.com"}])
assert isinstance(pid, int)
assert db.db_exist(name) is True and name in db.list()

def partners(database):
    u = common.authenticate(database, "boss", "pw-boss", {})
    assert u, f"authenticate in {database}"
    return models.execute_kw(database, u, "pw-boss", "res.partner", "search_read",
                             [[["name", "=", "Round Trip SA"]]], {"fields": ["name", "email"]})

original = partners(name)
data = db.dump(master, name, "zip")
assert db.restore(master, restored, data, True) is True
assert [(p["name"], p["email"]) for p in partners(restored)] == [(p["name"], p["email"]) for p in original]

data = db.dump(master, name, "dump")
assert db.restore(master, restored_dump, data) is True
assert len(partners(restored_dump)) == 1

try:
    db.restore(master, restored, data)
    raise SystemExit("restoring over an existing name must fail")
except xmlrpc.client.Fault as fault:
    assert "already exists" in fault.faultString, fault.faultString

assert db.duplicate_database(master, name, duplicate, True) is True
assert len(partners(duplicate)) == 1
assert db.drop(master, duplicate) is True
assert db.drop(master, duplicate) is False
assert duplicate not in db.list()

try:
    db.drop("not-the-master-password", restored)
    raise SystemExit("a wrong master password must fail")
except xmlrpc.client.Fault as fault:
    assert fault.faultCode == 3, fault
print("OK")
