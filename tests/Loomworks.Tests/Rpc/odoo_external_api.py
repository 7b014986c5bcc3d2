# The examples of Odoo 18's "External API" documentation, run unchanged against a Loomworks server with Python's
# standard xmlrpc.client. Usage: python3 odoo_external_api.py URL DB USERNAME PASSWORD
import sys
import xmlrpc.client

url, db, username, password = sys.argv[1:5]

# Logging in
common = xmlrpc.client.ServerProxy('{}/xmlrpc/2/common'.format(url))
version = common.version()
assert version['server_version'] == '18.0' and version['protocol_version'] == 1, version

uid = common.authenticate(db, username, password, {})
assert isinstance(uid, int) and uid > 0, uid

# Calling methods
models = xmlrpc.client.ServerProxy('{}/xmlrpc/2/object'.format(url))
assert models.execute_kw(db, uid, password, 'res.partner', 'check_access_rights', ['read'], {'raise_exception': False}) is True

# Seed a few companies so that the listing examples have something to find.
for n in range(12):
    models.execute_kw(db, uid, password, 'res.partner', 'create', [{'name': 'Company %d' % n, 'is_company': True}])

# List records
ids = models.execute_kw(db, uid, password, 'res.partner', 'search', [[['is_company', '=', True]]])
assert len(ids) >= 12, ids

# Pagination
page = models.execute_kw(db, uid, password, 'res.partner', 'search', [[['is_company', '=', True]]], {'offset': 10, 'limit': 5})
assert page == ids[10:15], (page, ids)

# Count records
count = models.execute_kw(db, uid, password, 'res.partner', 'search_count', [[['is_company', '=', True]]])
assert count == len(ids), count

# Read records
ids = models.execute_kw(db, uid, password, 'res.partner', 'search', [[['is_company', '=', True]]], {'limit': 1})
[record] = models.execute_kw(db, uid, password, 'res.partner', 'read', [ids])
assert len(record) > 20 and record['id'] == ids[0], record

read = models.execute_kw(db, uid, password, 'res.partner', 'read', [ids], {'fields': ['name', 'country_id', 'comment']})
assert set(read[0]) == {'id', 'name', 'country_id', 'comment'}, read

# Listing record fields
fields = models.execute_kw(db, uid, password, 'res.partner', 'fields_get', [], {'attributes': ['string', 'help', 'type']})
assert fields['name']['type'] == 'char' and set(fields['name']) == {'string', 'help', 'type'}, fields['name']

# Search and read
rows = models.execute_kw(db, uid, password, 'res.partner', 'search_read', [[['is_company', '=', True]]],
                         {'fields': ['name', 'country_id', 'comment'], 'limit': 5})
assert len(rows) == 5 and all(set(r) == {'id', 'name', 'country_id', 'comment'} for r in rows), rows

# Create records
id = models.execute_kw(db, uid, password, 'res.partner', 'create', [{'name': "New Partner"}])
assert isinstance(id, int), id

# Update records
models.execute_kw(db, uid, password, 'res.partner', 'write', [[id], {'name': "Newer partner"}])
# get record name after having changed it
name = models.execute_kw(db, uid, password, 'res.partner', 'read', [[id], ['display_name']])
assert name == [{'id': id, 'display_name': 'Newer partner'}], name

found = models.execute_kw(db, uid, password, 'res.partner', 'name_search', ['Newer partner'])
assert found == [[id, 'Newer partner']], found

# Delete records
models.execute_kw(db, uid, password, 'res.partner', 'unlink', [[id]])
# check if the deleted record is still in the database
assert models.execute_kw(db, uid, password, 'res.partner', 'search', [[['id', '=', id]]]) == []

# Errors come back as faults with Odoo's codes.
try:
    models.execute_kw(db, uid, 'wrong password', 'res.partner', 'search', [[]])
    raise AssertionError('a wrong password was accepted')
except xmlrpc.client.Fault as fault:
    assert fault.faultCode == 3, fault

print('OK')
