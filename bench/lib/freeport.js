// Prints N free TCP ports on 127.0.0.1, one a line (default 1). The kernel
// picks them (listen on port 0); all N are held open together so they are
// distinct, then released for the caller to bind.
// Usage: node bench/lib/freeport.js [N]
'use strict';
const net = require('node:net');

const n = Number(process.argv[2] || 1);

function grab() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => resolve(s));
  });
}

(async () => {
  const servers = [];
  for (let i = 0; i < n; i++) servers.push(await grab());
  for (const s of servers) console.log(s.address().port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
})().catch((e) => { console.error(`freeport: ${e.message}`); process.exit(1); });
