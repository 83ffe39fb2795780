// chatadm against a real chatd (chatadm(8)): every command's answer, text
// and JSON, exit statuses and reasons, the socket's mode and peer check,
// users/rooms/kick seen through real WebSocket clients, check and reload
// (invalid: file:line and nothing changed; valid: settings and the number
// of workers applied, by chatadm and by SIGHUP), reopen of the access log,
// stop, promote on a real standby, and an upgrade refused. (Reloads and
// an upgrade under load: reload.test.js.)
'use strict';
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { startChatd, sleep, waitFor } = require('./lib/chatd');
const { Api } = require('./lib/api');
const { WsClient } = require('./lib/wsclient');

const BUILD = process.env.BUILD_DIR || path.resolve(__dirname, '../../build');
const CHATADM = path.join(BUILD, 'chatadm');

function sockOf(srv) { return path.join(srv.dir, 'var', 'chatd.sock'); }

// Runs chatadm; stdout is a pipe, so the output must be plain.
function adm(srv, ...args) {
  const r = spawnSync(CHATADM, ['-s', sockOf(srv), ...args], { encoding: 'utf8', timeout: 60000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function admJson(srv, ...args) {
  const r = adm(srv, '--json', ...args);
  assert.equal(r.code, 0, `chatadm ${args.join(' ')}: ${r.err}`);
  return JSON.parse(r.out);
}

// "key: value" lines of a plain answer.
function fields(text) {
  const o = {};
  for (const line of text.split('\n')) {
    const m = line.match(/^([A-Za-z0-9_.]+): (.*)$/);
    if (m) o[m[1]] = m[2];
  }
  return o;
}


function setConf(srv, lines) {
  const base = fs.readFileSync(srv.confPath, 'utf8').split('\n')
    .filter((l) => !/^(workers|idle_timeout|max_connections|access_log|bogus)\b/.test(l));
  const i = base.indexOf('[server]');
  base.splice(i + 1, 0, ...lines);
  fs.writeFileSync(srv.confPath, base.join('\n'));
}

let srv;
let api;
before(async () => {
  srv = await startChatd({ workers: 2 });
  api = new Api(srv.port);
});
after(async () => {
  if (api) api.close();
  if (srv) await srv.cleanup();
});

test('the admin socket is 0660 and chatadm finds it from the configuration', () => {
  const st = fs.statSync(sockOf(srv));
  assert.ok(st.isSocket());
  assert.equal(st.mode & 0o777, 0o660);
  const r = spawnSync(CHATADM, ['-c', srv.confPath, 'status'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(fields(r.stdout).workers, '2');
  const e = spawnSync(CHATADM, ['status'], { encoding: 'utf8', env: { ...process.env, CHATD_SOCKET: sockOf(srv) } });
  assert.equal(e.status, 0, e.stderr);
});

test('a peer that is neither root nor chatd\'s user is refused', { skip: process.getuid() !== 0 && 'needs root' }, () => {
  const sock = sockOf(srv);
  // Let the path and the file through, so SO_PEERCRED alone decides.
  const dirs = [srv.dir, path.dirname(sock)].map((d) => [d, fs.statSync(d).mode & 0o777]);
  for (const [d, mode] of dirs) fs.chmodSync(d, mode | 0o001);
  fs.chmodSync(sock, 0o666);
  try {
    const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', CHATADM, '-s', sock, 'status'],
      { encoding: 'utf8' });
    assert.equal(r.status, 1, r.stdout + r.stderr);
    assert.match(r.stderr, /permission denied/);
    assert.equal(r.stdout, '');
  } finally {
    fs.chmodSync(sock, 0o660);
    for (const [d, mode] of dirs) fs.chmodSync(d, mode);
  }
});

test('status, stats and workers: plain text off a terminal, JSON with --json', () => {
  const s = adm(srv, 'status');
  assert.equal(s.code, 0, s.err);
  assert.doesNotMatch(s.out, /\x1b/);
  const f = fields(s.out);
  assert.match(f.version, /^\d+\.\d+\.\d+$/);
  assert.equal(f.role, 'primary');
  assert.equal(f.workers, '2');
  assert.equal(f.workers_ready, '2');
  assert.equal(f.pid, String(srv.pid));
  assert.equal(f.state, 'serving');

  const st = adm(srv, 'stats');
  assert.equal(st.code, 0, st.err);
  for (const sec of ['server', 'memory', 'clients', 'messages', 'journal', 'replication', 'workers']) {
    assert.match(st.out, new RegExp(`^# ${sec}$`, 'm'), `section ${sec}`);
  }
  const j = admJson(srv, 'stats');
  assert.equal(j.ok, true);
  assert.equal(typeof j.sections.clients.accepted, 'number');
  assert.equal(typeof j.sections.journal.journal_appends, 'number');
  assert.ok(j.sections.memory.rss_total > 0);
  assert.deepEqual(Object.keys(j.sections.workers), ['worker0', 'worker1']);

  const w = admJson(srv, 'workers');
  assert.equal(w.workers.length, 2);
  const pids = new Set(srv.workers().map((c) => c.pid));
  for (const row of w.workers) {
    assert.ok(pids.has(row.pid), `worker pid ${row.pid}`);
    assert.equal(row.state, 'running');
  }
  const plain = adm(srv, 'workers');
  assert.match(plain.out, /^# workers\nworker +pid +state/m);
});

test('stats answer within milliseconds while clients keep chatd busy', async () => {
  let busy = true;
  const load = (async () => {
    while (busy) await Promise.all(Array.from({ length: 20 }, () => api.get('/healthz')));
  })();
  try {
    await sleep(200);
    for (let i = 0; i < 5; i++) {
      const t0 = process.hrtime.bigint();
      const r = adm(srv, '--json', 'stats');
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      assert.equal(r.code, 0, r.err);
      // the whole chatadm process, spawn included
      assert.ok(ms < 500, `chatadm stats took ${ms} ms`);
    }
    const j = admJson(srv, 'stats');
    assert.ok(j.sections.clients.requests > 0);
  } finally {
    busy = false;
    await load;
  }
});

test('users, rooms and kick see the WebSocket clients on every worker', async () => {
  const a = await api.newUser('adm');
  const b = await api.newUser('adm');
  const room = await api.newRoom(a.token, [b.name]);
  const conns = [];
  for (let i = 0; i < 4; i++) {
    const u = i % 2 ? b : a;
    const c = await WsClient.connect(srv.port, { token: u.token });
    await c.request({ type: 'join', room }, { });
    conns.push(c);
  }
  try {
    const users = await waitFor(() => {
      const j = admJson(srv, 'users');
      const mine = j.users.filter((u) => u.user === a.name || u.user === b.name);
      return mine.length === 2 && mine.every((u) => u.connections === 2) ? j : null;
    }, 'users to list both');
    const ua = users.users.find((u) => u.user === a.name);
    assert.equal(ua.rooms, 1);

    const rooms = admJson(srv, 'rooms', '--top', '5');
    const r = rooms.rooms.find((x) => x.room === room);
    assert.ok(r, JSON.stringify(rooms));
    assert.equal(r.members, 4);
    const plain = adm(srv, 'rooms');
    assert.match(plain.out, new RegExp(`^${room.replace(/[.]/g, '\\.')} +4 `, 'm'));

    const bad = adm(srv, 'rooms', '--top', 'x');
    assert.equal(bad.code, 1);
    assert.match(bad.err, /--top/);

    const k = adm(srv, 'kick', b.name);
    assert.equal(k.code, 0, k.err);
    assert.equal(fields(k.out).closed, '2');
    for (const c of [conns[1], conns[3]]) {
      const info = await c.closed;
      assert.equal(info.code, 1008);
    }
    assert.equal(conns[0].closeInfo, null, 'the other user stays connected');
    const again = adm(srv, 'kick', b.name);
    assert.equal(again.code, 1);
    assert.match(again.err, /no connection/);
  } finally {
    for (const c of conns) if (!c.closeInfo) await c.close();
  }
});

test('check and reload: an invalid file changes nothing and says file:line', async () => {
  const pidsBefore = srv.workers().map((c) => c.pid).sort();
  setConf(srv, ['workers = 3', 'bogus line without equals']);
  const lineNo = fs.readFileSync(srv.confPath, 'utf8').split('\n').indexOf('bogus line without equals') + 1;
  for (const cmd of ['check', 'reload']) {
    const r = adm(srv, cmd);
    assert.equal(r.code, 1, `${cmd}: ${r.out}`);
    assert.equal(r.out, '');
    assert.match(r.err, new RegExp(`${srv.confPath.replace(/[.]/g, '\\.')}:${lineNo}: `));
  }
  await sleep(300);
  assert.deepEqual(srv.workers().map((c) => c.pid).sort(), pidsBefore);
  assert.equal(admJson(srv, 'status').workers, 2);
});

test('reload applies settings and the number of workers, and says what changed', async () => {
  // a keep-alive HTTP connection open across the reloads (on a worker kept)
  setConf(srv, ['workers = 4', 'idle_timeout = 45s', 'max_connections = 500']);
  assert.equal(adm(srv, 'check').code, 0);
  const j = admJson(srv, 'reload');
  api.close();
  api = new Api(srv.port);
  assert.deepEqual(j.applied.map((c) => c.key).sort(), ['server.idle_timeout', 'server.workers']);
  assert.deepEqual(j.applied.find((c) => c.key === 'server.workers'), { key: 'server.workers', old: '2', new: '4' });
  assert.deepEqual(j.restart_needed.map((c) => c.key), ['server.max_connections']);
  assert.equal(j.workers, 4);
  // reload returns only once it is complete: the new workers already serve
  assert.equal(srv.workers().length, 4);
  const w = admJson(srv, 'workers');
  assert.deepEqual(w.workers.map((x) => x.state), ['running', 'running', 'running', 'running']);
  assert.equal((await api.get('/healthz')).status, 200);
  // the journal serves the new workers' rings: they can store messages
  const u = await api.newUser('rl');
  const room = await api.newRoom(u.token);
  for (let i = 0; i < 12; i++) await new Api(srv.port, { keepAlive: false }).sendOk(u.token, room, `m${i}`);

  setConf(srv, ['workers = 1', 'max_connections = 500']);
  const down = admJson(srv, 'reload');
  assert.equal(down.workers, 1);
  assert.equal(srv.workers().length, 1);
  assert.equal(admJson(srv, 'status').workers_ready, 1);
  // (idle keep-alive connections of the retired workers were closed: a
  // new connection, since connections are not handed over yet)
  assert.equal((await new Api(srv.port, { keepAlive: false }).get('/healthz')).status, 200);

  // SIGHUP does the same as chatadm reload
  setConf(srv, ['workers = 2', 'max_connections = 500']);
  process.kill(srv.pid, 'SIGHUP');
  await waitFor(() => srv.workers().length === 2 && admJson(srv, 'status').workers_ready === 2, 'SIGHUP reload');
  assert.match(srv.log(), /reload: server\.workers: 1 -> 2/);
});

test('reopen: the access log is reopened after it was moved', async () => {
  const logFile = path.join(srv.dir, 'access.log');
  setConf(srv, ['workers = 2', `access_log = ${logFile}`]);
  admJson(srv, 'reload');
  await api.get('/healthz?one');
  await waitFor(() => fs.existsSync(logFile) && /one/.test(fs.readFileSync(logFile, 'utf8')), 'first access line');
  fs.renameSync(logFile, `${logFile}.1`);
  const r = adm(srv, 'reopen');
  assert.equal(r.code, 0, r.err);
  assert.equal(fields(r.out).workers, '2');
  // several requests, so both workers see one
  for (let i = 0; i < 8; i++) await new Api(srv.port, { keepAlive: false }).get('/healthz?two');
  await waitFor(() => fs.existsSync(logFile) && /two/.test(fs.readFileSync(logFile, 'utf8')), 'a new access log');
  assert.doesNotMatch(fs.readFileSync(`${logFile}.1`, 'utf8'), /two/);
});

test('usage errors exit 2, failures exit 1 with the reason on stderr', () => {
  let r = adm(srv, 'frobnicate');
  assert.equal(r.code, 2);
  assert.match(r.err, /unknown command/);
  r = spawnSync(CHATADM, ['-s', '/nonexistent/chatd.sock', 'status'], { encoding: 'utf8' });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /cannot connect to \/nonexistent\/chatd\.sock/);
  r = adm(srv, 'promote');
  assert.equal(r.code, 1);
  assert.match(r.err, /already the primary/);
  r = adm(srv, 'help');
  assert.equal(r.code, 0);
  for (const cmd of ['status', 'stats', 'top', 'workers', 'rooms', 'users', 'kick', 'reload', 'reopen', 'check', 'stop', 'promote']) {
    assert.match(r.out, new RegExp(`^  ${cmd}\\b`, 'm'), `help lists ${cmd}`);
  }
});

test('top prints per-second rates off a terminal', () => {
  const r = adm(srv, '-n', '1', 'top');
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /^# workers\nworker +pid +state +connections +msgs_in_s +msgs_out_s +cpu_pct +rss_kib$/m);
  assert.match(r.out, /^# journal$/m);
  assert.match(r.out, /^fsync_p99_us: \d+$/m);
  const j = spawnSync(CHATADM, ['-s', sockOf(srv), '--json', '-n', '2', 'top'], { encoding: 'utf8' });
  const lines = j.stdout.trim().split('\n');
  assert.equal(lines.length, 2);
  for (const l of lines) assert.equal(JSON.parse(l).workers.length, 2);
});

test('stop: chatadm returns once chatd has exited and the socket is gone', async () => {
  const other = await startChatd({ workers: 1 });
  try {
    const r = adm(other, 'stop', '--timeout', '5');
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /stopped/);
    const ex = await other.exited;
    assert.equal(ex.code, 0);
    assert.ok(!fs.existsSync(sockOf(other)));
  } finally {
    await other.cleanup();
  }
});

test('promote: a standby becomes the primary, and chatadm waits for the new role', async () => {
  const { freePort } = require('./lib/chatd');
  const [a, b] = [await freePort(), await freePort()];
  const repl = (role, listen, peer) => ['[replication]', `role = ${role}`,
    `listen = 127.0.0.1:${listen}`, `primary = 127.0.0.1:${peer}`];
  const primary = await startChatd({ workers: 1, extra: repl('primary', a, b) });
  const standby = await startChatd({ workers: 1, extra: repl('standby', b, a) });
  try {
    await waitFor(() => admJson(standby, 'stats').sections.replication.repl_connected === 1,
      'the standby to follow the primary');
    assert.equal(admJson(standby, 'status').role, 'standby');
    const r = adm(standby, 'promote');
    assert.equal(r.code, 0, r.err);
    assert.equal(fields(r.out).role, 'primary');
    assert.equal(fields(r.out).was, 'standby');
    assert.equal(admJson(standby, 'status').role, 'primary');
  } finally {
    await standby.cleanup();
    await primary.cleanup();
  }
});

test('upgrade: refused with the reason when no binary is there any more', async () => {
  const os = require('node:os');
  const binDir = fs.mkdtempSync(path.join(os.tmpdir(), 'chatd-bin-'));
  const binary = path.join(binDir, 'chatd');
  fs.copyFileSync(process.env.CHATD || path.join(BUILD, 'chatd'), binary);
  fs.chmodSync(binary, 0o755);
  const other = await startChatd({ workers: 1, binary });
  try {
    const pids = other.workers().map((w) => w.pid);
    fs.unlinkSync(binary);
    const r = adm(other, 'upgrade');
    assert.equal(r.code, 1);
    assert.match(r.err, /upgrade: no executable at .*chatd/);
    assert.deepEqual(other.workers().map((w) => w.pid), pids, 'nothing changed');
  } finally {
    await other.cleanup();
    fs.rmSync(binDir, { recursive: true, force: true });
  }
});

test('upgrade: a new binary that does not start is given up, and the old one serves on', async () => {
  const os = require('node:os');
  const binDir = fs.mkdtempSync(path.join(os.tmpdir(), 'chatd-bin-'));
  const binary = path.join(binDir, 'chatd');
  fs.copyFileSync(process.env.CHATD || path.join(BUILD, 'chatd'), binary);
  fs.chmodSync(binary, 0o755);
  const other = await startChatd({ workers: 2, binary });
  try {
    fs.writeFileSync(`${binary}.new`, '#!/bin/sh\nexit 3\n', { mode: 0o755 });
    fs.renameSync(`${binary}.new`, binary);
    const r = adm(other, 'upgrade');
    assert.equal(r.code, 1, r.out);
    assert.match(r.err, /upgrade failed .*journal exited before it was ready/);
    await waitFor(() => admJson(other, 'status').workers_ready === 2 &&
      admJson(other, 'workers').workers.every((w) => w.state === 'running'), 'chatd to serve again');
    assert.equal(fields(adm(other, 'status').out).state, 'serving');
    const api2 = new Api(other.port, { keepAlive: false });
    const u = await api2.newUser('up');
    await api2.newRoom(u.token);
  } finally {
    await other.cleanup();
    fs.rmSync(binDir, { recursive: true, force: true });
  }
});
