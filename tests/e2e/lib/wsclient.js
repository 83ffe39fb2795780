// A small promise-based WebSocket client for chatd's real-time protocol
// (PROTOCOL.md, "WebSocket"), built on the `ws` package so that a server
// bug cannot hide behind a matching client bug: connect with a token (in
// the Authorization header or as ?token=), send JSON frames, wait for the
// next frame that matches a predicate (with a timeout), keep every frame
// received, and observe the close code.
//
// Frames are kept in arrival order in `frames`. `next()` reads them with a
// cursor: it returns the first frame at or after the cursor that matches,
// and moves the cursor past it (frames skipped on the way stay in
// `frames`). `waitFor()` searches from any index without moving the cursor.
'use strict';
const WebSocket = require('ws');

const DEFAULT_TIMEOUT_MS = 5000;

let idCounter = 0;
const newId = (prefix = 'q') => `${prefix}${++idCounter}`;

const short = (x, n = 300) => {
  const s = typeof x === 'string' ? x : JSON.stringify(x);
  return s.length > n ? `${s.slice(0, n)}...` : s;
};

class WsClient {
  constructor(ws, name) {
    this.ws = ws;
    this.name = name;
    this.frames = []; // parsed server frames, in arrival order
    this.bad = []; // text frames that were not JSON, binary frames
    this.cursor = 0;
    this.closeInfo = null; // {code, reason} once closed
    this.waiters = new Set();
    this.closed = new Promise((resolve) => { this.resolveClosed = resolve; });
    ws.on('message', (data, isBinary) => this.onMessage(data, isBinary));
    ws.on('close', (code, reason) => {
      this.closeInfo = { code, reason: reason.toString('utf8') };
      this.resolveClosed(this.closeInfo);
      for (const w of [...this.waiters]) w.check(true);
    });
    // Errors after the upgrade (a reset, a framing error by the server)
    // end in 'close' too; keep the error for the messages.
    ws.on('error', (e) => { this.error = e; });
  }

  // Opens a WebSocket to chatd. opts: path ('/ws' or '/ws/room'), token,
  // via ('header' or 'query'), headers (extra), timeout, name (for
  // messages). Resolves a WsClient once open; rejects with an Error that
  // carries status, headers and body when the server answers the upgrade
  // with anything but 101.
  static connect(port, opts = {}) {
    const { path = '/ws', token, via = 'header', headers = {}, timeout = DEFAULT_TIMEOUT_MS, name = path } = opts;
    let url = `ws://127.0.0.1:${port}${path}`;
    const h = { ...headers };
    if (token !== undefined && token !== null) {
      if (via === 'query') url += `${path.includes('?') ? '&' : '?'}token=${encodeURIComponent(token)}`;
      else h.Authorization = `Bearer ${token}`;
    }
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { headers: h, handshakeTimeout: timeout, perMessageDeflate: false });
      const client = new WsClient(ws, name);
      let settled = false;
      const fail = (e) => {
        if (settled) return;
        settled = true;
        reject(e);
      };
      ws.once('open', () => {
        if (settled) return;
        settled = true;
        resolve(client);
      });
      ws.once('unexpected-response', (req, res) => {
        const chunks = [];
        res.on('data', (d) => chunks.push(d));
        res.on('error', () => {});
        const done = () => {
          const body = Buffer.concat(chunks).toString('utf8');
          let json;
          try { json = JSON.parse(body); } catch { json = undefined; }
          const e = new Error(`upgrade of ${path} answered ${res.statusCode}: ${short(body)}`);
          Object.assign(e, { status: res.statusCode, headers: res.headers, body, json });
          req.destroy();
          fail(e);
        };
        res.on('end', done);
        res.on('close', done);
      });
      ws.once('error', (e) => fail(e));
      ws.once('close', (code) => fail(new Error(`closed with ${code} before open`)));
    });
  }

  onMessage(data, isBinary) {
    let f;
    if (isBinary) {
      f = { __binary: Buffer.from(data) };
      this.bad.push(f);
    } else {
      const text = data.toString('utf8');
      try {
        f = JSON.parse(text);
      } catch {
        f = { __raw: text };
        this.bad.push(f);
      }
    }
    this.frames.push(f);
    for (const w of [...this.waiters]) w.check(false);
  }

  get open() { return this.ws.readyState === WebSocket.OPEN; }

  // Sends an object as a JSON text frame (a string is sent as is).
  send(frame) {
    this.ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
  }

  // The first frame at index >= from that matches pred, waiting up to
  // timeout ms for it. Resolves {frame, index}; rejects on timeout or when
  // the connection closes first, with the frames seen in the message.
  waitFor(pred, { from = 0, timeout = DEFAULT_TIMEOUT_MS, what = 'a frame' } = {}) {
    return new Promise((resolve, reject) => {
      let scanned = from;
      const w = {
        check: (closing) => {
          for (; scanned < this.frames.length; scanned++) {
            if (pred(this.frames[scanned])) {
              finish();
              resolve({ frame: this.frames[scanned], index: scanned });
              return;
            }
          }
          if (closing || this.closeInfo) {
            finish();
            reject(new Error(`${this.name}: closed (${short(this.closeInfo)}) while waiting for ${what}; ` +
              `frames since ${from}: ${this.describe(from)}`));
          }
        },
      };
      const timer = setTimeout(() => {
        finish();
        reject(new Error(`${this.name}: waited ${timeout} ms for ${what} in vain; frames since ${from}: ${this.describe(from)}`));
      }, timeout);
      const finish = () => { clearTimeout(timer); this.waiters.delete(w); };
      this.waiters.add(w);
      w.check(false);
    });
  }

  // The next frame after the cursor that matches pred (any frame when
  // pred is left out); moves the cursor past it.
  async next(pred = () => true, opts = {}) {
    const { frame, index } = await this.waitFor(pred, { from: this.cursor, ...opts });
    this.cursor = index + 1;
    return frame;
  }

  // The very next frame after the cursor, whatever it is; moves the cursor.
  async nextAny(opts = {}) { return this.next(() => true, opts); }

  // The first frame received so far or later (from index 0) that matches
  // pred; leaves the cursor alone.
  async find(pred, opts = {}) {
    const { frame } = await this.waitFor(pred, { from: 0, ...opts });
    return frame;
  }

  // Sends frame with an id (a fresh one unless it has one) and resolves
  // the first frame received after the send that carries the same id.
  // Leaves the cursor alone: frames that arrive around the reply (a msg
  // before its ack, say) are still there for next().
  async request(frame, opts = {}) {
    const f = { ...frame };
    if (f.id === undefined) f.id = newId();
    const from = this.frames.length;
    this.send(f);
    const { frame: reply } = await this.waitFor((x) => x && x.id === f.id,
      { from, what: `the reply to ${short(f, 120)}`, ...opts });
    return reply;
  }

  // Waits until at least n frames (from index `from`) match pred.
  async waitCount(pred, n, { from = 0, timeout = DEFAULT_TIMEOUT_MS, what = 'frames' } = {}) {
    const deadline = Date.now() + timeout;
    let seen = 0;
    let at = from;
    while (seen < n) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${this.name}: ${seen} of ${n} ${what} within ${timeout} ms`);
      try {
        const r = await this.waitFor(pred, { from: at, timeout: left, what });
        seen++;
        at = r.index + 1;
      } catch (e) {
        throw new Error(`${this.name}: ${seen} of ${n} ${what}: ${e.message.slice(0, 2000)}`);
      }
    }
  }

  // The msg frames received for room, in arrival order.
  msgs(room) { return this.frames.filter((f) => f && f.type === 'msg' && f.room === room); }

  // A ping/pong round trip: a reply to it proves every frame the server
  // queued before it has arrived (frames on one connection keep their order).
  async roundTrip(opts = {}) {
    const pong = await this.request({ type: 'ping' }, opts);
    if (pong.type !== 'pong') throw new Error(`${this.name}: ping answered with ${short(pong)}`);
    return pong;
  }

  describe(from = 0, max = 20) {
    const fs = this.frames.slice(from);
    const shown = fs.slice(-max).map((f) => short(f, 200));
    return `${fs.length} frame(s)${fs.length > max ? ` (last ${max})` : ''}: [${shown.join(', ')}]`;
  }

  // Normal close; resolves the close info once the server has answered.
  async close(code = 1000) {
    if (!this.closeInfo) {
      try { this.ws.close(code); } catch { /* already closing */ }
    }
    let timer;
    const late = new Promise((resolve) => { timer = setTimeout(() => resolve(null), 3000); });
    const r = await Promise.race([this.closed, late]);
    clearTimeout(timer);
    if (!r) this.ws.terminate();
    return r;
  }

  terminate() { this.ws.terminate(); }
}

module.exports = { WsClient, newId, DEFAULT_TIMEOUT_MS };
