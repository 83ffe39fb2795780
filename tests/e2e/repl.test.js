// Replication end to end (journal/repl.h): two chatd instances on
// loopback, each with its own data directory and ports, sharing a token
// key and a replication secret. Catch-up of a standby from empty after
// 100,000 messages; live delivery to a WebSocket client on the standby;
// the standby killed and restarted mid-stream; the primary SIGKILLed under
// load with ack = replica and the standby promoted (every acked message
// there, in order, once), then the old primary restarted: it is fenced,
// cuts what the new primary never had and converges byte for byte; a
// network cut (a TCP proxy in this test that stops forwarding, as a
// black-holed link does) stops acks under ack = replica until it heals;
// and the same with a real cut: the standby runs in a network namespace
// of its own, joined to the primary by a veth pair whose root end is set
// down and up again (run as root; skipped, with the reason, elsewhere).
'use strict';
const { describe, it, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const { spawnSync } = require('node:child_process');
const os = require('node:os');
const path = require('node:path');
const WebSocket = require('ws');
const { startChatd, children, freePort, sleep, waitFor } = require('./lib/chatd');
const { Api, parseMetrics, restartOn } = require('./lib/api');
const { WsClient } = require('./lib/wsclient');

const shared = fs.mkdtempSync(path.join(os.tmpdir(), 'chatd-repl-'));
const keyFile = path.join(shared, 'jwt.key');
const secretFile = path.join(shared, 'repl.secret');
fs.writeFileSync(keyFile, crypto.randomBytes(32), { mode: 0o600 });
fs.writeFileSync(secretFile, crypto.randomBytes(24).toString('hex'), { mode: 0o600 });

const running = [];
const proxies = [];	// closed here too, so a failed test cannot keep the file alive
after(async () => {
  for (const p of proxies) p.close();
  for (const s of running) await killAll(s).catch(() => {});
  // A sanitizer build (CHATD=.../san/chatd) reports into the log.
  for (const s of running) {
    let text = '';
    try { text = s.log(); } catch { /* no log */ }
    assert.ok(!/AddressSanitizer|runtime error:|LeakSanitizer/.test(text), `sanitizer report in ${s.dir}:\n${text}`);
  }
  for (const s of running) fs.rmSync(s.dir, { recursive: true, force: true });
  fs.rmSync(shared, { recursive: true, force: true });
});

// A node's configuration lines after [server]. host: the replication
// listen address; peerHost: the peer's.
function replConf({ role, listen, peer, ack, timeout = '2s', secret = secretFile,
  host = '127.0.0.1', peerHost = '127.0.0.1' }) {
  return [
    '[journal]', `ack = ${ack}`,
    '[replication]', `role = ${role}`, `listen = ${host}:${listen}`,
    `primary = ${peerHost}:${peer}`, `secret_file = ${secret}`, `ack_timeout = ${timeout}`,
    '[auth]', `key_file = ${keyFile}`,
    '[limits]', 'auth_per_ip_per_minute = 0',
  ];
}

// opts.chatd: more options for startChatd (host, wrap).
async function startNode(opts) {
  const srv = await startChatd({ workers: 2, extra: replConf(opts), ...(opts.chatd || {}) });
  srv.repl = opts;
  running.push(srv);
  return srv;
}

// Kill a chatd and every child of it with SIGKILL, as a crash would.
async function killAll(srv) {
  if (srv.proc.exitCode !== null || srv.proc.signalCode !== null) return;
  let kids = [];
  try { kids = children(srv.pid).map((c) => c.pid); } catch { /* none */ }
  for (const pid of [srv.pid, ...kids]) {
    try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  }
  await srv.exited;
  // Children reparented to init die by SIGKILL too; wait until gone.
  for (const pid of kids) {
    for (let i = 0; i < 100; i++) {
      try { process.kill(pid, 0); } catch { break; }
      await sleep(20);
    }
  }
}

async function restart(srv) {
  const again = await restartOn(srv);
  again.repl = srv.repl;
  again.dir = srv.dir;
  running.push(again);
  return again;
}

// One GET on a fresh connection to any address (Api talks to 127.0.0.1
// only; a standby in a network namespace is reached at its veth address).
function getAt(host, port, urlPath, token) {
  return new Promise((resolve, reject) => {
    const headers = token ? { Authorization: `Bearer ${token}` } : {};
    const req = http.request({ host, port, path: urlPath, headers, agent: false });
    req.setTimeout(10000, () => req.destroy(new Error(`timeout: GET ${host}:${port}${urlPath}`)));
    req.on('error', reject);
    req.on('response', (res) => {
      const chunks = [];
      res.on('data', (d) => chunks.push(d));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json;
        try { json = JSON.parse(text); } catch { json = undefined; }
        resolve({ status: res.statusCode, text, json });
      });
    });
    req.end();
  });
}

async function metrics(port, host = '127.0.0.1') {
  return parseMetrics((await getAt(host, port, '/metrics')).text);
}

const waitUntil = (what, fn, timeout = 20000) => waitFor(fn, what, timeout);

// The whole log of a node: its segment files in order, concatenated.
function logBytes(srv) {
  const dir = path.join(srv.dir, 'var', 'journal');
  const names = fs.readdirSync(dir).filter((n) => /^\d{20}\.log$/.test(n)).sort();
  return Buffer.concat(names.map((n) => fs.readFileSync(path.join(dir, n))));
}

async function converged(primary, standby) {
  await waitUntil('the standby to hold the primary\'s log', async () => {
    const [p, s] = await Promise.all([metrics(primary.port, primary.host), metrics(standby.port, standby.host)]);
    return p.journal_log_end > 0 && p.journal_log_end === s.journal_log_end &&
      s.repl_acked_pos === p.journal_log_end;
  }, 60000);
  const a = logBytes(primary);
  const b = logBytes(standby);
  assert.equal(b.length, a.length, 'same log length');
  assert.ok(a.equals(b), 'same log bytes');
}

// Sends n messages over a few WebSockets, `window` in flight on each, and
// resolves the acks by client id.
async function blast(port, token, room, n, { conns = 4, window = 256, prefix = 'b' } = {}) {
  const acks = new Map();
  let next = 0;
  const one = () => new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`, { headers: { Authorization: `Bearer ${token}` }, perMessageDeflate: false });
    let inflight = 0;
    const pump = () => {
      while (inflight < window && next < n) {
        const i = next++;
        inflight++;
        ws.send(JSON.stringify({ type: 'send', room, content: `${prefix}${i}`, id: `${prefix}${i}` }));
      }
      if (inflight === 0 && next >= n) ws.close();
    };
    ws.on('open', pump);
    ws.on('message', (d) => {
      const f = JSON.parse(d.toString());
      if (f.type === 'ack') {
        acks.set(f.id, f);
        inflight--;
        pump();
      } else if (f.type === 'error') {
        reject(new Error(`send failed: ${d}`));
      }
    });
    ws.on('close', resolve);
    ws.on('error', reject);
  });
  await Promise.all(Array.from({ length: conns }, one));
  return acks;
}

// Senders over REST with client ids, until stop() is called; each message
// is tried once. Resolves {acked: Map id -> ack, tried}.
function load(api, token, room, { concurrency = 8, prefix = 'l' } = {}) {
  const acked = new Map();
  let i = 0;
  let stopped = false;
  const loop = async () => {
    while (!stopped) {
      const id = `${prefix}${i++}`;
      let r = null;
      try { r = await api.send(token, room, id, id, { timeout: 15000 }); } catch { r = null; }
      if (r && r.status === 200) acked.set(id, r.json);
      else await sleep(20);
    }
  };
  const done = Promise.all(Array.from({ length: concurrency }, loop));
  return { acked, stop: async () => { stopped = true; await done; return { acked, tried: i }; } };
}

async function userAndRoom(api) {
  const u = await api.newUser('r');
  const room = await api.newRoom(u.token, []);
  return { ...u, room };
}

// A TCP proxy that can stop forwarding in both directions, as a cut link
// does: bytes wait in the kernel buffers and connections stay open until
// someone gives up; heal() lets everything flow again.
async function makeProxy(targetPort) {
  const port = await freePort();
  const pairs = new Set();
  let cut = false;
  const wire = (c) => {
    const u = net.connect(targetPort, '127.0.0.1');
    const p = { c, u };
    pairs.add(p);
    const end = () => { c.destroy(); u.destroy(); pairs.delete(p); };
    c.on('error', end); u.on('error', end); c.on('close', end); u.on('close', end);
    c.pipe(u); u.pipe(c);
    if (cut) { c.pause(); u.pause(); }
  };
  const server = net.createServer(wire);
  await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
  const proxy = {
    port,
    cut() {
      cut = true;
      for (const { c, u } of pairs) { c.unpipe(u); u.unpipe(c); c.pause(); u.pause(); }
    },
    heal() {
      cut = false;
      for (const { c, u } of pairs) { c.pipe(u); u.pipe(c); c.resume(); u.resume(); }
    },
    close() { for (const { c, u } of pairs) { c.destroy(); u.destroy(); } server.close(); },
  };
  proxies.push(proxy);
  return proxy;
}

// Runs a command; returns {ok, why} (why: its stderr, or the spawn error).
function run(cmd) {
  const r = spawnSync(cmd[0], cmd.slice(1), { encoding: 'utf8', timeout: 10000 });
  const ok = r.status === 0 && !r.error;
  return { ok, why: ok ? '' : `${cmd.join(' ')}: ${(r.error && r.error.message) || r.stderr.trim() || `exit ${r.status}`}` };
}

function must(cmd) {
  const r = run(cmd);
  if (!r.ok) throw new Error(r.why);
}

// Network namespaces made here, removed by netns.destroy() in the test's
// finally, or at exit if the test process leaves before it (a process
// killed by a signal leaves them behind: `ip netns list`, chatd-e2e-*).
const namespaces = new Set();
process.on('exit', () => { for (const ns of namespaces) ns.destroy(); });

// A 10.231.X.Y/30 that no interface here uses: .Y+1 the root end, .Y+2
// the namespace end.
function freeSubnet() {
  const used = spawnSync('ip', ['-4', '-o', 'addr', 'show'], { encoding: 'utf8' }).stdout || '';
  for (let i = 0; i < 100; i++) {
    const x = crypto.randomInt(0, 256);
    const y = crypto.randomInt(0, 64) * 4;
    if (!used.includes(`10.231.${x}.`)) return { root: `10.231.${x}.${y + 1}`, inner: `10.231.${x}.${y + 2}` };
  }
  throw new Error('no free 10.231.X.0/30 found');
}

// A network namespace chatd-e2e-<random> joined to the root namespace by
// a veth pair. cut() sets the root end down (no carrier on either side:
// every packet between them is dropped, the sockets stay open), heal()
// sets it up again (the connected routes come back with it). Returns
// {skip: reason} when this machine cannot make one (not root, no
// CAP_SYS_ADMIN, no veth): that is the environment, not chatd.
function makeNetns() {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    return { skip: 'needs root to make a network namespace and a veth pair' };
  }
  const tag = crypto.randomBytes(4).toString('hex');
  const name = `chatd-e2e-${tag}`;
  const rootIf = `cr${tag}`; // interface names: 15 bytes at most
  const innerIf = `cn${tag}`;
  const add = run(['ip', 'netns', 'add', name]);
  if (!add.ok) return { skip: `ip netns add failed (${add.why})` };
  const ns = {
    name, rootIf, innerIf,
    wrap: ['ip', 'netns', 'exec', name],
    cut() { must(['ip', 'link', 'set', rootIf, 'down']); },
    heal() { must(['ip', 'link', 'set', rootIf, 'up']); },
    // Idempotent; run it after the processes inside have been killed.
    destroy() {
      run(['ip', 'link', 'del', rootIf]);
      run(['ip', 'netns', 'del', name]);
      namespaces.delete(ns);
    },
  };
  namespaces.add(ns);
  const veth = run(['ip', 'link', 'add', rootIf, 'type', 'veth', 'peer', 'name', innerIf, 'netns', name]);
  if (!veth.ok) {
    ns.destroy();
    return { skip: `cannot make a veth pair (${veth.why})` };
  }
  try {
    const { root, inner } = freeSubnet();
    ns.rootAddr = root;
    ns.innerAddr = inner;
    must(['ip', 'addr', 'add', `${root}/30`, 'dev', rootIf]);
    must(['ip', 'link', 'set', rootIf, 'up']);
    must([...ns.wrap, 'ip', 'link', 'set', 'lo', 'up']);
    must([...ns.wrap, 'ip', 'addr', 'add', `${inner}/30`, 'dev', innerIf]);
    must([...ns.wrap, 'ip', 'link', 'set', innerIf, 'up']);
  } catch (e) {
    ns.destroy();
    throw e;
  }
  return ns;
}

// The network namespace a process is in, as the kernel names it.
const netnsOf = (pid) => fs.readlinkSync(`/proc/${pid}/ns/net`);

async function pairPorts() {
  return { a: await freePort(), b: await freePort() };
}

describe('replication', { timeout: 600000 }, () => {
  it('a standby from empty catches up with 100,000 messages, byte for byte', async () => {
    const rp = await pairPorts();
    const primary = await startNode({ role: 'primary', listen: rp.a, peer: rp.b, ack: 'write' });
    const api = new Api(primary.port);
    const { token, room } = await userAndRoom(api);
    const t0 = Date.now();
    const acks = await blast(primary.port, token, room, 100000);
    assert.equal(acks.size, 100000);
    const sendMs = Date.now() - t0;
    const t1 = Date.now();
    const standby = await startNode({ role: 'standby', listen: rp.b, peer: rp.a, ack: 'fsync' });
    await converged(primary, standby);
    const catchUpMs = Date.now() - t1;
    const rooms = await new Api(standby.port).rooms(token);
    assert.equal(rooms.json.find((r) => r.id === room).last_seq, 100000);
    const page = await new Api(standby.port).history(token, room, 'limit=3');
    const bySeq = new Map([...acks.values()].map((a) => [a.seq, a]));
    assert.deepEqual(page.json.map((m) => m.seq), [100000, 99999, 99998], 'history served by the standby');
    for (const m of page.json) assert.equal(m.content, bySeq.get(m.seq).id);
    const m = await metrics(standby.port);
    assert.equal(m.repl_role, 1);
    assert.equal(m.repl_connected, 1);
    console.log(`# 100,000 sends in ${sendMs} ms; standby caught up (${logBytes(primary).length} bytes) in ${catchUpMs} ms`);
    await killAll(standby);
    await killAll(primary);
  });

  it('streams live: a WebSocket client on the standby gets each message; the standby refuses writes', async () => {
    const rp = await pairPorts();
    const primary = await startNode({ role: 'primary', listen: rp.a, peer: rp.b, ack: 'replica' });
    const standby = await startNode({ role: 'standby', listen: rp.b, peer: rp.a, ack: 'fsync' });
    const api = new Api(primary.port);
    const { token, room } = await userAndRoom(api);
    await waitUntil('the room on the standby', async () =>
      (await new Api(standby.port).rooms(token)).json.some((r) => r.id === room));
    const ws = await WsClient.connect(standby.port, { token, name: 'standby-ws' });
    assert.equal((await ws.request({ type: 'join', room })).type, 'joined');
    const acks = [];
    for (let i = 0; i < 50; i++) {
      const r = await api.send(token, room, `live${i}`, `live${i}`);
      assert.equal(r.status, 200, r.text);
      acks.push(r.json);
    }
    for (let i = 0; i < 50; i++) {
      const f = await ws.next((x) => x.type === 'msg', { timeout: 5000 });
      assert.equal(f.content, `live${i}`);
      assert.equal(f.seq, acks[i].seq);
      assert.equal(f.ts, acks[i].ts);
    }
    // Writes on the standby: refused, naming the primary.
    const r = await new Api(standby.port).send(token, room, 'nope');
    assert.equal(r.status, 503);
    assert.equal(r.json.error.code, 'read_only');
    assert.match(r.json.error.message, new RegExp(`127\\.0\\.0\\.1:${rp.a}`));
    const e = await ws.request({ type: 'send', room, content: 'nope' });
    assert.equal(e.type, 'error');
    assert.equal(e.code, 'read_only');
    ws.ws.close();
    // A direct message sent on the primary reaches the other user's
    // connection on the standby (it is joined to the new dm: room there).
    const v = await api.newUser('dmv');
    await waitUntil('the user on the standby', async () =>
      (await new Api(standby.port).rooms(v.token)).status === 200);
    const wv = await WsClient.connect(standby.port, { token: v.token, name: 'standby-dm' });
    await sleep(200);
    const wu = await WsClient.connect(primary.port, { token, name: 'primary-dm' });
    const dm = await wu.request({ type: 'dm', to: v.name, content: 'psst', id: 'dm1' });
    assert.equal(dm.type, 'ack', JSON.stringify(dm));
    const got = await wv.next((x) => x.type === 'msg', { timeout: 5000 });
    assert.equal(got.room, dm.room);
    assert.equal(got.content, 'psst');
    assert.equal(got.seq, dm.seq);
    wu.ws.close();
    wv.ws.close();
    const m = await metrics(primary.port);
    assert.equal(m.repl_role, 0);
    assert.equal(m.repl_connected, 1);
    assert.equal(m.repl_epoch, 1);
    assert.equal(m.repl_acked_pos, m.journal_log_end);
    await killAll(standby);
    await killAll(primary);
  });

  it('a standby killed mid-stream and restarted resumes and converges', async () => {
    const rp = await pairPorts();
    const primary = await startNode({ role: 'primary', listen: rp.a, peer: rp.b, ack: 'fsync' });
    let standby = await startNode({ role: 'standby', listen: rp.b, peer: rp.a, ack: 'fsync' });
    const api = new Api(primary.port);
    const { token, room } = await userAndRoom(api);
    const l = load(api, token, room, { concurrency: 16 });
    await sleep(1000);
    await killAll(standby);
    await sleep(1000);
    standby = await restart(standby);
    await sleep(1000);
    const { acked } = await l.stop();
    assert.ok(acked.size > 100, `sends went on (${acked.size})`);
    await converged(primary, standby);
    const hist = await new Api(standby.port).historyAll(token, room);
    assert.equal(hist.length, acked.size);
    const m = await metrics(standby.port);
    assert.ok(m.repl_reconnects_total >= 1);
    await killAll(standby);
    await killAll(primary);
  });

  it('primary SIGKILLed under load with ack = replica: promotion keeps every acked message; the old primary is fenced and rejoins', async () => {
    const rp = await pairPorts();
    const proxy = await makeProxy(rp.a);
    let primary = await startNode({ role: 'primary', listen: rp.a, peer: rp.b, ack: 'replica' });
    // The standby reaches the primary through the proxy.
    const standby = await startNode({ role: 'standby', listen: rp.b, peer: proxy.port, ack: 'fsync' });
    const api = new Api(primary.port);
    const { token, room } = await userAndRoom(api);
    await waitUntil('the standby attached', async () => (await metrics(primary.port)).repl_connected === 1);
    const l = load(api, token, room, { concurrency: 16 });
    await sleep(1500);
    // Cut the link while sends are in flight: what the primary stores from
    // now on never reaches the standby and is never acked.
    proxy.cut();
    const lost = Array.from({ length: 20 }, (_, i) =>
      api.send(token, room, `cut${i}`, `cut${i}`, { timeout: 15000 }).catch(() => null));
    await sleep(300);
    // Wait until the primary holds records the standby does not (they
    // are stored before they wait for the standby's confirmation).
    await waitUntil('records on the primary beyond the standby', async () => {
      const [p, s] = await Promise.all([metrics(primary.port), metrics(standby.port)]);
      return p.journal_log_end > s.journal_log_end;
    }, 10000);
    await killAll(primary);
    for (const r of await Promise.all(lost)) assert.ok(!r || r.status !== 200, 'nothing acked across the cut');
    const { acked, tried } = await l.stop();
    proxy.close();
    assert.ok(acked.size > 100, `acked before the kill: ${acked.size} of ${tried}`);

    const t0 = Date.now();
    process.kill(standby.pid, 'SIGUSR2');
    const sapi = new Api(standby.port);
    await waitUntil('a write accepted by the promoted standby', async () =>
      (await sapi.send(token, room, 'after-promotion', 'after-promotion')).status === 200, 5000);
    const promoteMs = Date.now() - t0;
    assert.ok(promoteMs < 1000, `promotion took ${promoteMs} ms`);
    const hist = (await sapi.historyAll(token, room)).sort((a, b) => a.seq - b.seq);
    hist.forEach((m, i) => assert.equal(m.seq, i + 1, 'no gap, no repeat'));
    const byContent = new Map(hist.map((m) => [m.content, m]));
    assert.equal(byContent.size, hist.length, 'each message once');
    for (const [id, ack] of acked) {
      const m = byContent.get(id);
      assert.ok(m, `acked ${id} is on the new primary`);
      assert.equal(m.seq, ack.seq);
      assert.equal(m.ts, ack.ts);
    }
    const ms = await metrics(standby.port);
    assert.equal(ms.repl_role, 0);
    assert.equal(ms.repl_epoch, 2);

    // The old primary comes back with its old configuration (role =
    // primary): it asks its peer, finds epoch 2, cuts and follows.
    const oldLog = logBytes(primary);
    primary = await restart(primary);
    await waitUntil('the old primary to rejoin as standby', async () => {
      const m = await metrics(primary.port);
      return m.repl_role === 1 && m.repl_epoch === 2 && m.repl_connected === 1;
    }).catch((e) => { throw new Error(`${e.message}\n${primary.log()}\n${standby.log()}`); });
    await converged(standby, primary);
    const newLog = logBytes(standby);
    let common = 0;
    while (common < oldLog.length && common < newLog.length && oldLog[common] === newLog[common]) common++;
    assert.ok(oldLog.length > common, 'the old primary had records the new one never got (cut by fencing)');
    const w = await new Api(primary.port).send(token, room, 'to-old');
    assert.equal(w.json.error.code, 'read_only');
    assert.ok(/fencing/.test(primary.log()), 'the fencing is logged');
    await killAll(primary);
    await killAll(standby);
  });

  it('ack = replica with no standby fails after ack_timeout; the retry is acked once one attaches; a primary restart is resumed', async () => {
    const rp = await pairPorts();
    let primary = await startNode({ role: 'primary', listen: rp.a, peer: rp.b, ack: 'replica', timeout: '500ms' });
    const api = new Api(primary.port);
    const { token, room } = await userAndRoom(api).catch((e) => e);
    // Registering is a write too: it waits for a standby like a send.
    assert.ok(token === undefined, 'no account can be made without a standby');
    const standby = await startNode({ role: 'standby', listen: rp.b, peer: rp.a, ack: 'fsync' });
    await waitUntil('the standby attached', async () => (await metrics(primary.port)).repl_connected === 1);
    const u = await userAndRoom(api);
    await killAll(standby);
    const t0 = Date.now();
    const r = await api.send(u.token, u.room, 'alone', 'alone');
    assert.equal(r.status, 503, r.text);
    assert.equal(r.json.error.code, 'replica_unavailable');
    assert.ok(Date.now() - t0 >= 450, 'waited for ack_timeout');
    const again = await restart(standby);
    await waitUntil('the retry to be acked', async () =>
      (await api.send(u.token, u.room, 'alone', 'alone')).status === 200);
    // The primary restarts (SIGTERM): the standby reconnects and resumes.
    await primary.stop();
    primary = await restart(primary);
    const api2 = new Api(primary.port);
    await waitUntil('acks after the primary restart', async () =>
      (await api2.send(u.token, u.room, 'after-restart', 'after-restart')).status === 200);
    await converged(primary, again);
    const hist = await new Api(again.port).historyAll(u.token, u.room);
    assert.deepEqual(hist.map((m) => m.content).reverse(), ['alone', 'after-restart']);
    await killAll(again);
    await killAll(primary);
  });

  it('a running old primary cut off during a promotion steps down once it can reach the new one', async () => {
    const rp = await pairPorts();
    const proxy = await makeProxy(rp.a);
    const primary = await startNode({ role: 'primary', listen: rp.a, peer: rp.b, ack: 'replica', timeout: '1s' });
    const standby = await startNode({ role: 'standby', listen: rp.b, peer: proxy.port, ack: 'fsync' });
    const api = new Api(primary.port);
    const { token, room } = await userAndRoom(api);
    await waitUntil('the standby attached', async () => (await metrics(primary.port)).repl_connected === 1);
    assert.equal((await api.send(token, room, 'one', 'one')).status, 200);
    proxy.cut();
    process.kill(standby.pid, 'SIGUSR2');
    await waitUntil('the promotion', async () => (await metrics(standby.port)).repl_epoch === 2);
    // The old primary still runs: what it takes now is never acked.
    const r = await api.send(token, room, 'split', 'split');
    assert.equal(r.status, 503);
    assert.ok(['replica_unavailable', 'read_only'].includes(r.json.error.code), r.text);
    await waitUntil('the old primary to step down and follow', async () => {
      const m = await metrics(primary.port);
      return m.repl_role === 1 && m.repl_epoch === 2 && m.repl_connected === 1;
    });
    const w = await api.send(token, room, 'late', 'late');
    assert.equal(w.json.error.code, 'read_only');
    assert.equal((await new Api(standby.port).send(token, room, 'two', 'two')).status, 200);
    await converged(standby, primary);
    const hist = await new Api(primary.port).historyAll(token, room);
    assert.deepEqual(hist.map((m) => m.content).reverse(), ['one', 'two']);
    proxy.close();
    await killAll(standby);
    await killAll(primary);
  });

  it('a standby that does not know the secret is refused', async () => {
    const rp = await pairPorts();
    const wrong = path.join(shared, 'wrong.secret');
    fs.writeFileSync(wrong, 'not-the-secret', { mode: 0o600 });
    const primary = await startNode({ role: 'primary', listen: rp.a, peer: rp.b, ack: 'write' });
    const standby = await startNode({ role: 'standby', listen: rp.b, peer: rp.a, ack: 'fsync', secret: wrong });
    await new Api(primary.port).newUser('s');
    await waitUntil('the refusal', async () => /wrong shared secret/.test(primary.log()));
    const [p, s] = await Promise.all([metrics(primary.port), metrics(standby.port)]);
    assert.equal(p.repl_connected, 0);
    assert.equal(s.repl_connected, 0);
    assert.equal(s.journal_log_end, 0, 'nothing streamed to it');
    await killAll(standby);
    await killAll(primary);
  });

  it('a network cut stops acks under ack = replica; they resume when the link heals', async () => {
    const rp = await pairPorts();
    const proxy = await makeProxy(rp.a);
    const primary = await startNode({ role: 'primary', listen: rp.a, peer: rp.b, ack: 'replica', timeout: '1500ms' });
    const standby = await startNode({ role: 'standby', listen: rp.b, peer: proxy.port, ack: 'fsync' });
    const api = new Api(primary.port);
    const { token, room } = await userAndRoom(api);
    await waitUntil('the standby attached', async () => (await metrics(primary.port)).repl_connected === 1);
    assert.equal((await api.send(token, room, 'before', 'before')).status, 200);
    proxy.cut();
    const t0 = Date.now();
    const r = await api.send(token, room, 'during', 'during');
    const waited = Date.now() - t0;
    assert.equal(r.status, 503, r.text);
    assert.equal(r.json.error.code, 'replica_unavailable');
    assert.ok(waited >= 1400, `failed only after ack_timeout (${waited} ms)`);
    proxy.heal();
    // A retry with the same id is answered once the standby has it.
    await waitUntil('acks to resume', async () =>
      (await api.send(token, room, 'during', 'during')).status === 200);
    assert.equal((await api.send(token, room, 'after', 'after')).status, 200);
    const hist = await new Api(standby.port).historyAll(token, room);
    assert.deepEqual(hist.map((m) => m.content).reverse(), ['before', 'during', 'after']);
    const m = await metrics(primary.port);
    assert.ok(m.repl_ack_timeouts_total >= 1);
    proxy.close();
    await killAll(standby);
    await killAll(primary);
  });

  it('a real cut (the standby in a network namespace, its veth link set down) stops acks under ack = replica; they resume when the link is up again', async (t) => {
    const ns = makeNetns();
    if (ns.skip) {
      t.skip(ns.skip);
      return;
    }
    let primary = null;
    let standby = null;
    try {
      const rp = await pairPorts();
      // The primary: clients on 127.0.0.1, replication on the root end of
      // the veth. The standby: everything on the namespace end, so the
      // only way between them is the link this test cuts.
      primary = await startNode({ role: 'primary', listen: rp.a, peer: rp.b, ack: 'replica', timeout: '1500ms',
        host: ns.rootAddr, peerHost: ns.innerAddr });
      standby = await startNode({ role: 'standby', listen: rp.b, peer: rp.a, ack: 'fsync',
        host: ns.innerAddr, peerHost: ns.rootAddr, chatd: { host: ns.innerAddr, wrap: ns.wrap } });
      assert.notEqual(netnsOf(standby.pid), netnsOf(process.pid), 'the standby runs in its own network namespace');
      for (const w of standby.workers()) assert.equal(netnsOf(w.pid), netnsOf(standby.pid), 'and so do its workers');
      assert.equal(netnsOf(primary.pid), netnsOf(process.pid), 'the primary runs in the root one');
      const api = new Api(primary.port);
      const { token, room } = await userAndRoom(api);
      await waitUntil('the standby attached over the veth', async () => (await metrics(primary.port)).repl_connected === 1);
      const before = await api.send(token, room, 'before', 'before');
      assert.equal(before.status, 200, before.text);

      ns.cut();
      // Attached but silent: the send is stored, waits for the standby's
      // confirmation and fails at ack_timeout, never acked.
      let t0 = Date.now();
      let r = await api.send(token, room, 'during', 'during');
      let waited = Date.now() - t0;
      assert.equal(r.status, 503, r.text);
      assert.equal(r.json.error.code, 'replica_unavailable');
      assert.ok(waited >= 1400, `failed only after ack_timeout (${waited} ms)`);
      // Once the primary has given the silent standby up, sends still wait
      // for one and fail the same way.
      await waitUntil('the primary to drop the silent standby', async () => (await metrics(primary.port)).repl_connected === 0, 15000);
      t0 = Date.now();
      r = await api.send(token, room, 'during2', 'during2');
      waited = Date.now() - t0;
      assert.equal(r.status, 503, r.text);
      assert.equal(r.json.error.code, 'replica_unavailable');
      assert.ok(waited >= 1400, `failed only after ack_timeout (${waited} ms)`);
      const cut = await metrics(primary.port);
      assert.ok(cut.repl_ack_timeouts_total >= 2, `ack timeouts counted (${cut.repl_ack_timeouts_total})`);
      assert.ok(cut.repl_acked_pos < cut.journal_log_end, 'the primary holds records the standby never confirmed');

      ns.heal();
      // Retries with the same ids are acked once the standby is back and
      // has them, with the seqs they were stored under the first time.
      const during = await waitUntil('acks to resume', async () => {
        const x = await api.send(token, room, 'during', 'during');
        return x.status === 200 ? x : null;
      }, 30000);
      const during2 = await api.send(token, room, 'during2', 'during2');
      assert.equal(during2.status, 200, during2.text);
      const after = await api.send(token, room, 'after', 'after');
      assert.equal(after.status, 200, after.text);
      assert.deepEqual([during.json.seq, during2.json.seq, after.json.seq],
        [before.json.seq + 1, before.json.seq + 2, before.json.seq + 3], 'each stored once, in order');

      // The standby, read through the veth: same log end, same bytes,
      // every message once.
      await converged(primary, standby);
      const rooms = await getAt(standby.host, standby.port, '/api/rooms', token);
      assert.equal(rooms.status, 200, rooms.text);
      assert.equal(rooms.json.find((x) => x.id === room).last_seq, after.json.seq);
      const hist = await getAt(standby.host, standby.port, `/api/history/${room}?limit=100`, token);
      assert.equal(hist.status, 200, hist.text);
      assert.deepEqual(hist.json.map((m) => m.content).reverse(), ['before', 'during', 'during2', 'after']);
      assert.deepEqual(hist.json.map((m) => m.seq).reverse(),
        [before.json.seq, during.json.seq, during2.json.seq, after.json.seq]);
      const m = await metrics(standby.port, standby.host);
      assert.equal(m.repl_role, 1);
      assert.equal(m.repl_connected, 1);
      assert.ok(m.repl_reconnects_total >= 1, 'the standby reconnected after the cut');
    } finally {
      // The processes first, then the link and the namespace.
      if (standby) await killAll(standby).catch(() => {});
      if (primary) await killAll(primary).catch(() => {});
      ns.destroy();
    }
  });
});
