// Sets up a running chatd for a benchmark, through the REST API only
// (PROTOCOL.md, "HTTP"). Prints what the benchmark needs on stdout.
//
//   node bench/lib/prepare.js setup PORT [--room R] [--fill N] [--size B]
//                             [--storm-users N] [--password PW]
//     Registers the user "bench" (and "storm-0" .. "storm-{N-1}" with the
//     same password, for login-storm.js), creates room R (default "bench")
//     with "bench" in it, sends N messages of B bytes (default 0 and 100)
//     into it, and prints a login token of "bench".
//
//   node bench/lib/prepare.js last-seq PORT TOKEN ROOM
//     Prints last_seq of ROOM as GET /api/rooms reports it.
//
// Exits non-zero, with the status and body on stderr, on any unexpected
// answer: a benchmark must not run on a half-prepared server.
'use strict';
const http = require('node:http');

const USER = 'bench';
const DEFAULT_PASSWORD = 'bench-password-1';
const FILL_CONCURRENCY = 8;	// parallel sends while filling the room
const TIMEOUT_MS = 30000;	// a registration waits for a password hash

const agent = new http.Agent({ keepAlive: true, maxSockets: FILL_CONCURRENCY });

function request(port, method, path, body, token) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? null : Buffer.from(JSON.stringify(body));
    const headers = {};
    if (data) {
      headers['Content-Type'] = 'application/json';
      headers['Content-Length'] = data.length;
    }
    if (token) headers.Authorization = `Bearer ${token}`;
    const req = http.request({ host: '127.0.0.1', port, method, path, headers, agent });
    req.setTimeout(TIMEOUT_MS, () => req.destroy(new Error(`timeout: ${method} ${path}`)));
    req.on('error', reject);
    req.on('response', (res) => {
      const chunks = [];
      res.on('data', (d) => chunks.push(d));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json;
        try { json = JSON.parse(text); } catch { json = undefined; }
        resolve({ status: res.statusCode, text, json });
      });
    });
    req.end(data);
  });
}

async function expect(want, port, method, path, body, token) {
  const r = await request(port, method, path, body, token);
  if (r.status !== want) throw new Error(`${method} ${path}: ${r.status} ${r.text} (wanted ${want})`);
  return r;
}

function options(argv) {
  const o = { room: 'bench', fill: 0, size: 100, stormUsers: 0, password: DEFAULT_PASSWORD };
  for (let i = 0; i < argv.length; i += 2) {
    const v = argv[i + 1];
    switch (argv[i]) {
      case '--room': o.room = v; break;
      case '--fill': o.fill = Number(v); break;
      case '--size': o.size = Number(v); break;
      case '--storm-users': o.stormUsers = Number(v); break;
      case '--password': o.password = v; break;
      default: throw new Error(`unknown option ${argv[i]}`);
    }
  }
  return o;
}

async function setup(port, o) {
  const users = [USER];
  for (let i = 0; i < o.stormUsers; i++) users.push(`storm-${i}`);
  for (const u of users) await expect(201, port, 'POST', '/api/register', { username: u, password: o.password });
  const login = await expect(200, port, 'POST', '/api/login', { username: USER, password: o.password });
  const token = login.json.token;
  await expect(201, port, 'POST', '/api/room', { id: o.room, participants: [USER] }, token);
  const content = 'x'.repeat(o.size);
  let next = 0;
  const sender = async () => {
    while (next < o.fill) {
      next++;
      await expect(200, port, 'POST', '/api/send', { room: o.room, content }, token);
    }
  };
  await Promise.all(Array.from({ length: FILL_CONCURRENCY }, sender));
  return token;
}

async function lastSeq(port, token, room) {
  const r = await expect(200, port, 'GET', '/api/rooms', undefined, token);
  const found = r.json.find((x) => x.id === room);
  if (!found) throw new Error(`room ${room} not in GET /api/rooms`);
  return found.last_seq;
}

(async () => {
  const [cmd, port, ...rest] = process.argv.slice(2);
  if (cmd === 'setup') console.log(await setup(Number(port), options(rest)));
  else if (cmd === 'last-seq') console.log(await lastSeq(Number(port), rest[0], rest[1]));
  else throw new Error('usage: prepare.js setup PORT [options] | last-seq PORT TOKEN ROOM');
  agent.destroy();
})().catch((e) => { console.error(`prepare: ${e.message}`); process.exit(1); });
