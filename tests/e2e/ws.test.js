// The WebSocket protocol end to end (PROTOCOL.md, "WebSocket", and RFC 6455
// for the framing): the real daemon with 2 workers, driven by the `ws`
// package (lib/wsclient.js) and, for the framing rules, by a raw
// net.Socket client written here (handshake and masking by hand), so that
// every byte the server sees and sends is under the test's control.
// Where PROTOCOL.md is silent, a comment says what is assumed and why.
'use strict';
const { describe, it, before, after, beforeEach, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { startChatd, raw, parseResponses, sleep } = require('./lib/chatd');
const { Api, shutdown, decodeJwt, signJwt, b64u } = require('./lib/api');
const { WsClient } = require('./lib/wsclient');

// No auth rate limits: the tests register many users from one address.
const NO_AUTH_LIMITS = ['auth_per_ip_per_minute = 0', 'auth_failures_per_user_per_minute = 0'];
const SLACK_MS = 2000; // clock slack between this process and chatd (same machine)
const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'; // RFC 6455 1.3

const isInt = (x) => Number.isSafeInteger(x);
const range = (lo, hi) => Array.from({ length: Math.max(0, hi - lo + 1) }, (_, i) => lo + i);

// "1..5, 7, 7, 9..12": a list of seqs, short enough for a failure message.
function runs(seqs) {
  const out = [];
  for (let i = 0; i < seqs.length;) {
    let j = i;
    while (j + 1 < seqs.length && seqs[j + 1] === seqs[j] + 1) j++;
    out.push(j > i ? `${seqs[i]}..${seqs[j]}` : `${seqs[i]}`);
    i = j + 1;
  }
  const s = out.join(', ');
  return s.length > 600 ? `${s.slice(0, 600)}...` : s;
}

// The msg frames' seqs are exactly lo..hi, each once, in that order.
function assertSeqRun(frames, lo, hi, what) {
  const got = frames.map((f) => f.seq);
  const ok = got.length === hi - lo + 1 && got.every((s, i) => s === lo + i);
  assert.ok(ok, `${what}: expected seqs ${lo}..${hi} in order, each once; got ${got.length}: ${runs(got)}`);
}

function assertMsgShape(f, room) {
  const s = JSON.stringify(f);
  assert.equal(f.type, 'msg', s);
  assert.equal(f.room, room, s);
  assert.ok(isInt(f.seq) && f.seq >= 1, `seq: ${s}`);
  assert.equal(typeof f.from, 'string', s);
  assert.equal(typeof f.content, 'string', s);
  assert.ok(isInt(f.ts), `ts: ${s}`);
  if (f.id !== undefined) assert.equal(typeof f.id, 'string', s);
}

// An error frame: {"type":"error","code":C,"message":M,"id":I?}, with the
// given code (or any snake_case code when the protocol names none) and the
// request's id (or none, when the request carried none).
function assertErrorFrame(f, code, id, what) {
  const s = `${what}: ${JSON.stringify(f)}`;
  assert.equal(f.type, 'error', s);
  if (code) assert.equal(f.code, code, s);
  else assert.match(String(f.code), /^[a-z][a-z0-9_]*$/, `snake_case code: ${s}`);
  assert.equal(typeof f.message, 'string', s);
  assert.ok(f.message.length > 0, `non-empty message: ${s}`);
  if (id === undefined) assert.ok(!('id' in f) || f.id === undefined, `no id on the reply to a request without one: ${s}`);
  else assert.equal(f.id, id, s);
}

// Sends n messages over REST, `concurrency` at a time, with ids; returns
// the acks in message order. Content of message i is content(i).
async function restSendMany(api, token, room, n, { concurrency = 16, content = (i) => `m${i}`, idPrefix } = {}) {
  const prefix = idPrefix || `r${crypto.randomBytes(4).toString('hex')}-`;
  const acks = new Array(n);
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < n) {
      const i = next++;
      acks[i] = await api.sendOk(token, room, content(i), `${prefix}${i}`);
    }
  }));
  return acks;
}

// The slow-reader test sends messages of this size (under the default
// max_message_bytes of 65536), as many as slowReaderMessages() says.
const SLOW_MSG_BYTES = 60 * 1024;

function sysctlInts(name) {
  try {
    return fs.readFileSync(`/proc/sys/${name.replace(/\./g, '/')}`, 'utf8').trim().split(/\s+/).map(Number);
  } catch { return null; }
}

// Bytes the kernel can hold between a server that writes and a client
// that does not read, plus chatd's 1 MiB queue and 3 MiB to spare, in
// messages of SLOW_MSG_BYTES.
function slowReaderMessages() {
  const wmem = sysctlInts('net.ipv4.tcp_wmem') || [0, 0, 4 << 20];
  const rmem = sysctlInts('net.ipv4.tcp_rmem') || [0, 128 << 10, 0];
  const bytes = wmem[2] + 2 * rmem[1] + (1 << 20) + (3 << 20);
  return Math.ceil(bytes / SLOW_MSG_BYTES);
}

// --- which worker holds a connection -------------------------------------
// The server side of the client's TCP connection (local port = chatd's,
// remote port = the client's) is found in /proc/net/tcp, and its inode in
// the file descriptors of each worker process.

function serverSocketInode(serverPort, clientPort) {
  const hex = (n) => n.toString(16).toUpperCase().padStart(4, '0');
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text;
    try { text = fs.readFileSync(file, 'utf8'); } catch { continue; }
    for (const line of text.split('\n').slice(1)) {
      const p = line.trim().split(/\s+/);
      if (p.length < 10) continue;
      if (p[1].endsWith(`:${hex(serverPort)}`) && p[2].endsWith(`:${hex(clientPort)}`) && p[9] !== '0') return p[9];
    }
  }
  return null;
}

// Map of socket inode -> worker pid, for every worker of srv.
function workerSockets(srv) {
  const m = new Map();
  for (const w of srv.workers()) {
    let fds = [];
    try { fds = fs.readdirSync(`/proc/${w.pid}/fd`); } catch { continue; }
    for (const fd of fds) {
      try {
        const l = fs.readlinkSync(`/proc/${w.pid}/fd/${fd}`);
        const mm = l.match(/^socket:\[(\d+)\]$/);
        if (mm) m.set(mm[1], w.pid);
      } catch { /* closed meanwhile */ }
    }
  }
  return m;
}

// The pid of the worker serving each client (null when not found).
function workersOf(srv, clients) {
  const socks = workerSockets(srv);
  return clients.map((c) => {
    const inode = serverSocketInode(srv.port, c.ws._socket.localPort);
    return inode ? socks.get(inode) || null : null;
  });
}

// --- a raw RFC 6455 client ------------------------------------------------

class RawWs {
  constructor(sock, name) {
    this.sock = sock;
    this.name = name;
    this.buf = Buffer.alloc(0);
    this.frames = []; // {fin, rsv, opcode, masked, payload}
    this.cursor = 0;
    this.waiters = new Set();
    this.endedHow = null;
    this.ended = new Promise((resolve) => { this.resolveEnded = resolve; });
    sock.on('error', (e) => this.end(e.code || e.message));
    sock.on('end', () => this.end('end'));
    sock.on('close', () => this.end('close'));
  }

  end(how) {
    if (this.endedHow) return;
    this.endedHow = how;
    this.resolveEnded(how);
    for (const w of [...this.waiters]) w.check();
  }

  // Connects and does the opening handshake by hand (RFC 6455 4.1); checks
  // the 101 answer and its Sec-WebSocket-Accept.
  static open(port, urlPath, token, { timeout = 5000 } = {}) {
    return new Promise((resolve, reject) => {
      const key = crypto.randomBytes(16).toString('base64');
      const sock = net.connect(port, '127.0.0.1');
      sock.setNoDelay(true);
      let head = Buffer.alloc(0);
      const timer = setTimeout(() => { sock.destroy(); reject(new Error(`handshake of ${urlPath} timed out`)); }, timeout);
      const onData = (d) => {
        head = Buffer.concat([head, d]);
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) return;
        sock.off('data', onData);
        clearTimeout(timer);
        const lines = head.subarray(0, end).toString('latin1').split('\r\n');
        const headers = {};
        for (const l of lines.slice(1)) {
          const i = l.indexOf(':');
          headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
        }
        const expectAccept = crypto.createHash('sha1').update(key + WS_GUID).digest('base64');
        if (!/^HTTP\/1\.1 101 /.test(lines[0]) || String(headers.upgrade).toLowerCase() !== 'websocket' ||
          !/\bupgrade\b/i.test(String(headers.connection)) || headers['sec-websocket-accept'] !== expectAccept) {
          sock.destroy();
          reject(new Error(`bad handshake answer: ${head.toString('latin1').slice(0, 400)}`));
          return;
        }
        const c = new RawWs(sock, urlPath);
        sock.on('data', (x) => c.onData(x));
        c.onData(head.subarray(end + 4));
        resolve(c);
      };
      sock.on('data', onData);
      sock.once('error', (e) => { clearTimeout(timer); reject(e); });
      sock.on('connect', () => {
        sock.write(`GET ${urlPath} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\n` +
          `Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n` +
          `Authorization: Bearer ${token}\r\n\r\n`);
      });
    });
  }

  onData(d) {
    if (d.length) this.buf = Buffer.concat([this.buf, d]);
    for (;;) {
      const b = this.buf;
      if (b.length < 2) break;
      let len = b[1] & 0x7f;
      let off = 2;
      if (len === 126) {
        if (b.length < 4) break;
        len = b.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (b.length < 10) break;
        len = Number(b.readBigUInt64BE(2));
        off = 10;
      }
      const masked = Boolean(b[1] & 0x80);
      const keyAt = off;
      if (masked) off += 4;
      if (b.length < off + len) break;
      const payload = Buffer.from(b.subarray(off, off + len));
      if (masked) for (let i = 0; i < len; i++) payload[i] ^= b[keyAt + (i % 4)];
      this.frames.push({ fin: Boolean(b[0] & 0x80), rsv: (b[0] >> 4) & 7, opcode: b[0] & 0x0f, masked, payload });
      this.buf = b.subarray(off + len);
    }
    for (const w of [...this.waiters]) w.check();
  }

  // One frame, masked by default (a client must mask, RFC 6455 5.3).
  static frame({ fin = true, rsv = 0, opcode = 1, payload = Buffer.alloc(0), mask = true, length } = {}) {
    const p = Buffer.isBuffer(payload) ? payload : Buffer.from(payload, 'utf8');
    const n = length === undefined ? p.length : length; // a declared length may differ, to test limits
    let hdr;
    if (n < 126) {
      hdr = Buffer.from([0, n]);
    } else if (n < 65536) {
      hdr = Buffer.alloc(4);
      hdr[1] = 126;
      hdr.writeUInt16BE(n, 2);
    } else {
      hdr = Buffer.alloc(10);
      hdr[1] = 127;
      hdr.writeBigUInt64BE(BigInt(n), 2);
    }
    hdr[0] = (fin ? 0x80 : 0) | ((rsv & 7) << 4) | (opcode & 0x0f);
    if (!mask) return Buffer.concat([hdr, p]);
    hdr[1] |= 0x80;
    const key = crypto.randomBytes(4);
    const body = Buffer.from(p);
    for (let i = 0; i < body.length; i++) body[i] ^= key[i % 4];
    return Buffer.concat([hdr, key, body]);
  }

  write(buf) { if (!this.sock.destroyed) this.sock.write(buf); }

  sendFrame(opts) { this.write(RawWs.frame(opts)); }

  sendText(s) { this.sendFrame({ opcode: 1, payload: typeof s === 'string' ? s : JSON.stringify(s) }); }

  describe() {
    return this.frames.map((f) => `{op ${f.opcode}${f.fin ? '' : ' !fin'}${f.rsv ? ` rsv ${f.rsv}` : ''}${f.masked ? ' MASKED' : ''} ` +
      `${JSON.stringify(f.opcode === 8 ? closeOf(f) : f.payload.toString('utf8').slice(0, 120))}}`).join(', ');
  }

  // The next frame after the cursor matching pred; rejects on timeout or
  // when the connection ends first.
  next(pred = () => true, { timeout = 5000, what = 'a frame' } = {}) {
    return new Promise((resolve, reject) => {
      const w = {
        check: () => {
          for (; this.cursor < this.frames.length; this.cursor++) {
            const f = this.frames[this.cursor];
            if (pred(f)) {
              this.cursor++;
              done();
              resolve(f);
              return;
            }
          }
          if (this.endedHow) {
            done();
            reject(new Error(`${this.name}: connection ended (${this.endedHow}) before ${what}; frames: ${this.describe()}`));
          }
        },
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`${this.name}: waited ${timeout} ms for ${what} in vain; frames: ${this.describe()}`));
      }, timeout);
      const done = () => { clearTimeout(timer); this.waiters.delete(w); };
      this.waiters.add(w);
      w.check();
    });
  }

  // Resolves how the TCP connection ended ('end', 'close', 'ECONNRESET'),
  // or null when it is still open after timeout ms.
  async waitEnd(timeout = 5000) {
    let timer;
    const late = new Promise((resolve) => { timer = setTimeout(() => resolve(null), timeout); });
    const r = await Promise.race([this.ended, late]);
    clearTimeout(timer);
    return r;
  }

  destroy() { this.sock.destroy(); }
}

function closeOf(f) {
  if (f.payload.length < 2) return { code: null, reason: '' };
  return { code: f.payload.readUInt16BE(0), reason: f.payload.subarray(2).toString('utf8') };
}

// Every server frame is unmasked (RFC 6455 5.1: a server MUST NOT mask).
function assertServerFramesUnmasked(rc) {
  assert.ok(rc.frames.every((f) => !f.masked), `server frames are unmasked: ${rc.describe()}`);
}

// The connection is failed with close `code`: a close frame with that code
// comes (with nothing but allowed frames before it), and the server then
// ends the TCP connection without waiting for our close (RFC 6455 7.1.7).
async function assertFailedWith(rc, code, what, srv) {
  let f;
  try {
    f = await rc.next((x) => x.opcode === 8, { what: `a close frame (${what})`, timeout: 3000 });
  } catch (e) {
    // Say whether the worker still serves: a stuck loop shows as state R.
    const ps = srv ? srv.workers().map((w) => {
      let stat = '?';
      try { stat = fs.readFileSync(`/proc/${w.pid}/stat`, 'utf8').split(') ')[1].split(' ')[0]; } catch { /* gone */ }
      return `${w.args} (pid ${w.pid}) state ${stat}`;
    }).join('; ') : '';
    e.message += ps ? `; workers: ${ps}` : '';
    throw e;
  }
  assert.equal(closeOf(f).code, code, `${what}: close frame ${JSON.stringify(closeOf(f))}; frames: ${rc.describe()}`);
  assert.ok(f.fin, `${what}: a control frame is not fragmented`);
  assertServerFramesUnmasked(rc);
  const how = await rc.waitEnd(5000);
  assert.ok(how, `${what}: the TCP connection is still open 5 s after the close frame`);
}

// ---------------------------------------------------------------------------

describe('websocket (2 workers)', () => {
  let srv;
  let api;
  const clients = [];

  // A client tracked for cleanup; fails the test if the server sent it a
  // frame that is not a JSON text frame.
  const connect = async (user, opts = {}) => {
    const c = await WsClient.connect(srv.port, { token: user.token, name: `${user.name}${opts.path || '/ws'}`, ...opts });
    clients.push(c);
    return c;
  };
  before(async () => {
    srv = await startChatd({ workers: 2, extra: ['[limits]', ...NO_AUTH_LIMITS] });
    api = new Api(srv.port, { maxSockets: 16 });
  });
  afterEach(() => {
    const bad = clients.filter((c) => c.bad.length);
    for (const c of clients.splice(0)) c.terminate();
    assert.deepEqual(bad.map((c) => c.bad.slice(0, 3)), [], 'every server frame is a JSON text frame');
  });
  after(async () => {
    if (api) api.close();
    if (srv) await shutdown(srv);
  });

  describe('upgrade', () => {
    it('refuses a missing or invalid token with 401 before the upgrade', async () => {
      const u = await api.newUser('wsauth');
      const room = await api.newRoom(u.token);
      const real = decodeJwt(u.token);
      const [h, p, s] = real.parts;
      const noneHeader = b64u(JSON.stringify({ alg: 'none', typ: 'JWT' }));
      const bad = [
        ['no token', {}],
        ['a garbage token in the header', { token: 'garbage' }],
        ['a garbage token in ?token=', { token: 'garbage', via: 'query' }],
        ['an empty ?token=', { path: '/ws?token=' }],
        ['a token with its signature altered', { token: `${h}.${p}.${s[0] === 'A' ? 'B' : 'A'}${s.slice(1)}` }],
        ['the claims signed with another key', { token: signJwt(real.header, real.payload, crypto.randomBytes(32)) }],
        ['alg none', { token: `${noneHeader}.${p}.`, via: 'query' }],
        ['the token without Bearer', { headers: { Authorization: u.token } }],
      ];
      for (const [what, opts] of bad) {
        for (const urlPath of ['/ws', `/ws/${room}`]) {
          const o = { ...opts, path: opts.path ? opts.path.replace('/ws', urlPath) : urlPath, timeout: 5000 };
          let err;
          try {
            const c = await WsClient.connect(srv.port, o);
            c.terminate();
          } catch (e) { err = e; }
          assert.ok(err, `${what} on ${urlPath}: the upgrade succeeded`);
          assert.equal(err.status, 401, `${what} on ${urlPath}: ${err.message}`);
          // "Every error is an HTTP status plus {"error": {...}}".
          assert.ok(err.json && err.json.error && typeof err.json.error.code === 'string',
            `${what}: JSON error body: ${err.body}`);
        }
      }
      // A token that expired, signed with the server's own key (the key
      // file under data_dir, DESIGN.md): first check that a fresh token
      // signed that way is taken, so a refusal of the expired one means
      // what it should.
      const keyPath = path.join(srv.dir, 'var', 'jwt.key');
      const key = fs.readFileSync(keyPath);
      const now = Math.floor(Date.now() / 1000);
      const fresh = signJwt(real.header, { ...real.payload, iat: now - 10, exp: now + 600 }, key);
      const c = await connect(u, { token: fresh });
      await c.roundTrip();
      const expired = signJwt(real.header, { ...real.payload, iat: now - 7200, exp: now - 3600 }, key);
      await assert.rejects(WsClient.connect(srv.port, { token: expired }), (e) => e.status === 401,
        'an expired token is refused with 401');
    });

    it('takes the token from the Authorization header and from ?token=', async () => {
      const u = await api.newUser('wstok');
      const room = await api.newRoom(u.token);
      const viaHeader = await connect(u, { via: 'header' });
      const viaQuery = await connect(u, { via: 'query' });
      for (const [c, what] of [[viaHeader, 'header'], [viaQuery, 'query']]) {
        const pong = await c.request({ type: 'ping', id: `p-${what}` });
        assert.deepEqual(pong, { type: 'pong', id: `p-${what}` }, `${what}: ping`);
        assert.equal((await c.request({ type: 'join', room })).type, 'joined', `${what}: join`);
        // The connection acts as the token's user.
        const ack = await c.request({ type: 'send', room, content: `via ${what}`, id: `s-${what}` });
        assert.equal(ack.type, 'ack', JSON.stringify(ack));
        const m = await c.find((f) => f.type === 'msg' && f.seq === ack.seq);
        assert.equal(m.from, u.name, `${what}: from`);
      }
      // The query form also works with other parameters around it.
      const mixed = await connect(u, { path: `/ws?x=1&token=${encodeURIComponent(u.token)}&y=2` });
      await mixed.roundTrip();
    });

    it('refuses a bad handshake with 400, and an unknown version with the version it speaks', async () => {
      const u = await api.newUser('wshs');
      const key = crypto.randomBytes(16).toString('base64');
      const base = (lines) => `GET /ws HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer ${u.token}\r\n${lines.join('')}\r\n`;
      // RFC 6455 4.2.1: a handshake missing a required field is answered
      // with an error such as 400 Bad Request, not with 101.
      const noKey = parseResponses((await raw(srv.port, base(['Upgrade: websocket\r\n', 'Connection: Upgrade\r\n',
        'Sec-WebSocket-Version: 13\r\n']), { idleMs: 500 })).text);
      assert.equal(noKey.length >= 1 && noKey[0].status, 400, `no Sec-WebSocket-Key: ${JSON.stringify(noKey)}`);
      const badKey = parseResponses((await raw(srv.port, base(['Upgrade: websocket\r\n', 'Connection: Upgrade\r\n',
        'Sec-WebSocket-Version: 13\r\n', 'Sec-WebSocket-Key: not-base64-of-16-bytes\r\n']), { idleMs: 500 })).text);
      assert.equal(badKey.length >= 1 && badKey[0].status, 400, `malformed Sec-WebSocket-Key: ${JSON.stringify(badKey)}`);
      // RFC 6455 4.4: an unknown version is refused with a
      // Sec-WebSocket-Version header naming the versions understood.
      const v8 = parseResponses((await raw(srv.port, base(['Upgrade: websocket\r\n', 'Connection: Upgrade\r\n',
        'Sec-WebSocket-Version: 8\r\n', `Sec-WebSocket-Key: ${key}\r\n`]), { idleMs: 500 })).text);
      assert.ok(v8.length >= 1 && v8[0].status >= 400 && v8[0].status < 500, `version 8: ${JSON.stringify(v8)}`);
      assert.match(String(v8[0].headers['sec-websocket-version']), /\b13\b/, `version 8: ${JSON.stringify(v8)}`);
    });

    it('/ws/{room} sends joined first, then the room\'s live messages', async () => {
      const u = await api.newUser('wsroom');
      const room = await api.newRoom(u.token);
      await restSendMany(api, u.token, room, 3);
      for (const via of ['header', 'query']) {
        const c = await connect(u, { path: `/ws/${room}`, via });
        const first = await c.nextAny();
        assert.deepEqual({ type: first.type, room: first.room, last_seq: first.last_seq },
          { type: 'joined', room, last_seq: 3 + (via === 'query' ? 1 : 0) }, `${via}: first frame ${JSON.stringify(first)}`);
        // As a join with no since: no replay of the old messages...
        await c.roundTrip();
        assert.deepEqual(c.msgs(room), [], `${via}: no replay without since`);
        // ...but the live ones.
        const ack = await api.sendOk(u.token, room, `live ${via}`);
        const m = await c.next((f) => f.type === 'msg');
        assertMsgShape(m, room);
        assert.deepEqual([m.seq, m.content, m.ts, m.from], [ack.seq, `live ${via}`, ack.ts, u.name]);
      }
    });

    it('/ws/{room} for a non-participant: the upgrade, then error not_a_participant, and nothing from that room', async () => {
      const owner = await api.newUser('wsown');
      const outsider = await api.newUser('wsout');
      const room = await api.newRoom(owner.token);
      const member = await connect(owner, { path: `/ws/${room}` });
      assert.equal((await member.nextAny()).type, 'joined');
      const c = await connect(outsider, { path: `/ws/${room}` }); // the upgrade itself succeeds
      const first = await c.nextAny();
      assertErrorFrame(first, 'not_a_participant', undefined, 'first frame on /ws/{room} for a non-participant');
      const ack = await api.sendOk(owner.token, room, 'members only');
      await member.find((f) => f.type === 'msg' && f.seq === ack.seq);
      await sleep(300);
      await c.roundTrip(); // the connection stays open and usable
      assert.deepEqual(c.frames.filter((f) => f.room === room && f.type !== 'error'), [],
        `nothing from ${room}: ${c.describe()}`);
      assert.equal(c.closeInfo, null);
    });
  });

  describe('join, leave, send', () => {
    it('joined carries last_seq; ack has id, room, seq, ts; msg has room, seq, from, content, ts (the ack\'s), id', async () => {
      const alice = await api.newUser('wsa');
      const bob = await api.newUser('wsb');
      const room = await api.newRoom(alice.token, [bob.name]);
      await restSendMany(api, alice.token, room, 3);
      const a = await connect(alice);
      const b = await connect(bob);
      const ja = await a.request({ type: 'join', room, id: 'j1' });
      assert.deepEqual(ja, { type: 'joined', room, last_seq: 3, id: 'j1' });
      const jb = await b.request({ type: 'join', room });
      assert.equal(jb.type, 'joined');
      assert.equal(jb.last_seq, 3);
      // Content with everything JSON must escape, and non-ASCII.
      const content = 'quote " backslash \\ newline \n tab \t ctl \u0001 é 😀 </script>';
      const t0 = Date.now();
      const ack = await a.request({ type: 'send', room, content, id: 'send-1' });
      const t1 = Date.now();
      assert.deepEqual(Object.keys(ack).sort(), ['id', 'room', 'seq', 'ts', 'type'], JSON.stringify(ack));
      assert.equal(ack.type, 'ack');
      assert.equal(ack.id, 'send-1');
      assert.equal(ack.room, room);
      assert.equal(ack.seq, 4, 'seq follows the 3 REST messages');
      assert.ok(isInt(ack.ts) && ack.ts >= t0 - SLACK_MS && ack.ts <= t1 + SLACK_MS, `ts ${ack.ts} in [${t0}, ${t1}]`);
      // Acked means stored: history has it at once, with the same ts.
      const h = await api.history(bob.token, room, 'limit=1');
      assert.equal(h.json.length, 1);
      const { room: hr, seq: hs, from: hf, content: hc, ts: ht } = h.json[0];
      assert.deepEqual({ room: hr, seq: hs, from: hf, content: hc, ts: ht }, { room, seq: 4, from: alice.name, content, ts: ack.ts });
      // Both members' connections get it, the sender's own included.
      for (const [c, what] of [[a, 'sender'], [b, 'other member']]) {
        const m = await c.next((f) => f.type === 'msg');
        assertMsgShape(m, room);
        assert.equal(m.seq, 4, `${what}: seq`);
        assert.equal(m.from, alice.name, `${what}: from`);
        assert.equal(m.content, content, `${what}: content`);
        assert.equal(m.ts, ack.ts, `${what}: the msg's ts is the ack's`);
        if (what === 'sender') assert.equal(m.id, 'send-1', `${what}: the msg carries the send's id`);
      }
      // A send without id is acked too (id is optional); the ack then has no id to echo.
      const from = a.frames.length;
      a.send({ type: 'send', room, content: 'no id' });
      const { frame: ack2 } = await a.waitFor((f) => f.type === 'ack', { from });
      assert.equal(ack2.seq, 5);
      assert.equal(ack2.room, room);
    });

    it('a retry with the same id gets the same ack and one msg only; the same id from another user is another message', async () => {
      const alice = await api.newUser('wsra');
      const bob = await api.newUser('wsrb');
      const room = await api.newRoom(alice.token, [bob.name]);
      const a = await connect(alice);
      const a2 = await connect(alice); // another connection of the same user
      const watcher = await connect(bob);
      for (const c of [a, watcher]) assert.equal((await c.request({ type: 'join', room })).type, 'joined');
      const first = await a.request({ type: 'send', room, content: 'once', id: 'dup-1' });
      assert.equal(first.type, 'ack', JSON.stringify(first));
      const again = await a.request({ type: 'send', room, content: 'once', id: 'dup-1' });
      assert.deepEqual(again, first, 'a retry on the same connection');
      const other = await a2.request({ type: 'send', room, content: 'once', id: 'dup-1' });
      assert.deepEqual(other, first, 'a retry on another connection of the same user');
      // Concurrent retries, pipelined on one connection.
      for (let i = 0; i < 5; i++) a.send({ type: 'send', room, content: 'once', id: 'dup-1' });
      await a.waitCount((f) => f.type === 'ack' && f.id === 'dup-1', 7);
      for (const f of a.frames.filter((x) => x.type === 'ack')) assert.deepEqual(f, first, 'pipelined retry');
      const bobs = await watcher.request({ type: 'send', room, content: 'same id, other user', id: 'dup-1' });
      assert.equal(bobs.seq, first.seq + 1, `bob's dup-1 is a new message: ${JSON.stringify(bobs)}`);
      await watcher.find((f) => f.type === 'msg' && f.seq === bobs.seq);
      await a.find((f) => f.type === 'msg' && f.seq === bobs.seq);
      await sleep(200);
      for (const [c, what] of [[a, 'sender'], [watcher, 'watcher']]) {
        await c.roundTrip();
        assertSeqRun(c.msgs(room), first.seq, bobs.seq, `${what}: one msg for the retried id, one for bob's`);
      }
      const h = await api.historyAll(alice.token, room);
      assert.deepEqual(h.map((e) => [e.seq, e.from, e.content]),
        [[bobs.seq, bob.name, 'same id, other user'], [first.seq, alice.name, 'once']], 'history stored each once');
    });

    it('leave answers left and stops the room\'s messages on that connection only', async () => {
      const u = await api.newUser('wsl');
      const r1 = await api.newRoom(u.token);
      const r2 = await api.newRoom(u.token);
      const c = await connect(u);
      const other = await connect(u);
      for (const r of [r1, r2]) assert.equal((await c.request({ type: 'join', room: r })).type, 'joined');
      assert.equal((await other.request({ type: 'join', room: r1 })).type, 'joined');
      const a1 = await api.sendOk(u.token, r1, 'before leave');
      await c.find((f) => f.type === 'msg' && f.room === r1 && f.seq === a1.seq);
      const left = await c.request({ type: 'leave', room: r1, id: 'l1' });
      assert.deepEqual(left, { type: 'left', room: r1, id: 'l1' });
      const a2 = await api.sendOk(u.token, r1, 'after leave');
      const b2 = await api.sendOk(u.token, r2, 'still joined');
      await other.find((f) => f.type === 'msg' && f.seq === a2.seq); // r1 went on, elsewhere
      await c.find((f) => f.type === 'msg' && f.room === r2 && f.seq === b2.seq); // r2 still comes
      await sleep(200);
      await c.roundTrip();
      assert.deepEqual(c.msgs(r1).map((f) => f.seq), [a1.seq], `no ${r1} message after left: ${c.describe()}`);
      // Joining again works.
      assert.equal((await c.request({ type: 'join', room: r1 })).last_seq, a2.seq);
    });

    it('join with since replays the messages after it, oldest first, then live ones', async () => {
      const u = await api.newUser('wssince');
      const room = await api.newRoom(u.token);
      const acks = await restSendMany(api, u.token, room, 12, { concurrency: 1 });
      for (const since of [0, 5, 11, 12]) {
        const c = await connect(u);
        const j = await c.request({ type: 'join', room, since, id: `since-${since}` });
        assert.deepEqual(j, { type: 'joined', room, last_seq: 12, id: `since-${since}` });
        if (since < 12) await c.waitCount((f) => f.type === 'msg', 12 - since);
        await c.roundTrip();
        const ms = c.msgs(room);
        assertSeqRun(ms, since + 1, 12, `since=${since}`);
        for (const m of ms) {
          assertMsgShape(m, room);
          assert.equal(m.content, `m${m.seq - 1}`);
          assert.equal(m.ts, acks[m.seq - 1].ts, 'replayed ts is the ack\'s');
        }
        // The replay comes after joined.
        assert.ok(c.frames.findIndex((f) => f.type === 'joined') < c.frames.findIndex((f) => f.type === 'msg' || f.type === 'pong'));
        c.terminate();
      }
    });
  });

  describe('fan-out', () => {
    it('200 messages from 4 senders reach 20+ connections on both workers: each once, in seq order, identical everywhere', { timeout: 60000 }, async () => {
      const users = [];
      for (let i = 0; i < 5; i++) users.push(await api.newUser('fan'));
      const room = await api.newRoom(users[0].token, users.slice(1).map((x) => x.name));
      const cs = [];
      const add = async () => {
        const c = await connect(users[cs.length % users.length]);
        const j = await c.request({ type: 'join', room });
        assert.deepEqual([j.type, j.last_seq], ['joined', 0]);
        cs.push(c);
      };
      while (cs.length < 20) await add();
      // Both workers must hold some of them; the kernel spreads new
      // connections, so a few more make that sure.
      let where = workersOf(srv, cs);
      while (new Set(where.filter(Boolean)).size < 2 && cs.length < 60) {
        await add();
        where = workersOf(srv, cs);
      }
      assert.ok(where.every(Boolean), `every connection found in a worker: ${where}`);
      assert.equal(new Set(where).size, 2, `connections on both workers: ${where}`);

      const senders = cs.slice(0, 4); // users 0..3
      const PER = 50;
      const sent = new Map(); // `${user}/${id}` -> content
      for (let i = 0; i < PER; i++) {
        for (const [k, s] of senders.entries()) {
          const id = `f${k}-${i}`;
          const content = `from sender ${k}, #${i} ${'x'.repeat(i)}`;
          sent.set(`${users[k].name}/${id}`, content);
          s.send({ type: 'send', room, content, id });
        }
      }
      const acks = new Map(); // seq -> {user, id, ts}
      for (const [k, s] of senders.entries()) {
        await s.waitCount((f) => f.type === 'ack' || f.type === 'error', PER, { timeout: 20000, what: 'acks' });
        for (const f of s.frames.filter((x) => x.type === 'ack' || x.type === 'error')) {
          assert.equal(f.type, 'ack', `sender ${k}: ${JSON.stringify(f)}`);
          assert.ok(!acks.has(f.seq), `seq ${f.seq} acked twice`);
          acks.set(f.seq, { user: users[k].name, id: f.id, ts: f.ts });
        }
      }
      assert.deepEqual([...acks.keys()].sort((x, y) => x - y), range(1, 4 * PER), 'acks cover 1..200');

      await Promise.all(cs.map((c) => c.waitCount((f) => f.type === 'msg', 4 * PER, { timeout: 20000, what: 'msgs' })));
      await sleep(200);
      await Promise.all(cs.map((c) => c.roundTrip()));
      const ref = cs[0].msgs(room).map((f) => ({ seq: f.seq, from: f.from, content: f.content, ts: f.ts }));
      for (const [i, c] of cs.entries()) {
        const ms = c.msgs(room);
        assertSeqRun(ms, 1, 4 * PER, `connection ${i} (worker ${where[i]})`);
        assert.deepEqual(ms.map((f) => ({ seq: f.seq, from: f.from, content: f.content, ts: f.ts })), ref,
          `connection ${i} saw what connection 0 saw`);
      }
      for (const m of cs[0].msgs(room)) {
        assertMsgShape(m, room);
        const a = acks.get(m.seq);
        assert.equal(m.from, a.user, `seq ${m.seq}: from`);
        assert.equal(m.ts, a.ts, `seq ${m.seq}: ts is the ack's`);
        assert.equal(m.content, sent.get(`${a.user}/${a.id}`), `seq ${m.seq}: the content sent with ${a.id}`);
      }
    });
  });

  describe('large messages', () => {
    it('readers that keep up are never closed: 200 messages of 60 KB from 8 concurrent senders', {
      // A 256 KiB room ring holds 4 such messages, so the workers are
      // lapped again and again: their members catch up from the log.
      timeout: 60000,
    }, async () => {
      // 1013 is for a client that "read too slowly and fell behind"; these
      // read as fast as they can. Messages of 60 KB are within the default
      // max_message_bytes (65536), and 8 senders at once is ordinary load.
      const u = await api.newUser('large');
      const v = await api.newUser('larger');
      const room = await api.newRoom(u.token, [v.name]);
      const readers = [];
      for (let i = 0; i < 4; i++) {
        const c = await connect(i % 2 ? v : u);
        assert.equal((await c.request({ type: 'join', room })).type, 'joined');
        readers.push(c);
      }
      const N = 200;
      const body = 'L'.repeat(60 * 1024 - 16);
      const acks = await restSendMany(api, u.token, room, N, { concurrency: 8, content: (i) => `${String(i).padStart(6, '0')} ${body}` });
      assert.deepEqual(acks.map((a) => a.seq).sort((x, y) => x - y), range(1, N));
      await Promise.all(readers.map((c) => c.waitCount((f) => f.type === 'msg', N, { timeout: 30000, what: 'msgs' })));
      for (const [i, c] of readers.entries()) {
        await c.roundTrip();
        assert.equal(c.closeInfo, null, `reader ${i} stays open`);
        assertSeqRun(c.msgs(room), 1, N, `reader ${i}`);
      }
      const bySeq = new Map(acks.map((a, i) => [a.seq, i]));
      for (const m of readers[0].msgs(room)) {
        assert.equal(m.content.slice(0, 6), String(bySeq.get(m.seq)).padStart(6, '0'), `seq ${m.seq}: its content`);
        assert.equal(m.content.length, body.length + 7);
      }
    });
  });

  describe('resume', () => {
    it('join with since after a disconnect: exactly the missed messages, oldest first, then live ones', { timeout: 30000 }, async () => {
      const u = await api.newUser('res');
      const room = await api.newRoom(u.token);
      let c = await connect(u);
      assert.equal((await c.request({ type: 'join', room })).type, 'joined');
      await restSendMany(api, u.token, room, 5, { concurrency: 1 });
      await c.waitCount((f) => f.type === 'msg', 5);
      const seen = c.msgs(room);
      const last = seen[seen.length - 1].seq;
      await c.close();
      await restSendMany(api, u.token, room, 30, { content: (i) => `missed ${i}` });
      // A sender runs on while the client comes back, so the replay and
      // the live stream meet while the join is served.
      let stop = false;
      let liveSent = 0;
      const sender = (async () => {
        while (!stop) {
          await api.sendOk(u.token, room, `live ${liveSent}`);
          liveSent++;
        }
      })();
      try {
        await sleep(30);
        c = await connect(u);
        const j = await c.request({ type: 'join', room, since: last, id: 'rejoin' });
        assert.equal(j.type, 'joined', JSON.stringify(j));
        assert.ok(j.last_seq >= last + 30, `last_seq ${j.last_seq} counts the 30 missed`);
        const target = liveSent + 20;
        while (liveSent < target) await sleep(10);
      } finally {
        stop = true;
        await sender;
      }
      const final = 5 + 30 + liveSent;
      await c.waitCount((f) => f.type === 'msg', final - last, { timeout: 10000 });
      await sleep(200);
      await c.roundTrip();
      const after = c.msgs(room);
      assertSeqRun(after, last + 1, final, 'after rejoin');
      const joinedAt = c.frames.findIndex((f) => f.type === 'joined');
      const firstMsgAt = c.frames.findIndex((f) => f.type === 'msg');
      assert.ok(joinedAt >= 0 && joinedAt < firstMsgAt, 'joined comes before the replay');
      const hist = (await api.historyAll(u.token, room)).reverse();
      assert.deepEqual(after.map((f) => [f.seq, f.content, f.ts]), hist.slice(last).map((e) => [e.seq, e.content, e.ts]),
        'what came is what history holds');
    });

    it('more than 1000 missed: truncated with first_seq = last_seq - 999 before the replay, then live ones', { timeout: 60000 }, async () => {
      const u = await api.newUser('trunc');
      const room = await api.newRoom(u.token);
      let c = await connect(u);
      assert.equal((await c.request({ type: 'join', room })).type, 'joined');
      await restSendMany(api, u.token, room, 3, { concurrency: 1 });
      await c.waitCount((f) => f.type === 'msg', 3);
      const last = 3;
      await c.close();
      const MISSED = 1100;
      await restSendMany(api, u.token, room, MISSED, { concurrency: 16, content: (i) => `batch ${i}` });
      const lastSeq = last + MISSED;
      c = await connect(u);
      const j = await c.request({ type: 'join', room, since: last, id: 'rj' });
      assert.deepEqual(j, { type: 'joined', room, last_seq: lastSeq, id: 'rj' });
      const { frame: t, index: tAt } = await c.waitFor((f) => f.type === 'truncated', { what: 'truncated' });
      assert.deepEqual({ type: t.type, room: t.room, first_seq: t.first_seq },
        { type: 'truncated', room, first_seq: lastSeq - 999 }, JSON.stringify(t));
      await c.waitCount((f) => f.type === 'msg', 1000, { timeout: 20000 });
      const live = await api.sendOk(u.token, room, 'live after the replay');
      await c.next((f) => f.type === 'msg' && f.seq === live.seq, { timeout: 5000 });
      await sleep(200);
      await c.roundTrip();
      const joinedAt = c.frames.findIndex((f) => f.type === 'joined');
      const firstMsgAt = c.frames.findIndex((f) => f.type === 'msg');
      assert.ok(joinedAt < tAt && tAt < firstMsgAt, `order joined, truncated, replay: ${joinedAt} ${tAt} ${firstMsgAt}`);
      const ms = c.msgs(room);
      assertSeqRun(ms, lastSeq - 999, live.seq, 'the kept messages then the live one');
      const hist = (await api.historyAll(u.token, room)).reverse();
      assert.deepEqual(ms.slice(0, 1000).map((f) => [f.seq, f.content, f.ts]),
        hist.slice(lastSeq - 1000, lastSeq).map((e) => [e.seq, e.content, e.ts]), 'replay matches history');
    });
  });

  describe('bad input', () => {
    it('answers each bad frame with an error frame carrying its id; the connection stays open', async () => {
      const u = await api.newUser('bad');
      const stranger = await api.newUser('bads');
      const room = await api.newRoom(u.token);
      const theirs = await api.newRoom(stranger.token);
      const c = await connect(u);
      // Not JSON, or JSON that is not a frame: no id can be read, so the
      // error frame has none.
      for (const text of ['this is not json', '{"type":"ping"', '[1,2,3]', '"ping"', '42', 'null', '']) {
        const from = c.frames.length;
        c.send(text);
        const { frame } = await c.waitFor(() => true, { from, what: `the reply to ${JSON.stringify(text)}` });
        assertErrorFrame(frame, null, undefined, `frame ${JSON.stringify(text)}`);
      }
      const cases = [
        ['no type', { id: 'e1', room }, null],
        ['type not a string', { type: 7, id: 'e2' }, null],
        ['unknown type', { type: 'frobnicate', id: 'e3' }, null],
        ['join with a room id outside the pattern', { type: 'join', room: 'bad room!', id: 'e4' }, null],
        ['join with a 65-character room id', { type: 'join', room: 'R'.repeat(65), id: 'e5' }, null],
        ['join with no room', { type: 'join', id: 'e6' }, null],
        ['join a room of others', { type: 'join', room: theirs, id: 'e7' }, 'not_a_participant'],
        ['send to a room of others', { type: 'send', room: theirs, content: 'intrude', id: 'e8' }, 'not_a_participant'],
        ['send to an unknown room', { type: 'send', room: `Nope-${crypto.randomBytes(6).toString('hex')}`, content: 'x', id: 'e9' }, 'no_such_room'],
        ['send with no content', { type: 'send', room, id: 'e10' }, null],
        ['send with content not a string', { type: 'send', room, content: 5, id: 'e11' }, null],
      ];
      for (const [what, frame, code] of cases) {
        const r = await c.request(frame);
        assertErrorFrame(r, code, frame.id, what);
      }
      // Joining an unknown room is refused too (the protocol names no
      // code for it; no_such_room as for send, or not_a_participant).
      const unk = await c.request({ type: 'join', room: `Nope-${crypto.randomBytes(6).toString('hex')}`, id: 'e12' });
      assertErrorFrame(unk, null, 'e12', 'join an unknown room');
      assert.ok(['no_such_room', 'not_a_participant'].includes(unk.code), JSON.stringify(unk));
      assert.deepEqual(await c.request({ type: 'ping', id: 'still' }), { type: 'pong', id: 'still' });
      assert.equal(c.closeInfo, null, 'still open');
      // Nothing was stored by the refused sends, and nothing of the
      // others' room reached this connection.
      const h = await api.history(stranger.token, theirs);
      assert.deepEqual(h.json, [], 'the refused send stored nothing');
      assert.equal(c.frames.filter((f) => f.type === 'msg' || f.type === 'joined').length, 0, c.describe());
    });
  });

  describe('direct messages', () => {
    const dmRoom = (a, b) => `dm:${[a, b].sort().join(':')}`;

    it('dm creates dm:A:B on first use, joins both users\' connections and delivers to them all', { timeout: 20000 }, async () => {
      const u = await api.newUser('dma');
      const v = await api.newUser('dmb');
      const room = dmRoom(u.name, v.name);
      const cu = await connect(u);
      const cv1 = await connect(v);
      const cv2 = await connect(v);
      const ack = await cu.request({ type: 'dm', to: v.name, content: 'hi <b>v</b>', id: 'd1' });
      assert.deepEqual(Object.keys(ack).sort(), ['id', 'room', 'seq', 'ts', 'type'], JSON.stringify(ack));
      assert.equal(ack.type, 'ack');
      assert.equal(ack.room, room);
      assert.equal(ack.seq, 1);
      for (const c of [cu, cv1, cv2]) {
        const j = await c.find((f) => f.type === 'joined' && f.room === room);
        assert.ok(isInt(j.last_seq), JSON.stringify(j));
        const m = await c.find((f) => f.type === 'msg' && f.room === room);
        assertMsgShape(m, room);
        assert.equal(m.from, u.name);
        assert.equal(m.content, 'hi <b>v</b>');
        assert.equal(m.ts, ack.ts);
      }
      // The reply goes the other way in the same room, to connections
      // already joined (no second joined frame).
      const back = await cv1.request({ type: 'dm', to: u.name, content: 'hello u', id: 'd2' });
      assert.equal(back.room, room);
      assert.equal(back.seq, 2);
      for (const c of [cu, cv1, cv2]) {
        await c.waitCount((f) => f.type === 'msg' && f.room === room, 2);
        assertSeqRun(c.msgs(room), 1, 2, c.name);
        assert.equal(c.frames.filter((f) => f.type === 'joined' && f.room === room).length, 1, c.describe());
      }
      // A retry with the same id stores nothing twice.
      const again = await cu.request({ type: 'dm', to: v.name, content: 'hi <b>v</b>', id: 'd1' });
      assert.equal(again.seq, 1);
      assert.equal(again.ts, ack.ts);
      // The room is an ordinary room for both of them over REST.
      const rooms = await api.rooms(v.token);
      const r = rooms.json.find((x) => x.id === room);
      assert.ok(r, `GET /api/rooms lists ${room}: ${rooms.text}`);
      assert.deepEqual([...r.participants].sort(), [u.name, v.name].sort());
      assert.equal(r.last_seq, 2);
      const h = await api.history(u.token, room);
      assert.deepEqual(h.json.map((m) => [m.seq, m.from, m.content]), [[2, v.name, 'hello u'], [1, u.name, 'hi <b>v</b>']]);
      // A third user cannot read it, and nobody can create a dm: room.
      const x = await api.newUser('dmx');
      assert.equal((await api.history(x.token, room)).status, 403);
      assert.equal((await api.createRoom(x.token, dmRoom(x.name, u.name), [u.name])).status, 400);
    });

    it('a user who connects after the first dm joins the room like any other', async () => {
      const u = await api.newUser('dmc');
      const v = await api.newUser('dmd');
      const room = dmRoom(u.name, v.name);
      const cu = await connect(u);
      assert.equal((await cu.request({ type: 'dm', to: v.name, content: 'while you were out' })).room, room);
      const cv = await connect(v);
      const j = await cv.request({ type: 'join', room, since: 0 });
      assert.equal(j.type, 'joined', JSON.stringify(j));
      await cv.waitCount((f) => f.type === 'msg' && f.room === room, 1);
      assert.equal(cv.msgs(room)[0].content, 'while you were out');
    });

    it('dm errors: unknown user, bad fields, too large; the connection stays open', async () => {
      const u = await api.newUser('dme');
      const c = await connect(u);
      assertErrorFrame(await c.request({ type: 'dm', to: 'nobody-here-xyz', content: 'x', id: 'e1' }), 'unknown_user', 'e1', 'unknown user');
      assertErrorFrame(await c.request({ type: 'dm', to: 'Not Valid!', content: 'x', id: 'e2' }), 'unknown_user', 'e2', 'invalid name');
      assertErrorFrame(await c.request({ type: 'dm', content: 'x', id: 'e3' }), null, 'e3', 'no to');
      assertErrorFrame(await c.request({ type: 'dm', to: u.name, id: 'e4' }), null, 'e4', 'no content');
      assertErrorFrame(await c.request({ type: 'dm', to: u.name, content: 'y'.repeat(70000), id: 'e5' }), 'too_large', 'e5', 'too large');
      assert.deepEqual(await c.request({ type: 'ping', id: 'after' }), { type: 'pong', id: 'after' });
      // A note to self is a room of one.
      const self = await c.request({ type: 'dm', to: u.name, content: 'note', id: 'n1' });
      assert.equal(self.room, dmRoom(u.name, u.name));
      await c.waitCount((f) => f.type === 'msg' && f.room === self.room, 1);
      assert.equal(c.closeInfo, null);
    });
  });

  describe('presence', () => {
    it('status, users, who and info; presence events to connections sharing a room, across workers', { timeout: 20000 }, async () => {
      const u = await api.newUser('pra');
      const v = await api.newUser('prb');
      const off = await api.newUser('prc');
      const room = await api.newRoom(u.token, [v.name, off.name]);
      // Several connections of v, so both workers hold one.
      const vs = [];
      for (let i = 0; i < 4; i++) {
        const c = await connect(v);
        assert.equal((await c.request({ type: 'join', room })).type, 'joined');
        vs.push(c);
      }
      const cu = await connect(u);
      assert.equal((await cu.request({ type: 'join', room })).type, 'joined');
      const st = await cu.request({ type: 'status', status: 'busy', id: 's1' });
      assert.deepEqual(st, { type: 'status', status: 'busy', id: 's1' });
      for (const c of vs) await c.find((f) => f.type === 'presence' && f.user === u.name && f.status === 'busy');

      const users = await cu.request({ type: 'users', id: 'l1' });
      assert.equal(users.type, 'users', JSON.stringify(users));
      const byName = new Map(users.users.map((x) => [x.user, x.status]));
      assert.equal(byName.get(u.name), 'busy');
      assert.equal(byName.get(v.name), 'active');
      assert.ok(!byName.has(off.name), 'a user with no connection is not online');

      const who = await vs[0].request({ type: 'who', room, id: 'w1' });
      assert.equal(who.type, 'who');
      assert.equal(who.room, room);
      assert.deepEqual(who.users.map((x) => `${x.user}=${x.status}`).sort(), [`${u.name}=busy`, `${v.name}=active`].sort());

      const info = await vs[1].request({ type: 'info', user: u.name, id: 'i1' });
      assert.deepEqual(Object.keys(info).sort(), ['id', 'online', 'since', 'status', 'type', 'user']);
      assert.equal(info.online, true);
      assert.equal(info.status, 'busy');
      assert.ok(isInt(info.since) && Math.abs(info.since - Date.now()) < 60000 + SLACK_MS, JSON.stringify(info));
      const offInfo = await vs[1].request({ type: 'info', user: off.name });
      assert.equal(offInfo.online, false);
      assert.equal(offInfo.status, 'offline');
      assertErrorFrame(await cu.request({ type: 'info', user: 'nobody-xyz-404', id: 'i2' }), 'unknown_user', 'i2', 'info of nobody');
      assertErrorFrame(await cu.request({ type: 'status', status: 'sleeping', id: 's2' }), null, 's2', 'bad status');
      assertErrorFrame(await cu.request({ type: 'who', room: 'NoSuchRoomXyz', id: 'w2' }), 'no_such_room', 'w2', 'who of no room');
      const stranger = await api.newUser('prd');
      const cs = await connect(stranger);
      assertErrorFrame(await cs.request({ type: 'who', room, id: 'w3' }), 'not_a_participant', 'w3', 'who by a stranger');

      // Back to active, then offline: every v connection hears both, and
      // the stranger (no shared room) hears nothing of u.
      await cu.request({ type: 'status', status: 'active' });
      for (const c of vs) await c.find((f) => f.type === 'presence' && f.user === u.name && f.status === 'active');
      await cu.close();
      for (const c of vs) await c.find((f) => f.type === 'presence' && f.user === u.name && f.status === 'offline');
      const after = await vs[0].request({ type: 'info', user: u.name });
      assert.equal(after.online, false);
      await cs.roundTrip();
      assert.equal(cs.frames.filter((f) => f.type === 'presence' && f.user === u.name).length, 0, cs.describe());
      // Each connection hears each change once, though it may share
      // several rooms with u.
      const busy = vs[0].frames.filter((f) => f.type === 'presence' && f.user === u.name && f.status === 'busy');
      assert.equal(busy.length, 1, vs[0].describe());
    });
  });

  describe('slow reader', () => {
    it('a client that stops reading is closed with 1013, others get everything, and it resumes with since', { timeout: 60000 }, async () => {
      const u = await api.newUser('slow');
      const fast = await api.newUser('fast');
      const room = await api.newRoom(u.token, [fast.name]);
      const slow = await connect(u);
      const normal = await connect(fast);
      for (const c of [slow, normal]) assert.equal((await c.request({ type: 'join', room })).type, 'joined');
      slow.ws._socket.pause();
      // Enough to fill what the kernel buffers (the server's send buffer
      // grows up to tcp_wmem's maximum, the paused reader's receive buffer
      // stays near tcp_rmem's default), then chatd's 1 MiB queue, with
      // room to spare: about 3 MB is not enough where tcp_wmem allows 4 MB.
      const N = slowReaderMessages();
      const body = 'y'.repeat(SLOW_MSG_BYTES - 16);
      const t0 = Date.now();
      // One send at a time: this test is about the slow reader; readers
      // that keep up under concurrent senders are the test below.
      const acks = await restSendMany(api, fast.token, room, N, { concurrency: 1, content: (i) => `${String(i).padStart(6, '0')} ${body}` });
      assert.deepEqual(acks.map((a) => a.seq).sort((x, y) => x - y), range(1, N));
      await normal.waitCount((f) => f.type === 'msg', N, { timeout: 30000 });
      const sendMs = Date.now() - t0;
      await normal.roundTrip();
      assertSeqRun(normal.msgs(room), 1, N, 'the normal client');
      assert.equal(normal.closeInfo, null, 'the normal client stays connected');

      slow.ws._socket.resume();
      let timer;
      const closed = await Promise.race([slow.closed,
        new Promise((resolve) => { timer = setTimeout(() => resolve(null), 10000); })]);
      clearTimeout(timer);
      const got = slow.msgs(room);
      assert.ok(closed, `the slow client was not closed (it got ${got.length} msgs: ${runs(got.map((f) => f.seq))}; ` +
        `the ${N} messages took ${sendMs} ms)`);
      assert.equal(closed.code, 1013, `close ${JSON.stringify(closed)} after ${got.length} msgs`);
      // What it did get is a gapless start of the room.
      const k = got.length;
      assertSeqRun(got, 1, k, 'the slow client before its close');
      const again = await connect(u);
      const j = await again.request({ type: 'join', room, since: k });
      assert.deepEqual([j.type, j.last_seq], ['joined', N]);
      if (k < N) await again.waitCount((f) => f.type === 'msg', N - k, { timeout: 15000 });
      await again.roundTrip();
      assertSeqRun(again.msgs(room), k + 1, N, 'after resuming with since');
      const all = [...got, ...again.msgs(room)];
      assert.deepEqual(all.map((f) => [f.seq, f.content, f.ts]), normal.msgs(room).map((f) => [f.seq, f.content, f.ts]),
        'together, what the normal client got');
    });
  });
});

// The framing rules of RFC 6455 with a raw client, and the size limits, on
// an instance of their own with max_message_bytes = 1000. A test that
// fails may leave a worker in a bad state (it did: a worker that failed a
// connection spun forever), so a failed test gets a fresh chatd for the
// next one and each case is a test of its own, to report each on its own.
describe('idle users become away (away_after = 1s)', () => {
  let srv;
  let api;
  before(async () => {
    srv = await startChatd({ workers: 2, extra: ['away_after = 1s', '[limits]', ...NO_AUTH_LIMITS] });
    api = new Api(srv.port);
  });
  after(async () => {
    if (api) api.close();
    if (srv) await shutdown(srv);
  });

  it('a user whose connections all go quiet is away, and active again when one sends', { timeout: 20000 }, async () => {
    const u = await api.newUser('idle');
    const v = await api.newUser('watch');
    const room = await api.newRoom(u.token, [v.name]);
    const cu1 = await WsClient.connect(srv.port, { token: u.token, name: 'u1' });
    const cu2 = await WsClient.connect(srv.port, { token: u.token, name: 'u2' });
    const cv = await WsClient.connect(srv.port, { token: v.token, name: 'v' });
    try {
      assert.equal((await cv.request({ type: 'join', room })).type, 'joined');
      // v keeps talking, so only u goes quiet; u's second connection
      // talks a little longer than the first.
      const keep = setInterval(() => cv.send({ type: 'ping' }), 250);
      try {
        const t0 = Date.now();
        await sleep(600);
        cu2.send({ type: 'ping' });
        const away = await cv.find((f) => f.type === 'presence' && f.user === u.name && f.status === 'away', { timeout: 5000 });
        assert.ok(away);
        assert.ok(Date.now() - t0 >= 1500, 'away only once the last connection was quiet for away_after');
        assert.equal((await cv.request({ type: 'info', user: u.name })).status, 'away');
        assert.ok(!cv.frames.some((f) => f.type === 'presence' && f.user === v.name && f.status === 'away'), 'v is never away');
        cu1.send({ type: 'ping' });
        await cv.find((f) => f.type === 'presence' && f.user === u.name && f.status === 'active', { timeout: 5000 });
      } finally {
        clearInterval(keep);
      }
    } finally {
      for (const c of [cu1, cu2, cv]) c.terminate();
    }
  });
});

describe('RFC 6455 framing and size limits (raw client; max_message_bytes = 1000)', () => {
  let srv = null;
  let api = null;
  let dirty = true; // the last test did not pass: start a fresh chatd
  const raws = [];
  const clients = [];

  beforeEach(async () => {
    if (!dirty && srv) return;
    if (api) api.close();
    if (srv) await shutdown(srv);
    srv = await startChatd({
      workers: 2,
      server: ['shutdown_timeout = 1s'],
      extra: ['[limits]', ...NO_AUTH_LIMITS, 'max_message_bytes = 1000'],
    });
    api = new Api(srv.port);
    dirty = true;
  });
  afterEach(() => {
    for (const r of raws.splice(0)) r.destroy();
    for (const c of clients.splice(0)) c.terminate();
  });
  after(async () => {
    if (api) api.close();
    if (srv) await shutdown(srv);
  });
  // Runs fn as a test body; only a pass keeps the instance for the next.
  const t = (fn) => async () => {
    dirty = true;
    await fn();
    dirty = false;
  };
  const rawOpen = async (urlPath = '/ws') => {
    const u = await api.newUser('raw');
    const rc = await RawWs.open(srv.port, urlPath, u.token);
    raws.push(rc);
    return rc;
  };

  it('answers a ping with a pong carrying the same payload, and JSON pings with JSON pongs', t(async () => {
    const rc = await rawOpen();
    rc.sendFrame({ opcode: 9, payload: 'hello ping' });
    const pong = await rc.next((f) => f.opcode === 10, { what: 'a pong' });
    assert.equal(pong.payload.toString('utf8'), 'hello ping');
    rc.sendText({ type: 'ping', id: 'raw-1' });
    const f = await rc.next((x) => x.opcode === 1, { what: 'a text frame' });
    assert.ok(f.fin);
    assert.deepEqual(JSON.parse(f.payload.toString('utf8')), { type: 'pong', id: 'raw-1' });
    assertServerFramesUnmasked(rc);
  }));

  const ping = JSON.stringify({ type: 'ping', id: 'x' });
  const framingErrors = [
    ['an unmasked frame', () => [RawWs.frame({ payload: ping, mask: false })]],
    ['RSV1 set', () => [RawWs.frame({ payload: ping, rsv: 4 })]],
    ['RSV3 set', () => [RawWs.frame({ payload: ping, rsv: 1 })]],
    ['opcode 3 (a reserved data opcode)', () => [RawWs.frame({ opcode: 3, payload: ping })]],
    ['opcode 0xB (a reserved control opcode)', () => [RawWs.frame({ opcode: 0xb, payload: 'x' })]],
    ['a continuation frame with no message to continue', () => [RawWs.frame({ opcode: 0, payload: ping })]],
    ['a new text frame inside a fragmented message',
      () => [RawWs.frame({ fin: false, payload: '{"type":' }), RawWs.frame({ payload: ping })]],
    ['a fragmented ping', () => [RawWs.frame({ opcode: 9, fin: false, payload: 'a' })]],
    ['a ping with 126 bytes of payload', () => [RawWs.frame({ opcode: 9, payload: 'p'.repeat(126) })]],
  ];
  for (const [what, frames] of framingErrors) {
    it(`fails the connection with 1002 on ${what}`, t(async () => {
      const rc = await rawOpen();
      for (const b of frames()) rc.write(b);
      await assertFailedWith(rc, 1002, what, srv);
      assert.ok(!rc.frames.some((f) => f.opcode === 1), `${what}: the frame was not served: ${rc.describe()}`);
    }));
  }

  const wrap = (bytes) => Buffer.concat([Buffer.from('{"type":"ping","id":"'), Buffer.from(bytes), Buffer.from('"}')]);
  const badUtf8 = [
    ['byte 0xff', [0xff]],
    ['an overlong "/"', [0xc0, 0xaf]],
    ['a UTF-16 surrogate', [0xed, 0xa0, 0x80]],
    ['a truncated 3-byte sequence', [0xe2, 0x82]],
    ['a code point over U+10FFFF', [0xf4, 0x90, 0x80, 0x80]],
  ];
  for (const [what, bytes] of badUtf8) {
    it(`fails the connection with 1007 on a text frame that is not UTF-8: ${what}`, t(async () => {
      const rc = await rawOpen();
      rc.sendFrame({ opcode: 1, payload: wrap(bytes) });
      await assertFailedWith(rc, 1007, what, srv);
      assert.ok(!rc.frames.some((f) => f.opcode === 1), `${what}: not answered: ${rc.describe()}`);
    }));
  }

  it('closes with 1003 on a binary frame (frames are JSON text)', t(async () => {
    // RFC 6455 7.4.1: 1003, "a type of data it cannot accept", for an
    // endpoint that understands only text.
    const rc = await rawOpen();
    rc.sendFrame({ opcode: 2, payload: JSON.stringify({ type: 'ping', id: 'bin' }) });
    await assertFailedWith(rc, 1003, 'a binary frame', srv);
    assert.ok(!rc.frames.some((f) => f.opcode === 1), `not answered: ${rc.describe()}`);
  }));

  it('reassembles a text message sent in 3 fragments, answering a ping between them', t(async () => {
    const rc = await rawOpen();
    // Split inside multi-byte characters: only the whole message must be
    // valid UTF-8 (RFC 6455 8.1).
    const msg = Buffer.from(JSON.stringify({ type: 'ping', id: 'frag-é-😀' }), 'utf8');
    const e = msg.indexOf(Buffer.from('é')) + 1;
    const smile = msg.indexOf(Buffer.from('😀')) + 2;
    rc.sendFrame({ opcode: 1, fin: false, payload: msg.subarray(0, e) });
    rc.sendFrame({ opcode: 9, payload: 'between' });
    rc.sendFrame({ opcode: 0, fin: false, payload: msg.subarray(e, smile) });
    rc.sendFrame({ opcode: 0, fin: true, payload: msg.subarray(smile) });
    // The pong answers the ping at once; the reply can only come once the
    // last fragment is in, so after it.
    const pong = await rc.next((f) => f.opcode !== 9, { what: 'the pong' });
    assert.equal(pong.opcode, 10, `the pong first: ${rc.describe()}`);
    assert.equal(pong.payload.toString('utf8'), 'between');
    const reply = await rc.next((f) => f.opcode !== 9, { what: 'the reply to the whole message' });
    assert.equal(reply.opcode, 1, rc.describe());
    assert.deepEqual(JSON.parse(reply.payload.toString('utf8')), { type: 'pong', id: 'frag-é-😀' });
    // Still open and in step afterwards.
    rc.sendText({ type: 'ping', id: 'after' });
    const next = await rc.next((f) => f.opcode === 1);
    assert.deepEqual(JSON.parse(next.payload.toString('utf8')), { type: 'pong', id: 'after' });
    assertServerFramesUnmasked(rc);
  }));

  for (const [what, payload, code] of [['code 1000 and a reason', Buffer.from([0x03, 0xe8, 0x62, 0x79, 0x65]), 1000],
    ['code 4000', Buffer.from([0x0f, 0xa0]), 4000], ['no code', Buffer.alloc(0), null]]) {
    it(`answers a close frame (${what}) with a close frame and ends the TCP connection`, t(async () => {
      const rc = await rawOpen();
      rc.sendText({ type: 'ping', id: 'before-close' });
      await rc.next((f) => f.opcode === 1);
      rc.sendFrame({ opcode: 8, payload });
      const f = await rc.next((x) => x.opcode === 8, { what: `the close answer (${what})` });
      // RFC 6455 5.5.1: the answer typically echoes the code; to a close
      // with no code, one with none (or 1000, a normal closure).
      const got = closeOf(f).code;
      if (code === null) assert.ok(got === null || got === 1000, `${what}: answered ${got}`);
      else assert.equal(got, code, `${what}: the answer echoes the code`);
      assert.ok(await rc.waitEnd(5000), `${what}: the TCP connection ends`);
    }));
  }

  it('closes with 1009 on a frame over the size limit', t(async () => {
    // Well over any frame a 1000-byte message needs, even escaped.
    const rc = await rawOpen();
    rc.sendText({ type: 'send', room: 'Whatever', content: 'z'.repeat(200 * 1024), id: 'huge' });
    await assertFailedWith(rc, 1009, 'a 200 KB frame', srv);
  }));

  it('closes with 1009 on a frame header that declares 64 MiB', t(async () => {
    // The declared length is enough to know; the payload never comes.
    const rc = await rawOpen();
    rc.write(RawWs.frame({ opcode: 1, payload: '{"type":"ping"', length: 64 * 1024 * 1024 }));
    await assertFailedWith(rc, 1009, 'a frame header declaring 64 MiB', srv);
  }));

  it('refuses content over max_message_bytes with too_large (bytes, not characters); up to it is taken, even escaped', t(async () => {
    const u = await api.newUser('big');
    const room = await api.newRoom(u.token);
    const c = await WsClient.connect(srv.port, { token: u.token });
    clients.push(c);
    assert.equal((await c.request({ type: 'join', room })).type, 'joined');
    const over = [
      ['1001 ASCII bytes', 'a'.repeat(1001)],
      ['501 "é" (1002 bytes, 501 characters)', 'é'.repeat(501)],
      ['1500 ASCII bytes', 'b'.repeat(1500)],
    ];
    for (const [what, content] of over) {
      const id = `big-${over.findIndex((x) => x[0] === what)}`;
      assertErrorFrame(await c.request({ type: 'send', room, content, id }), 'too_large', id, what);
    }
    await c.roundTrip();
    assert.equal(c.closeInfo, null, 'still open');
    const ok = [
      ['1000 ASCII bytes', 'a'.repeat(1000)],
      ['500 "é" (1000 bytes)', 'é'.repeat(500)],
      // 1000 bytes of content that JSON writes as \u0001: a frame of
      // 6000+ bytes, still a message within the limit.
      ['1000 control characters', '\u0001'.repeat(1000)],
      ['500 quotes and 500 backslashes', '"\\'.repeat(500)],
    ];
    for (const [what, content] of ok) {
      const ack = await c.request({ type: 'send', room, content, id: `ok-${ok.findIndex((x) => x[0] === what)}` });
      assert.equal(ack.type, 'ack', `${what}: ${JSON.stringify(ack).slice(0, 200)}`);
      const m = await c.find((f) => f.type === 'msg' && f.seq === ack.seq);
      assert.equal(m.content, content, what);
    }
    const h = await api.historyAll(u.token, room);
    assert.equal(h.length, ok.length, 'only the ones within the limit were stored');
  }));
});
describe('worker killed with SIGKILL', () => {
  it('its clients are disconnected, reconnect, join with since and end up with every message once', { timeout: 60000 }, async () => {
    const srv = await startChatd({ workers: 2, extra: ['[limits]', ...NO_AUTH_LIMITS] });
    const api = new Api(srv.port);
    const sendApi = new Api(srv.port, { keepAlive: false });
    const conns = [];
    try {
      const users = [];
      for (let i = 0; i < 4; i++) users.push(await api.newUser('kill'));
      const room = await api.newRoom(users[0].token, users.slice(1).map((x) => x.name));
      // A "client" is one logical reader; it may go through several
      // connections, and keeps every msg it saw across them.
      const readers = [];
      const openFor = async (r) => {
        const c = await WsClient.connect(srv.port, { token: r.user.token, timeout: 2000, name: `reader ${r.n}` });
        conns.push(c);
        const j = await c.request({ type: 'join', room, ...(r.lastSeq === null ? {} : { since: r.lastSeq }) });
        if (j.type !== 'joined') throw new Error(`join: ${JSON.stringify(j)}`);
        r.c = c;
        c.ws.on('message', () => {
          const f = c.frames[c.frames.length - 1];
          if (f && f.type === 'msg' && f.room === room) {
            r.seen.push(f);
            r.lastSeq = f.seq;
          }
        });
        // Any msgs that arrived with the joined frame, before the listener.
        for (const f of c.msgs(room)) { r.seen.push(f); r.lastSeq = f.seq; }
      };
      for (let i = 0; i < 16; i++) {
        const r = { n: i, user: users[i % users.length], seen: [], lastSeq: null, c: null, drops: 0 };
        readers.push(r);
        await openFor(r);
        r.lastSeq = 0;
      }
      let where = workersOf(srv, readers.map((r) => r.c));
      assert.ok(where.every(Boolean), `every connection found in a worker: ${where}`);
      assert.equal(new Set(where).size, 2, `readers on both workers: ${where}`);
      const victim = where[0];

      // The sender: numbered messages over REST, a new connection each
      // (so they spread over the workers), every failure retried with the
      // same id until acked.
      let stop = false;
      const acked = new Map(); // seq -> i
      let next = 0;
      const sender = (async () => {
        while (!stop) {
          const i = next++;
          for (;;) {
            try {
              const r = await sendApi.send(users[0].token, room, `k${i}`, `k${i}`, { timeout: 3000 });
              if (r.status === 200) { acked.set(r.json.seq, i); break; }
            } catch { /* retried */ }
            await sleep(20);
          }
          await sleep(2);
        }
      })();

      // Reconnect loop for each reader whose connection drops.
      const reconnecting = new Set();
      const dropped = new Set();
      for (const r of readers) {
        const watch = (c) => c.closed.then(async () => {
          if (stop) return;
          dropped.add(r.n);
          r.drops++;
          reconnecting.add(r.n);
          for (;;) {
            try { await openFor(r); break; } catch { await sleep(50); }
          }
          reconnecting.delete(r.n);
          watch(r.c);
        });
        watch(r.c);
      }

      await sleep(1000);
      const before = acked.size;
      assert.ok(before > 10, `the sender is running (${before} acked)`);
      process.kill(victim, 'SIGKILL');
      const onVictim = readers.filter((r, i) => where[i] === victim).map((r) => r.n);
      // Wait until all the victim's readers are back, then let the sender run on.
      const deadline = Date.now() + 20000;
      while ((dropped.size < onVictim.length || reconnecting.size) && Date.now() < deadline) await sleep(50);
      await sleep(1500);
      stop = true;
      await sender;
      const lastSeq = Math.max(...acked.keys());
      await Promise.all(readers.map(async (r) => {
        const end = Date.now() + 10000;
        while (r.lastSeq < lastSeq && Date.now() < end) await sleep(20);
      }));

      assert.deepEqual([...dropped].sort((x, y) => x - y), onVictim,
        `exactly the readers on the killed worker ${victim} were disconnected (where: ${where})`);
      for (const r of readers) {
        assertSeqRun(r.seen, 1, lastSeq, `reader ${r.n} (worker ${where[r.n]}, ${r.drops} drop(s))`);
        for (const f of r.seen) assert.equal(f.content, `k${acked.get(f.seq)}`, `reader ${r.n}: seq ${f.seq}`);
      }
      assert.deepEqual([...acked.keys()].sort((x, y) => x - y), range(1, lastSeq), 'acked seqs have no gap');
    } finally {
      for (const c of conns) c.terminate();
      api.close();
      sendApi.close();
      await shutdown(srv);
    }
  });
});

describe('SIGTERM', () => {
  it('closes every WebSocket with 1001', { timeout: 30000 }, async () => {
    const SHUTDOWN_S = 3;
    const srv = await startChatd({ workers: 2, server: [`shutdown_timeout = ${SHUTDOWN_S}s`], extra: ['[limits]', ...NO_AUTH_LIMITS] });
    const api = new Api(srv.port);
    const cs = [];
    try {
      const u = await api.newUser('term');
      const room = await api.newRoom(u.token);
      for (let i = 0; i < 10; i++) {
        const c = await WsClient.connect(srv.port, { token: u.token, path: i % 2 ? `/ws/${room}` : '/ws' });
        cs.push(c);
        await c.roundTrip();
      }
      const where = workersOf(srv, cs);
      assert.equal(new Set(where.filter(Boolean)).size, 2, `connections on both workers: ${where}`);
      api.close();
      const t0 = Date.now();
      srv.proc.kill('SIGTERM');
      const within = (p, ms) => {
        let timer;
        return Promise.race([p, new Promise((resolve) => { timer = setTimeout(() => resolve(null), ms); })])
          .finally(() => clearTimeout(timer));
      };
      const results = await Promise.all(cs.map((c) => within(c.closed, 15000)));
      const ms = Date.now() - t0;
      assert.deepEqual(results.map((r) => r && r.code), cs.map(() => 1001), `close codes (after ${ms} ms): ${JSON.stringify(results)}`);
      // And chatd then exits, within shutdown_timeout (chatd.conf) and
      // some slack. Only one SIGTERM is sent: shutdown() below sends none
      // to a chatd that has exited.
      const exited = await within(srv.exited, (SHUTDOWN_S + 5) * 1000);
      assert.ok(exited, `chatd still running ${SHUTDOWN_S + 5} s after SIGTERM`);
    } finally {
      for (const c of cs) c.terminate();
      api.close();
      await shutdown(srv);
    }
  });
});
