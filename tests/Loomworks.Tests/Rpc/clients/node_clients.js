// Drives a Loomworks server with the npm clients odoo-await and odoo-xmlrpc, as their READMEs use them.
// Usage: node node_clients.js URL DB USERNAME PASSWORD
const assert = require('node:assert/strict');
const OdooAwait = require('odoo-await');
const OdooXmlrpc = require('odoo-xmlrpc');

const [url, db, username, password] = process.argv.slice(2);

async function withOdooAwait() {
  const odoo = new OdooAwait({ baseUrl: url, db, username, password });
  const uid = await odoo.connect();
  assert.ok(uid > 0);
  const id = await odoo.create('res.partner', { name: 'Kool Keith', email: 'lostinspace@example.com', is_company: false });
  const [record] = await odoo.read('res.partner', id, ['name', 'email']);
  assert.equal(record.name, 'Kool Keith');
  assert.equal(await odoo.update('res.partner', id, { street: '334 Living Astro Blvd.' }), true);
  const rows = await odoo.searchRead('res.partner', { email: 'lostinspace@example.com' }, ['name', 'street'], { limit: 5 });
  assert.equal(rows.length, 1);
  assert.equal(rows[0].street, '334 Living Astro Blvd.');
  const ids = await odoo.search('res.partner', [['name', 'ilike', 'kool']]);
  assert.deepEqual(ids, [id]);
  const fields = await odoo.getFields('res.partner', ['type', 'string']);
  assert.equal(fields.email.type, 'char');
  assert.equal(await odoo.delete('res.partner', id), true);
  assert.deepEqual(await odoo.search('res.partner', { email: 'lostinspace@example.com' }), []);
}

function withOdooXmlrpc() {
  return new Promise((resolve, reject) => {
    const odoo = new OdooXmlrpc({ url, db, username, password });
    odoo.connect((err) => {
      if (err) return reject(err);
      odoo.execute_kw('res.partner', 'create', [[{ name: 'Xmlrpc Partner', phone: '+32 2 000' }]], (err2, id) => {
        if (err2) return reject(err2);
        const params = [[[['id', '=', id]]], { fields: ['name', 'phone'] }];
        odoo.execute_kw('res.partner', 'search_read', params, (err3, rows) => {
          if (err3) return reject(err3);
          try {
            assert.equal(rows.length, 1);
            assert.equal(rows[0].phone, '+32 2 000');
          } catch (e) { return reject(e); }
          odoo.execute_kw('res.partner', 'nonexistent_method', [[]], (err4) => {
            if (!err4) return reject(new Error('an unknown method succeeded'));
            resolve();
          });
        });
      });
    });
  });
}

(async () => {
  await withOdooAwait();
  await withOdooXmlrpc();
  console.log('OK');
})().catch((e) => { console.error(e); process.exit(1); });
