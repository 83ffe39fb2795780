// Reloads while clients chat, and what chatd tells systemd.
//
// systemd: chatd is started with NOTIFY_SOCKET pointing at a datagram
// socket this test reads (through a small Python listener, since Node has
// no Unix datagram sockets), and WATCHDOG_USEC set: READY=1 comes only once
// every worker accepts, STATUS= says what it does, a reload is RELOADING=1
// with MONOTONIC_USEC then READY=1, the watchdog is pinged, and a stop says
// STOPPING=1.
//
// Load (the test): 1,000 WebSocket clients in 100 rooms, one
// sender per room, while the configuration is reloaded 10 times, workers
// 2 -> 4 -> 1 -> 3 -> 2 ..., and the binary is upgraded once (a new file
// installed where chatd was started from, then chatadm upgrade: every
// child then runs it). The connections of retired workers move to the
// others (SCM_RIGHTS through the master). Checked: no client is disconnected, none misses or
// repeats a message, each sees its room's messages in seq order from 1,
// every acked message arrives, and hundreds of connections did move.
//
// HTTP: keep-alive connections of retired workers, idle or halfway through
// a request head, move to the workers that stay (SCM_RIGHTS through the
// master) and are served there without noticing.
'use strict';
const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const net = require('node:net');
const { spawn, spawnSync } = require('node:child_process');
const { startChatd, sleep, children, waitFor: pollFor } = require('./lib/chatd');
const { Api } = require('./lib/api');
const { WsClient } = require('./lib/wsclient');

const BUILD = process.env.BUILD_DIR || path.resolve(__dirname, '../../build');
const CHATADM = path.join(BUILD, 'chatadm');

const LISTENER = `
import socket, sys, os
path = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
print("listening", flush=True)
while True:
    data = s.recv(65536)
    print(data.decode().replace("\\n", "|"), flush=True)
`;

function notifyListener(sockPath) {
  const proc = spawn('python3', ['-c', LISTENER, sockPath], { stdio: ['ignore', 'pipe', 'inherit'] });
  const messages = [];
  let buf = '';
  let ready;
  const listening = new Promise((r) => { ready = r; });
  proc.stdout.on('data', (d) => {
    buf += d.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (line === 'listening') ready();
      else messages.push({ at: Date.now(), fields: Object.fromEntries(line.split('|').filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)])) });
    }
  });
  return { proc, messages, listening };
}

function adm(srv, ...args) {
  const r = spawnSync(CHATADM, ['-s', path.join(srv.dir, 'var', 'chatd.sock'), ...args],
    { encoding: 'utf8', timeout: 60000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function setWorkers(srv, n) {
  const text = fs.readFileSync(srv.confPath, 'utf8').replace(/^workers = .*$/m, `workers = ${n}`);
  fs.writeFileSync(srv.confPath, text);
}

const waitFor = (pred, what, ms = 10000) => pollFor(pred, what, ms, 20);

test('systemd: READY once workers accept, RELOADING/READY, WATCHDOG, STOPPING', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'chatd-notify-'));
  const sockPath = path.join(dir, 'notify.sock');
  const l = notifyListener(sockPath);
  await l.listening;
  process.env.NOTIFY_SOCKET = sockPath;
  process.env.WATCHDOG_USEC = '400000';
  let srv;
  try {
    srv = await startChatd({ workers: 3 });
  } finally {
    delete process.env.NOTIFY_SOCKET;
    delete process.env.WATCHDOG_USEC;
  }
  try {
    await waitFor(() => l.messages.some((m) => m.fields.READY === '1'), 'READY=1');
    const readyAt = l.messages.findIndex((m) => m.fields.READY === '1');
    const ready = l.messages[readyAt];
    assert.match(ready.fields.STATUS, /serving with 3 workers/);
    // before READY, a STATUS saying it is starting and no READY
    assert.ok(l.messages.slice(0, readyAt).some((m) => /starting/.test(m.fields.STATUS || '')));
    // READY=1 came after every worker said it was ready (the master logs it
    // then; the log line may reach the file a moment after the datagram)
    await waitFor(() => /chatd ready: 3 workers accepting/.test(srv.log()), 'the ready log line');
    const logLines = srv.log().split('\n');
    const readyLine = logLines.findIndex((x) => /chatd ready/.test(x));
    assert.ok(logLines.slice(0, readyLine).filter((x) => /worker \d started/.test(x)).length === 3);

    // the watchdog is pinged at half the interval
    await sleep(700);
    assert.ok(l.messages.filter((m) => m.fields.WATCHDOG === '1').length >= 2, 'watchdog pings');

    // a reload: RELOADING=1 with MONOTONIC_USEC, then READY=1 again
    const n0 = l.messages.length;
    setWorkers(srv, 2);
    const r = adm(srv, 'reload');
    assert.equal(r.code, 0, r.err);
    await waitFor(() => l.messages.slice(n0).some((m) => m.fields.READY === '1'), 'READY after reload');
    const after = l.messages.slice(n0);
    const reloading = after.findIndex((m) => m.fields.RELOADING === '1');
    assert.ok(reloading >= 0, JSON.stringify(after));
    assert.match(after[reloading].fields.MONOTONIC_USEC, /^\d+$/);
    const usec = Number(after[reloading].fields.MONOTONIC_USEC);
    const nowUsec = Number(process.hrtime.bigint() / 1000n);
    assert.ok(Math.abs(nowUsec - usec) < 60e6, 'MONOTONIC_USEC is CLOCK_MONOTONIC');
    assert.ok(after.findIndex((m) => m.fields.READY === '1') > reloading);

    const n1 = l.messages.length;
    await srv.stop();
    await waitFor(() => l.messages.slice(n1).some((m) => m.fields.STOPPING === '1'), 'STOPPING=1');
  } finally {
    l.proc.kill();
    await srv.cleanup();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

// One chatting client that survives 1001 by reconnecting with since.
class Chatter {
  constructor(port, user, room) {
    this.port = port;
    this.user = user;
    this.room = room;
    this.seqs = []; // every msg seq received, across reconnects
    this.closes = [];
    this.lastSeq = 0;
    this.stopped = false;
  }

  async connect() {
    const c = await WsClient.connect(this.port, { token: this.user.token });
    this.c = c;
    const since = this.lastSeq;
    c.ws.on('message', (data) => {
      let f;
      try { f = JSON.parse(data.toString()); } catch { return; }
      if (f.type === 'msg' && f.room === this.room) {
        this.seqs.push(f.seq);
        if (f.seq > this.lastSeq) this.lastSeq = f.seq;
      }
    });
    const joined = await c.request({ type: 'join', room: this.room, since }, { timeout: 10000 });
    assert.equal(joined.type, 'joined', JSON.stringify(joined));
    c.closed.then((info) => {
      if (this.stopped) return;
      this.closes.push(info.code);
      this.reconnecting = this.connect().catch((e) => { this.error = e; });
    });
  }

  async send(text) {
    for (let attempt = 0; attempt < 20; attempt++) {
      const c = this.c;
      if (!c.closeInfo) {
        try {
          const ack = await c.request({ type: 'send', room: this.room, content: text, id: text }, { timeout: 10000 });
          if (ack.type === 'ack') return ack;
        } catch (e) { /* closed under us: retry on the new connection */ }
      }
      await sleep(50);
    }
    throw new Error(`${this.user.name}: could not send ${text}`);
  }
}

// Registers and logs in n users, `batch` at a time.
async function manyUsers(api, n, batch = 50) {
  const users = [];
  while (users.length < n) {
    const k = Math.min(batch, n - users.length);
    users.push(...await Promise.all(Array.from({ length: k }, () => api.newUser('rl'))));
  }
  return users;
}

test('1,000 WebSocket clients chat through 10 reloads (workers 2 -> 4 -> 1 -> 3 ...) and an upgrade: no disconnect, no loss', async () => {
  // chatd runs from a copy, so the test can install a "new" binary there
  const binDir = fs.mkdtempSync(path.join(os.tmpdir(), 'chatd-bin-'));
  const binary = path.join(binDir, 'chatd');
  fs.copyFileSync(process.env.CHATD || path.join(BUILD, 'chatd'), binary);
  fs.chmodSync(binary, 0o755);
  const srv = await startChatd({
    binary,
    workers: 2,
    // cheap hashes: a thousand registrations are not what is tested
    extra: ['[auth]', 'hash_method = bcrypt', 'hash_cost = 4', '[limits]', 'auth_per_ip_per_minute = 0'],
  });
  const api = new Api(srv.port, { maxSockets: 50 });
  const N_ROOMS = 100;
  const PER_ROOM = 10;
  try {
    const owner = await api.newUser('rl');
    const users = await manyUsers(api, N_ROOMS * PER_ROOM);
    const rooms = [];
    for (let r = 0; r < N_ROOMS; r++) {
      const members = users.slice(r * PER_ROOM, (r + 1) * PER_ROOM).map((u) => u.name);
      rooms.push(await api.newRoom(owner.token, members));
    }
    const chatters = users.map((u, i) => new Chatter(srv.port, u, rooms[Math.floor(i / PER_ROOM)]));
    for (let i = 0; i < chatters.length; i += 100) {
      await Promise.all(chatters.slice(i, i + 100).map((c) => c.connect()));
    }

    const acks = new Map(); // room -> acked seqs
    for (const r of rooms) acks.set(r, []);
    let sending = true;
    let sent = 0;
    const senders = chatters.filter((_, i) => i % PER_ROOM === 0).map(async (ch) => {
      let k = 0;
      while (sending) {
        const ack = await ch.send(`${ch.user.name}-${k++}`);
        acks.get(ch.room).push(ack.seq);
        sent++;
        await sleep(100);
      }
    });

    const steps = [4, 1, 3, 2, 4, 1, 3, 2, 4, 3];
    for (const [k, n] of steps.entries()) {
      await sleep(400);
      if (k === 5) {
        // install a new binary (a new file, as make install does) and upgrade
        fs.copyFileSync(binary, `${binary}.new`);
        fs.renameSync(`${binary}.new`, binary);
        const u = adm(srv, '--json', 'upgrade');
        assert.equal(u.code, 0, u.err);
        const ino = fs.statSync(binary).ino;
        for (const c of [...srv.workers(), ...children(srv.pid).filter((x) => /journal/.test(x.args))]) {
          assert.equal(fs.statSync(`/proc/${c.pid}/exe`).ino, ino, `${c.args} runs the new binary`);
        }
        assert.match(fs.readlinkSync(`/proc/${srv.pid}/exe`), /\(deleted\)$/, 'the master keeps the old one');
      }
      setWorkers(srv, n);
      const r = adm(srv, '--json', 'reload');
      assert.equal(r.code, 0, r.err);
      assert.equal(JSON.parse(r.out).workers, n);
      assert.equal(srv.workers().length, n);
    }
    await sleep(500);
    sending = false;
    await Promise.all(senders);
    assert.ok(sent > 500, `only ${sent} messages sent`);

    // every client catches up with its room's last acked seq
    for (const ch of chatters) {
      const last = Math.max(...acks.get(ch.room));
      await waitFor(() => ch.lastSeq >= last, `${ch.user.name} to reach seq ${last}`, 20000);
    }
    const st = JSON.parse(adm(srv, '--json', 'stats').out).sections.clients;
    const dropped = chatters.filter((c) => c.closes.length).length;
    console.log(`reload test: ${sent} messages, ${st.conns_handed_over} connections moved, ` +
      `${dropped} of ${chatters.length} clients disconnected`);
    assert.ok(st.conns_adopted >= 500, `only ${st.conns_adopted} connections moved`);
    for (const ch of chatters) {
      assert.equal(ch.error, undefined, String(ch.error));
      assert.deepEqual(ch.closes, [], `${ch.user.name} was disconnected`);
      const seqs = ch.seqs;
      assert.equal(seqs[0], 1, `${ch.user.name}: first seq ${seqs[0]}`);
      for (let i = 1; i < seqs.length; i++) {
        assert.equal(seqs[i], seqs[i - 1] + 1, `${ch.user.name}: seq ${seqs[i]} after ${seqs[i - 1]}`);
      }
      const want = acks.get(ch.room);
      assert.ok(seqs.length >= want.length && seqs[seqs.length - 1] >= Math.max(...want),
        `${ch.user.name}: ${seqs.length} messages, ${want.length} acked`);
    }
    for (const ch of chatters) ch.stopped = true;
    await Promise.all(chatters.map((ch) => ch.c.close()));
  } finally {
    api.close();
    await srv.cleanup();
    fs.rmSync(binDir, { recursive: true, force: true });
  }
});

// A keep-alive connection as a client holds it: one socket, requests
// written one at a time, each response read whole (Content-Length).
class KeepAlive {
  constructor(port) {
    this.sock = net.connect(port, '127.0.0.1');
    this.buf = '';
    this.closed = false;
    this.waiter = null;
    this.sock.on('data', (d) => { this.buf += d.toString('latin1'); this.check(); });
    this.sock.on('close', () => { this.closed = true; this.check(); });
    this.sock.on('error', () => {});
  }

  check() {
    if (!this.waiter) return;
    const end = this.buf.indexOf('\r\n\r\n');
    if (end >= 0) {
      const m = this.buf.slice(0, end).match(/content-length: *(\d+)/i);
      const total = end + 4 + (m ? Number(m[1]) : 0);
      if (this.buf.length >= total) {
        const res = this.buf.slice(0, total);
        this.buf = this.buf.slice(total);
        const w = this.waiter;
        this.waiter = null;
        w.resolve(res);
        return;
      }
    }
    if (this.closed) {
      const w = this.waiter;
      this.waiter = null;
      w.reject(new Error('connection closed'));
    }
  }

  get(pathName, partial = null) {
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
      const req = `GET ${pathName} HTTP/1.1\r\nHost: t\r\n\r\n`;
      if (partial === null) this.sock.write(req);
      else {
        // the head in two pieces, a reload between them
        this.sock.write(req.slice(0, partial));
        this.rest = req.slice(partial);
      }
      this.check();
    });
  }

  finish() { this.sock.write(this.rest); }
}

test('keep-alive HTTP connections of retired workers move to the others', async () => {
  const srv = await startChatd({ workers: 4 });
  try {
    const N = 64;
    const conns = [];
    for (let i = 0; i < N; i++) {
      const k = new KeepAlive(srv.port);
      conns.push(k);
      assert.match(await k.get('/healthz'), /^HTTP\/1\.1 200/);
    }
    // some with half a request head sent when the reload comes
    const halves = conns.slice(0, 8).map((k) => k.get('/healthz?half', 12));
    await sleep(100);
    setWorkers(srv, 1);
    const r = adm(srv, '--json', 'reload');
    assert.equal(r.code, 0, r.err);
    assert.equal(srv.workers().length, 1);
    for (const k of conns.slice(0, 8)) k.finish();
    for (const h of halves) assert.match(await h, /^HTTP\/1\.1 200/);
    // every connection still open and served, now all by the one worker
    for (const k of conns) {
      assert.equal(k.closed, false);
      assert.match(await k.get('/healthz'), /^HTTP\/1\.1 200/);
    }
    const w = JSON.parse(adm(srv, '--json', 'workers').out).workers;
    assert.equal(w.length, 1);
    assert.ok(w[0].connections >= N, `worker 0 holds ${w[0].connections} connections`);
    const st = JSON.parse(adm(srv, '--json', 'stats').out).sections.clients;
    assert.ok(st.conns_adopted > 0 && st.conns_adopted === st.conns_handed_over,
      `handed over ${st.conns_handed_over}, adopted ${st.conns_adopted}`);
    for (const k of conns) k.sock.destroy();
  } finally {
    await srv.cleanup();
  }
});
