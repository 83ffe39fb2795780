// A small JSON client for chatd's REST API (PROTOCOL.md, "HTTP"), written
// from the protocol alone so a server bug cannot hide behind a matching
// client bug: node:http with a keep-alive agent, helpers to register and
// log in, JWT decoding and forging, and a way to start chatd again on the
// data directory of one that was stopped.
'use strict';
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { CHATD, children, sleep } = require('./chatd');

// Every user name and room id the helpers made up, so a test can check that
// none of them leaks somewhere it should not (the metrics page).
const made = { users: [], rooms: [] };
let counter = 0;

function randomLetters(n) {
  const abc = 'abcdefghijklmnopqrstuvwxyz';
  const bytes = crypto.randomBytes(n);
  let s = '';
  for (const b of bytes) s += abc[b % abc.length];
  return s;
}

// A fresh user name, valid for ^[a-z0-9_.-]{1,32}$ and unlikely to occur by
// chance in any other text.
function uniqueName(prefix = 'u') {
  const name = `${prefix}-${++counter}${randomLetters(7)}`;
  assert.ok(/^[a-z0-9_.-]{1,32}$/.test(name), `test bug: bad generated name ${name}`);
  made.users.push(name);
  return name;
}

// A fresh room id, valid for ^[A-Za-z0-9_.:-]{1,64}$.
function uniqueRoom(prefix = 'Room') {
  const id = `${prefix}-${++counter}${randomLetters(7)}`;
  assert.ok(/^[A-Za-z0-9_.:-]{1,64}$/.test(id), `test bug: bad generated room ${id}`);
  made.rooms.push(id);
  return id;
}

// One HTTP exchange. `body`: an object (sent as JSON), a string or a Buffer
// (sent as is). Resolves {status, headers, text, json}; json is undefined
// when the body is not JSON. Rejects on connection errors and timeouts.
function request(port, method, urlPath, opts = {}) {
  const { body, token, headers = {}, agent, localAddress, timeout = 10000 } = opts;
  return new Promise((resolve, reject) => {
    const h = { ...headers };
    let data = null;
    if (body !== undefined) {
      data = Buffer.isBuffer(body) ? body
        : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body), 'utf8');
      if (!Object.keys(h).some((k) => k.toLowerCase() === 'content-type')) h['Content-Type'] = 'application/json';
      h['Content-Length'] = data.length;
    }
    if (token !== undefined && token !== null) h.Authorization = `Bearer ${token}`;
    const req = http.request({ host: '127.0.0.1', port, method, path: urlPath, headers: h, agent, localAddress });
    req.setTimeout(timeout, () => req.destroy(new Error(`timeout after ${timeout} ms: ${method} ${urlPath}`)));
    req.on('error', reject);
    req.on('response', (res) => {
      const chunks = [];
      res.on('data', (d) => chunks.push(d));
      res.on('error', reject);
      res.on('close', () => { if (!res.complete) reject(new Error(`response cut short: ${method} ${urlPath}`)); });
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json;
        try { json = JSON.parse(text); } catch { json = undefined; }
        resolve({ status: res.statusCode, headers: res.headers, text, json });
      });
    });
    req.end(data);
  });
}

// A client bound to one chatd port. keepAlive false opens a new connection
// per request (so requests spread over the workers); localAddress picks the
// source address (any of 127.0.0.0/8 works on Linux), to act as another
// client machine for per-address limits.
// The unlabelled samples of a /metrics body: { name without chatd_: number }.
function parseMetrics(text) {
  const out = {};
  for (const line of text.split('\n')) {
    const m = line.match(/^chatd_([a-z0-9_]+) (\d+)$/);
    if (m) out[m[1]] = Number(m[2]);
  }
  return out;
}

class Api {
  constructor(port, { keepAlive = true, maxSockets = 8, localAddress } = {}) {
    this.port = port;
    this.localAddress = localAddress;
    this.agent = keepAlive ? new http.Agent({ keepAlive: true, maxSockets }) : false;
  }

  req(method, urlPath, opts = {}) {
    return request(this.port, method, urlPath, { agent: this.agent, localAddress: this.localAddress, ...opts });
  }

  get(urlPath, token, opts = {}) { return this.req('GET', urlPath, { token, ...opts }); }

  post(urlPath, body, token, opts = {}) { return this.req('POST', urlPath, { body, token, ...opts }); }

  register(username, password) { return this.post('/api/register', { username, password }); }

  login(username, password) { return this.post('/api/login', { username, password }); }

  rooms(token) { return this.get('/api/rooms', token); }

  createRoom(token, id, participants = []) { return this.post('/api/room', { id, participants }, token); }

  // id is left out of the body when undefined (it is optional).
  send(token, room, content, id, opts = {}) {
    const body = id === undefined ? { room, content } : { room, content, id };
    return this.post('/api/send', body, token, opts);
  }

  history(token, room, query = '') {
    return this.get(`/api/history/${room}${query ? `?${query}` : ''}`, token);
  }

  // A counter or gauge of GET /metrics by its name without chatd_
  // (e.g. 'hash_boosts_total'); throws if chatd does not report it.
  async metric(name) {
    const v = parseMetrics((await this.get('/metrics')).text)[name];
    if (v === undefined) throw new Error(`chatd_${name} not in /metrics`);
    return v;
  }

  // Registers and logs in a new user; throws unless both succeed.
  async newUser(prefix = 'u') {
    const name = uniqueName(prefix);
    const password = `pw-${crypto.randomBytes(6).toString('hex')}`;
    const r = await this.register(name, password);
    if (r.status !== 201) throw new Error(`register ${name}: ${r.status} ${r.text}`);
    const l = await this.login(name, password);
    if (l.status !== 200 || !l.json || typeof l.json.token !== 'string') {
      throw new Error(`login ${name}: ${l.status} ${l.text}`);
    }
    return { name, password, token: l.json.token };
  }

  // Creates a room and throws unless chatd answers 201.
  async newRoom(token, participants = [], prefix = 'Room') {
    const id = uniqueRoom(prefix);
    const r = await this.createRoom(token, id, participants);
    if (r.status !== 201) throw new Error(`create room ${id}: ${r.status} ${r.text}`);
    return id;
  }

  // Sends and throws unless acked with 200; returns the ack body.
  async sendOk(token, room, content, id) {
    const r = await this.send(token, room, content, id);
    if (r.status !== 200 || !r.json) throw new Error(`send to ${room}: ${r.status} ${r.text}`);
    return r.json;
  }

  // The whole history of a room, newest first, read 500 at a time with
  // `before`. Throws if a page does not move strictly down.
  async historyAll(token, room) {
    const all = [];
    let before = null;
    for (;;) {
      const r = await this.history(token, room, `limit=500${before === null ? '' : `&before=${before}`}`);
      if (r.status !== 200 || !Array.isArray(r.json)) throw new Error(`history ${room}: ${r.status} ${r.text}`);
      if (r.json.length === 0) return all;
      const last = r.json[r.json.length - 1].seq;
      if (before !== null && !(last < before)) throw new Error(`history ${room}: page before=${before} ends at ${last}`);
      all.push(...r.json);
      if (last <= 1) return all;
      before = last;
    }
  }

  close() { if (this.agent) this.agent.destroy(); }
}

// Checks an error answer: the status, then {"error":{"code","message"}}
// with a snake_case code (the given one, when the protocol names it) and a
// non-empty human message.
function assertError(r, status, code, what = '') {
  const ctx = `${what} -> ${r.status} ${r.text.slice(0, 300)}`;
  assert.equal(r.status, status, ctx);
  assert.ok(r.json && typeof r.json.error === 'object' && r.json.error !== null, `error object: ${ctx}`);
  if (code) assert.equal(r.json.error.code, code, ctx);
  else assert.match(String(r.json.error.code), /^[a-z][a-z0-9_]*$/, `snake_case code: ${ctx}`);
  assert.equal(typeof r.json.error.message, 'string', `message is a string: ${ctx}`);
  assert.ok(r.json.error.message.length > 0, `message is not empty: ${ctx}`);
}

function assertStatus(r, status, what = '') {
  assert.equal(r.status, status, `${what} -> ${r.status} ${r.text.slice(0, 300)}`);
}

const b64u = (s) => Buffer.from(s).toString('base64url');

// Splits a JWT and decodes its parts; throws on anything malformed.
function decodeJwt(token) {
  const parts = token.split('.');
  assert.equal(parts.length, 3, `a JWT has three parts: ${token}`);
  for (const p of parts) assert.match(p, /^[A-Za-z0-9_-]*$/, `base64url without padding: ${token}`);
  return {
    parts,
    header: JSON.parse(Buffer.from(parts[0], 'base64url').toString('utf8')),
    payload: JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8')),
    sig: Buffer.from(parts[2], 'base64url'),
  };
}

// An HS256 JWT over the given header and payload, signed with `key`.
function signJwt(header, payload, key) {
  const input = `${b64u(JSON.stringify(header))}.${b64u(JSON.stringify(payload))}`;
  return `${input}.${crypto.createHmac('sha256', key).update(input).digest('base64url')}`;
}

// The journal process of a chatd: the master's child whose command line
// is exactly "chatd: journal". Null while there is none (ps exits 1 when
// the master has no child at all).
function journalPid(masterPid) {
  let kids;
  try { kids = children(masterPid); } catch { return null; }
  const j = kids.filter((c) => c.args.trim() === 'chatd: journal');
  return j.length === 1 ? j[0].pid : null;
}

// Stops a chatd (from startChatd or restartOn) with SIGTERM, SIGKILL after
// 20 s, and removes its directory unless keepDir. Resolves {code, signal},
// or null when it had to be killed. (Unlike srv.stop(), it clears its timer,
// so the test process can exit as soon as chatd has.)
async function shutdown(srv, { keepDir = false } = {}) {
  const { proc } = srv;
  if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
  let timer;
  const late = new Promise((resolve) => { timer = setTimeout(() => resolve(null), 20000); });
  const r = await Promise.race([srv.exited, late]);
  clearTimeout(timer);
  if (!r) {
    proc.kill('SIGKILL');
    await srv.exited;
  }
  if (!keepDir) fs.rmSync(srv.dir, { recursive: true, force: true });
  return r;
}

// Starts chatd again with the configuration file (and so the port and the
// data_dir) of `srv`, a server from startChatd() that has been stopped.
// Returns an object like startChatd's, to be stopped with shutdown().
async function restartOn(srv, { workers = 2 } = {}) {
  const logPath = path.join(srv.dir, `chatd-restart-${Date.now()}.log`);
  const log = fs.openSync(logPath, 'w');
  const proc = spawn(CHATD, ['-c', srv.confPath], { stdio: ['ignore', log, log] });
  fs.closeSync(log);
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  const again = {
    port: srv.port, dir: srv.dir, confPath: srv.confPath, proc, exited, pid: proc.pid,
    url: `http://127.0.0.1:${srv.port}`,
    log: () => fs.readFileSync(logPath, 'utf8'),
  };
  const deadline = Date.now() + 15000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`chatd exited at restart:\n${again.log()}`);
    try {
      const r = await request(srv.port, 'GET', '/healthz', { agent: false, timeout: 1000 });
      const n = children(proc.pid).filter((c) => /chatd: worker/.test(c.args)).length;
      if (r.status === 200 && n === workers) break;
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      await exited;
      throw new Error(`chatd did not come up again:\n${again.log()}`);
    }
    await sleep(50);
  }
  return again;
}

module.exports = {
  Api, parseMetrics, request, made, uniqueName, uniqueRoom, assertError, assertStatus,
  b64u, decodeJwt, signJwt, journalPid, restartOn, shutdown,
};
