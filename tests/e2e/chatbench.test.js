// chatbench end to end: the load generator (bench/chatbench) against the
// real daemon (2 workers) and against the Node `ws` broadcast peer
// (bench/peers/ws-broadcast.js), reading its --json output. Short fanout
// (as fast as possible, and at a fixed rate), broadcast and history runs
// (closed loop, and open loop at a fixed rate, whose late requests must be
// counted when the rate is out of reach) must lose and duplicate nothing
// and see no error; and, so that those
// zeros mean something, a peer written here that drops every 7th frame
// and one that sends some frames twice must be caught as lost and
// duplicated (exit status 1).
'use strict';
const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn, spawnSync } = require('node:child_process');
const net = require('node:net');
const path = require('node:path');
const { startChatd, freePort, sleep, ROOT } = require('./lib/chatd');
const { WebSocketServer } = require('ws');

const BIN = path.join(process.env.BUILD_DIR || path.join(ROOT, 'build'), 'chatbench');
const SHORT = ['-d', '1.5', '--ramp', '0.3', '--drain', '3'];

// Runs chatbench (asynchronously: a peer in this process must keep serving).
function chatbench(args) {
  return new Promise((resolve, reject) => {
    const p = spawn(BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { err += d; });
    const timer = setTimeout(() => p.kill('SIGKILL'), 30000);
    p.on('error', reject);
    p.on('close', (code) => {
      clearTimeout(timer);
      let json;
      try { json = JSON.parse(out); } catch { json = undefined; }
      resolve({ code, out, err, json });
    });
  });
}

// Resolves once something accepts connections on port (at most 10 s).
async function listening(port) {
  for (let i = 0; i < 200; i++) {
    const ok = await new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => { s.destroy(); resolve(true); });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    await sleep(50);
  }
  throw new Error(`nothing listens on ${port}`);
}

function clean(r, what) {
  const msg = `${what}: exit ${r.code}\n${r.err}\n${r.out}`;
  assert.ok(r.json, msg);
  assert.equal(r.json.lost, 0, msg);
  assert.equal(r.json.duplicated, 0, msg);
  assert.equal(r.json.error_total, 0, msg);
  assert.equal(r.code, 0, msg);
}

// A raw broadcast server like bench/peers/ws-broadcast.js that misbehaves:
// `drop(n)` true skips the n-th frame of a room, `twice(n)` sends it twice.
async function faultyPeer({ drop = () => false, twice = () => false }) {
  const port = await freePort();
  const rooms = new Map();
  const wss = new WebSocketServer({ port, host: '127.0.0.1', perMessageDeflate: false });
  wss.on('connection', (ws, req) => {
    if (!rooms.has(req.url)) rooms.set(req.url, { members: new Set(), n: 0 });
    const room = rooms.get(req.url);
    room.members.add(ws);
    ws.on('message', (data) => {
      room.n++;
      if (drop(room.n)) return;
      for (const m of room.members) {
        m.send(data, { binary: false });
        if (twice(room.n)) m.send(data, { binary: false });
      }
    });
    ws.on('close', () => room.members.delete(ws));
  });
  await new Promise((r) => wss.on('listening', r));
  return { port, close: () => new Promise((r) => { for (const c of wss.clients) c.terminate(); wss.close(r); }) };
}

describe('chatbench', () => {
  it('prints its usage and refuses bad options', () => {
    const help = spawnSync(BIN, ['--help'], { encoding: 'utf8' });
    assert.equal(help.status, 0);
    for (const word of ['fanout', 'broadcast', 'idle', 'connect', 'history', '--server-pid', '--proto']) {
      assert.ok(help.stdout.includes(word), `--help lacks ${word}`);
    }
    assert.equal(spawnSync(BIN, ['--bogus', 'fanout']).status, 2);
    assert.equal(spawnSync(BIN, ['nosuchscenario']).status, 2);
    assert.equal(spawnSync(BIN, ['-c', '2', '-r', '3', 'fanout']).status, 2);
  });

  describe('against chatd', () => {
    let srv;
    before(async () => { srv = await startChatd({ workers: 2 }); });
    after(async () => { if (srv) await srv.cleanup(); });

    it('fanout as fast as possible: nothing lost or duplicated, server CPU counted', async () => {
      const r = await chatbench(['-s', `127.0.0.1:${srv.port}`, '--prepare', '-c', '40', '-r', '4', '-t', '2',
        '-p', String(srv.pid), '--json', ...SHORT, 'fanout']);
      clean(r, 'fanout');
      assert.equal(r.json.open, 40);
      assert.ok(r.json.delivered > 1000, `only ${r.json.delivered} deliveries`);
      // Every sent message reaches the room's 10 members.
      assert.equal(r.json.unique, r.json.total_sent * 10);
      assert.ok(r.json.latency_ms.count > 0 && r.json.latency_ms.p99 >= r.json.latency_ms.p50);
      assert.ok(r.json.server_processes >= 4, 'master, journal and 2 workers');
      assert.ok(r.json.server_cpu_seconds > 0 && r.json.per_cpu_second > 0);
    });

    it('fanout at a fixed rate sends on schedule', async () => {
      const r = await chatbench(['-s', `127.0.0.1:${srv.port}`, '-c', '10', '-r', '2', '-R', '100',
        '--json', ...SHORT, 'fanout']);
      clean(r, 'fixed-rate fanout');
      // 2 rooms x 100/s x 1.5 s, give or take the edges of the window.
      assert.ok(Math.abs(r.json.sent - 300) <= 15, `sent ${r.json.sent}, wanted about 300`);
      assert.equal(r.json.unique, r.json.total_sent * 5);
    });

    it('broadcast: every round reaches every client', async () => {
      const r = await chatbench(['-s', `127.0.0.1:${srv.port}`, '-c', '30', '--json', ...SHORT, 'broadcast']);
      clean(r, 'broadcast');
      assert.ok(r.json.broadcast_rounds >= 2, `${r.json.broadcast_rounds} rounds`);
      assert.equal(r.json.round_timeouts, 0);
      assert.equal(r.json.unique, r.json.total_sent * 30);
    });

    it('history reads answer 200', async () => {
      const r = await chatbench(['-s', `127.0.0.1:${srv.port}`, '--prepare', '--fill', '20', '--room-prefix', 'h',
        '-c', '4', '--limit', '10', '--json', '-d', '1', '--ramp', '0.2', 'history']);
      clean(r, 'history');
      assert.ok(r.json.responses > 10 && r.json.resp_bytes > r.json.responses * 10 * 20);
    });

    it('history at a fixed rate: open loop, on schedule, every answer drained', async () => {
      const r = await chatbench(['-s', `127.0.0.1:${srv.port}`, '--prepare', '--fill', '20', '--room-prefix', 'hr',
        '-c', '4', '-t', '2', '-R', '200', '--limit', '10', '--json', '-d', '2', '--ramp', '0.2', 'history']);
      clean(r, 'fixed-rate history');
      const msg = r.out;
      assert.equal(r.json.rate, 200, msg);
      // 200/s in all x 2 s, over both threads; generous for a shared machine.
      assert.ok(Math.abs(r.json.sent - 400) <= 40, `sent ${r.json.sent}, wanted about 400`);
      assert.ok(Math.abs(r.json.responses - 400) <= 40, `${r.json.responses} responses, wanted about 400`);
      // The drain waits for the answers to every request sent while measuring.
      assert.equal(r.json.responses, r.json.sent, msg);
      assert.equal(typeof r.json.late, 'number', msg);
      const l = r.json.latency_ms;
      assert.equal(l.count, r.json.responses, msg);
      for (const k of ['mean', 'p50', 'p90', 'p99', 'p99.9', 'max']) assert.equal(typeof l[k], 'number', `${k}: ${msg}`);
      assert.ok(l.p50 > 0 && l.p50 <= l.p99 && l.p99 <= l.max, msg);
      assert.ok(r.json.resp_bytes > r.json.responses * 10 * 20, msg);
    });

    it('history at a rate one connection cannot keep: late requests counted, not a slower schedule', async () => {
      const r = await chatbench(['-s', `127.0.0.1:${srv.port}`, '--room-prefix', 'hr', '-c', '1', '-R', '100000',
        '--limit', '10', '--json', '-d', '1', '--ramp', '0.2', 'history']);
      clean(r, 'saturated history');	// saturation is a result, not an error
      // 100000 requests are due; one keep-alive connection answers far fewer,
      // and every request due while it was busy is counted late.
      assert.ok(r.json.sent > 0 && r.json.sent < 100000, r.out);
      assert.ok(r.json.late > r.json.sent, `late ${r.json.late}, sent ${r.json.sent}`);
      assert.equal(r.json.latency_ms.count, r.json.responses, r.out);
    });
  });

  describe('raw mode', () => {
    it('against the Node ws broadcast peer', async () => {
      const port = await freePort();
      const peer = spawn('node', [path.join(ROOT, 'bench/peers/ws-broadcast.js'), String(port)], { stdio: 'ignore' });
      try {
        await listening(port);
        const r = await chatbench(['-s', `127.0.0.1:${port}`, '--proto', 'raw', '-c', '20', '-r', '2',
          '-p', String(peer.pid), '--json', ...SHORT, 'broadcast']);
        clean(r, 'raw broadcast');
        assert.equal(r.json.server_processes, 1);
        assert.ok(r.json.broadcast_rounds >= 2);
      } finally {
        peer.kill('SIGTERM');
      }
    });

    it('catches a peer that drops frames', async () => {
      const peer = await faultyPeer({ drop: (n) => n % 7 === 0 });
      try {
        const r = await chatbench(['-s', `127.0.0.1:${peer.port}`, '--proto', 'raw', '-c', '6', '-R', '200',
          '--json', '-d', '1', '--ramp', '0.2', '--drain', '1', 'fanout']);
        assert.equal(r.code, 1, r.err);
        assert.ok(r.json.lost > 0 && r.json.gaps > 0, r.out);
        // 1 in 7 of the messages never reaches any of the 6 members.
        const expectLost = Math.floor(r.json.total_sent / 7) * 6;
        assert.ok(Math.abs(r.json.lost - expectLost) <= 6, `lost ${r.json.lost}, wanted about ${expectLost}`);
        assert.equal(r.json.duplicated, 0);
      } finally {
        await peer.close();
      }
    });

    it('catches a peer that sends frames twice', async () => {
      const peer = await faultyPeer({ twice: (n) => n % 5 === 0 });
      try {
        const r = await chatbench(['-s', `127.0.0.1:${peer.port}`, '--proto', 'raw', '-c', '4', '-R', '200',
          '--json', '-d', '1', '--ramp', '0.2', '--drain', '1', 'fanout']);
        assert.equal(r.code, 1, r.err);
        assert.ok(r.json.duplicated > 0, r.out);
        assert.equal(r.json.lost, 0);
      } finally {
        await peer.close();
      }
    });
  });
});
