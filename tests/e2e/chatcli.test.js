// chatcli, the terminal client, end to end: real chatcli processes driven
// through pipes (stdin for what is typed, stdout read line by line)
// against a real chatd. Users and rooms are made through the REST API
// (lib/api.js), and what chatcli claims to have sent is checked there too.
// chatcli runs with TZ=UTC so the printed time can be compared with the
// message's ts. BUILD_DIR gives the build directory holding chatcli.
'use strict';
const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const path = require('node:path');
const readline = require('node:readline');
const { spawn } = require('node:child_process');
const { startChatd, sleep, ROOT } = require('./lib/chatd');
const { Api, uniqueName, uniqueRoom, restartOn, shutdown } = require('./lib/api');

const CHATCLI = path.join(process.env.BUILD_DIR || path.join(ROOT, 'build'), 'chatcli');
const NO_AUTH_LIMITS = ['auth_per_ip_per_minute = 0', 'auth_failures_per_user_per_minute = 0'];
const WAIT_MS = 10000;
const QUIET_MS = 1000; // how long "nothing more arrives" is watched

const esc = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
// A message line as chatcli prints it: "[HH:MM:SS] where <from> text".
const msgLine = (where, from, text) => new RegExp(`^\\[\\d\\d:\\d\\d:\\d\\d\\] ${esc(where)} <${esc(from)}> ${esc(text)}$`);
const utcClock = (ms) => new Date(ms).toISOString().slice(11, 19);

// One chatcli process. Every stdout line is kept; waitFor looks through
// the lines from a mark on (0: all), so output that came early counts.
class Cli {
  constructor(port, user, { password, args = [], env = {}, stdinLines = [] } = {}) {
    const cleanEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('CHATCLI_')));
    this.user = user;
    this.lines = [];
    this.stderr = '';
    this.waiters = new Set();
    this.proc = spawn(CHATCLI, ['-s', `http://127.0.0.1:${port}`, '-u', user, ...args], {
      env: { ...cleanEnv, TZ: 'UTC', CHATCLI_TRACE: '1', ...(password !== undefined ? { CHATCLI_PASSWORD: password } : {}), ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.exited = new Promise((resolve) => this.proc.on('exit', (code, signal) => resolve({ code, signal })));
    readline.createInterface({ input: this.proc.stdout }).on('line', (l) => {
      this.lines.push(l);
      for (const w of this.waiters) w();
    });
    this.proc.stderr.on('data', (d) => { this.stderr += d; });
    for (const l of stdinLines) this.type(l);
  }

  type(line) { this.proc.stdin.write(`${line}\n`); }

  mark() { return this.lines.length; }

  matching(re, from = 0) { return this.lines.slice(from).filter((l) => re.test(l)); }

  // The first line at or after `from` matching re; rejects after `ms`
  // with everything chatcli printed, for the failure message.
  waitFor(re, { from = 0, ms = WAIT_MS } = {}) {
    return new Promise((resolve, reject) => {
      let timer = null;
      const check = () => {
        const i = this.lines.findIndex((l, k) => k >= from && re.test(l));
        if (i < 0) return false;
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve(this.lines[i]);
        return true;
      };
      if (check()) return;
      this.waiters.add(check);
      timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`${this.user}: no line matching ${re} within ${ms} ms; output:\n${this.lines.join('\n')}\nstderr:\n${this.stderr}`));
      }, ms);
    });
  }

  async quit() {
    this.type('/quit');
    return this.wait();
  }

  async wait(ms = WAIT_MS) {
    let timer;
    const r = await Promise.race([this.exited,
      new Promise((resolve) => { timer = setTimeout(() => resolve(null), ms); })]);
    clearTimeout(timer);
    return r;
  }

  kill() {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill('SIGKILL');
  }
}

describe('chatcli', () => {
  let srv;
  let api;
  const clis = [];
  const cli = (...a) => { const c = new Cli(...a); clis.push(c); return c; };

  before(async () => {
    srv = await startChatd({ extra: ['[limits]', ...NO_AUTH_LIMITS] });
    api = new Api(srv.port);
  });

  after(async () => {
    for (const c of clis) c.kill();
    api.close();
    await shutdown(srv);
  });

  it('two chatcli processes exchange messages in a room, with time and author', async () => {
    const alice = await api.newUser('alice');
    const bob = await api.newUser('bob');
    const room = await api.newRoom(alice.token, [bob.name]);
    const a = cli(srv.port, alice.name, { password: alice.password, args: ['-r', room] });
    const b = cli(srv.port, bob.name, { password: bob.password });
    await a.waitFor(new RegExp(`^\\* joined ${esc(room)}`));
    // bob was not told a room: he starts in his only one.
    await b.waitFor(new RegExp(`^\\* joined ${esc(room)} \\(now the current room\\)`));

    a.type('hello from alice');
    const seenByB = await b.waitFor(msgLine(room, alice.name, 'hello from alice'));
    await a.waitFor(msgLine(room, alice.name, 'hello from alice'));
    b.type('hi alice, bob here');
    await a.waitFor(msgLine(room, bob.name, 'hi alice, bob here'));

    // Stored once each, in order, and the printed time is the message's ts.
    const hist = (await api.historyAll(alice.token, room)).reverse();
    assert.deepEqual(hist.map((m) => [m.from, m.content]),
      [[alice.name, 'hello from alice'], [bob.name, 'hi alice, bob here']]);
    assert.equal(seenByB.slice(1, 9), utcClock(hist[0].ts), seenByB);

    // /history N: the last N, oldest first.
    const m = b.mark();
    b.type('/history 2');
    await b.waitFor(new RegExp(`^\\* last 2 messages of ${esc(room)}:$`), { from: m });
    const second = await b.waitFor(msgLine(room, bob.name, 'hi alice, bob here'), { from: m + 1 });
    const shown = b.lines.slice(m);
    assert.ok(shown.indexOf(second) > shown.findIndex((l) => msgLine(room, alice.name, 'hello from alice').test(l)),
      `oldest first:\n${shown.join('\n')}`);

    // /rooms lists the room with both participants.
    b.type('/rooms');
    const line = await b.waitFor(new RegExp(`^\\* > ${esc(room)} \\(last seq 2; `), { from: m });
    assert.ok(line.includes(alice.name) && line.includes(bob.name), line);

    // Text from others cannot drive the terminal: control characters (C0
    // and C1) are shown as '?', and a second line is indented.
    await api.sendOk(bob.token, room, 'esc \u001b[31mred\u001b[0m \u009b2J bell\u0007\nsecond line');
    await a.waitFor(msgLine(room, bob.name, 'esc ?[31mred?[0m ?2J bell?'));
    await a.waitFor(/^ {4}second line$/);
    assert.deepEqual(a.lines.filter((l) => /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/.test(l)), []);

    // Nothing was printed twice.
    assert.equal(a.matching(msgLine(room, alice.name, 'hello from alice')).length, 1);
    assert.equal(b.matching(msgLine(room, alice.name, 'hello from alice'), 0).length, 2); // live + /history
    assert.deepEqual(await a.quit(), { code: 0, signal: null });
    assert.deepEqual(await b.quit(), { code: 0, signal: null });
  });

  it('@user sends a direct message that only that user gets', async () => {
    const alice = await api.newUser('alice');
    const bob = await api.newUser('bob');
    const carol = await api.newUser('carol');
    const room = await api.newRoom(alice.token, [bob.name, carol.name]);
    const a = cli(srv.port, alice.name, { password: alice.password });
    const b = cli(srv.port, bob.name, { password: bob.password });
    const c = cli(srv.port, carol.name, { password: carol.password });
    for (const x of [a, b, c]) await x.waitFor(new RegExp(`^\\* joined ${esc(room)}`));

    a.type(`@${bob.name} psst, just for you`);
    await b.waitFor(msgLine(`@${alice.name}`, alice.name, 'psst, just for you'));
    await a.waitFor(msgLine(`@${bob.name}`, alice.name, 'psst, just for you'));
    b.type(`@${alice.name} got it`);
    await a.waitFor(msgLine(`@${bob.name}`, bob.name, 'got it'));
    // The room still works beside it, and carol sees only the room.
    c.type('room line');
    await a.waitFor(msgLine(room, carol.name, 'room line'));
    await b.waitFor(msgLine(room, carol.name, 'room line'));
    await sleep(QUIET_MS);
    assert.deepEqual(c.matching(/psst|got it/), [], c.lines.join('\n'));

    // The DM room is dm:A:B with the names sorted, and holds both lines.
    const dm = `dm:${[alice.name, bob.name].sort().join(':')}`;
    const hist = (await api.historyAll(bob.token, dm)).reverse();
    assert.deepEqual(hist.map((m) => [m.from, m.content]),
      [[alice.name, 'psst, just for you'], [bob.name, 'got it']]);
    for (const x of [a, b, c]) assert.deepEqual(await x.quit(), { code: 0, signal: null });
  });

  it('/status, /info and /users show presence', async () => {
    const alice = await api.newUser('alice');
    const bob = await api.newUser('bob');
    await api.newRoom(alice.token, [bob.name]);
    const a = cli(srv.port, alice.name, { password: alice.password });
    const b = cli(srv.port, bob.name, { password: bob.password });
    await a.waitFor(/^\* joined /);
    await b.waitFor(/^\* joined /);

    a.type('/status busy');
    await a.waitFor(/^\* your status: busy$/);
    b.type(`/info ${alice.name}`);
    await b.waitFor(new RegExp(`^\\* ${esc(alice.name)}: online, busy`));
    b.type('/users');
    const users = await b.waitFor(/^\* online: /);
    assert.ok(users.includes(`${alice.name} (busy)`) && users.includes(`${bob.name} (active)`), users);
    await a.quit();
    // Once alice has gone, bob is told so and /info says offline.
    await b.waitFor(new RegExp(`^\\* ${esc(alice.name)} is offline$`));
    const m = b.mark();
    b.type(`/info ${alice.name}`);
    await b.waitFor(new RegExp(`^\\* ${esc(alice.name)}: offline`), { from: m });
    await b.quit();
  });

  it('is scriptable: --register, the password as the first line of stdin, exit 0 once acked', async () => {
    const name = uniqueName('script');
    const room = uniqueRoom('Script');
    const lines = Array.from({ length: 5 }, (_, i) => `scripted line ${i}`);
    const s = cli(srv.port, name, {
      args: ['--register'],
      stdinLines: ['a fine password', `/join ${room}`, ...lines, '//slash kept'],
    });
    s.proc.stdin.end();
    const r = await s.wait();
    assert.deepEqual(r, { code: 0, signal: null }, `${s.lines.join('\n')}\n${s.stderr}`);
    assert.ok(s.lines.includes(`* registered ${name}`), s.lines.join('\n'));
    assert.ok(s.lines.includes(`* created room ${room}`), s.lines.join('\n'));

    // Every line stored exactly once, in order; the password was not sent.
    const l = await api.login(name, 'a fine password');
    assert.equal(l.status, 200);
    const hist = (await api.historyAll(l.json.token, room)).reverse();
    assert.deepEqual(hist.map((m) => m.content), [...lines, '/slash kept']);

    // Registering again is fine; a wrong password is not (exit 1).
    const again = cli(srv.port, name, { password: 'a fine password', args: ['--register'] });
    again.proc.stdin.end();
    assert.equal((await again.wait()).code, 0);
    assert.ok(again.lines.includes(`* ${name} is already registered`), again.lines.join('\n'));
    const wrong = cli(srv.port, name, { password: 'not the password' });
    const w = await wrong.wait();
    assert.equal(w.code, 1);
    assert.ok(wrong.lines.some((x) => /login: .*invalid_credentials/.test(x)), wrong.lines.join('\n'));
  });

  it('reconnects after chatd restarts and resumes with since, losing and repeating nothing', async () => {
    // Its own server: this test stops and restarts it.
    const own = await startChatd({ extra: ['[limits]', ...NO_AUTH_LIMITS] });
    const ownApi = new Api(own.port);
    let again = null;
    try {
      const alice = await ownApi.newUser('alice');
      const bob = await ownApi.newUser('bob');
      const room = await ownApi.newRoom(alice.token, [bob.name]);
      const a = cli(own.port, alice.name, { password: alice.password, args: ['-r', room] });
      await a.waitFor(new RegExp(`^\\* joined ${esc(room)}`));
      await ownApi.sendOk(bob.token, room, 'before the restart');
      await a.waitFor(msgLine(room, bob.name, 'before the restart'));

      await shutdown(own, { keepDir: true });
      await a.waitFor(/^\* connection lost /);
      a.type('typed while offline');
      await a.waitFor(/^\* offline: the message goes out on reconnect$/);
      again = await restartOn(own);
      // Sent as soon as the server is back, likely before chatcli is.
      const api2 = new Api(again.port);
      const bob2 = (await api2.login(bob.name, bob.password)).json.token;
      await api2.sendOk(bob2, room, 'while alice was away 1');
      await api2.sendOk(bob2, room, 'while alice was away 2');
      await a.waitFor(/^\* reconnected$/);
      await a.waitFor(msgLine(room, bob.name, 'while alice was away 2'));
      await a.waitFor(msgLine(room, alice.name, 'typed while offline'));
      a.type('after the reconnect');
      await a.waitFor(msgLine(room, alice.name, 'after the reconnect'));

      for (const t of ['before the restart', 'while alice was away 1', 'while alice was away 2']) {
        assert.equal(a.matching(msgLine(room, bob.name, t)).length, 1, `${t}:\n${a.lines.join('\n')}`);
      }
      // The line typed offline was stored once, whenever it got through.
      const got = (await api2.historyAll(bob2, room)).reverse().map((m) => m.content);
      const want = ['before the restart', 'while alice was away 1', 'while alice was away 2',
        'typed while offline', 'after the reconnect'];
      assert.deepEqual([...got].sort(), [...want].sort(), JSON.stringify(got));
      assert.equal(got[0], 'before the restart');
      assert.equal(got[4], 'after the reconnect');
      assert.deepEqual(await a.quit(), { code: 0, signal: null });
      api2.close();
    } finally {
      ownApi.close();
      if (again) await shutdown(again);
      else await shutdown(own);
    }
  });

  it('resumes with since after a dropped connection: what was missed comes once, in order', async () => {
    // A TCP proxy in front of chatd that the test can cut and hold down,
    // so the messages below are surely sent while chatcli is away.
    const sockets = new Set();
    let down = false;
    const proxy = net.createServer((client) => {
      if (down) { client.destroy(); return; }
      const upstream = net.connect(srv.port, '127.0.0.1');
      for (const [x, y] of [[client, upstream], [upstream, client]]) {
        sockets.add(x);
        x.on('data', (d) => y.write(d));
        x.on('close', () => { sockets.delete(x); y.destroy(); });
        x.on('error', () => y.destroy());
      }
    });
    await new Promise((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    try {
      const alice = await api.newUser('alice');
      const bob = await api.newUser('bob');
      const room = await api.newRoom(alice.token, [bob.name]);
      const empty = await api.newRoom(bob.token, [alice.name]); // no message yet when cut
      const a = cli(proxy.address().port, alice.name, { password: alice.password, args: ['-r', room] });
      await a.waitFor(new RegExp(`^\\* joined ${esc(room)}`));
      await a.waitFor(new RegExp(`^\\* joined ${esc(empty)}`));
      await api.sendOk(bob.token, room, 'missed 0');
      await a.waitFor(msgLine(room, bob.name, 'missed 0'));

      down = true;
      for (const x of sockets) x.destroy();
      await a.waitFor(/^\* connection lost /);
      for (let i = 1; i <= 5; i++) await api.sendOk(bob.token, room, `missed ${i}`);
      await api.sendOk(bob.token, empty, 'first in the empty room');
      a.type('queued while away');
      down = false;
      await a.waitFor(/^\* reconnected$/);
      await a.waitFor(msgLine(room, alice.name, 'queued while away'));
      await a.waitFor(msgLine(room, bob.name, 'missed 5'));
      await a.waitFor(msgLine(empty, bob.name, 'first in the empty room'));
      await sleep(QUIET_MS);
      const seen = a.matching(/^\[.*<.*> (missed \d|queued while away)$/).map((l) => l.replace(/^.*> /, ''));
      assert.deepEqual(seen, ['missed 0', 'missed 1', 'missed 2', 'missed 3', 'missed 4', 'missed 5',
        'queued while away'], a.lines.join('\n'));
      assert.deepEqual(await a.quit(), { code: 0, signal: null });
    } finally {
      proxy.close();
      for (const x of sockets) x.destroy();
    }
  });

  it('--help lists the commands; a bad option exits 2', async () => {
    const h = spawn(CHATCLI, ['--help'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    h.stdout.on('data', (d) => { out += d; });
    const code = await new Promise((resolve) => h.on('exit', resolve));
    assert.equal(code, 0);
    assert.match(out, /usage: chatcli \[-s URL\] \[-u USER\]/);
    assert.match(out, /CHATCLI_PASSWORD/);
    const bad = spawn(CHATCLI, ['--no-such-option'], { stdio: 'ignore' });
    assert.equal(await new Promise((resolve) => bad.on('exit', resolve)), 2);

    // /help inside prints every command of the issue.
    const u = await api.newUser('helper');
    const c = cli(srv.port, u.name, { password: u.password });
    c.type('/help');
    await c.waitFor(/^\* \/quit /);
    for (const cmd of ['@USER TEXT', '/join ROOM', '/rooms', '/users', '/info USER', '/status active|busy|away', '/history [N]']) {
      assert.ok(c.lines.some((l) => l.startsWith(`* ${cmd}`)), `${cmd}:\n${c.lines.join('\n')}`);
    }
    c.type('/bogus');
    await c.waitFor(/^! unknown command \/bogus/);
    assert.deepEqual(await c.quit(), { code: 0, signal: null });
  });
});
