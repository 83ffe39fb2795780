// chatd -t / -T: configuration checks from the command line.
'use strict';
const { it } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { CHATD, ROOT } = require('./lib/chatd');

function chatd(args) {
  return spawnSync(CHATD, args, { encoding: 'utf8' });
}

function withConf(text, fn) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'chatd-conf-'));
  const p = path.join(dir, 'chatd.conf');
  fs.writeFileSync(p, text);
  try { return fn(p); } finally { fs.rmSync(dir, { recursive: true, force: true }); }
}

it('accepts the shipped configuration with -t', () => {
  const r = chatd(['-c', path.join(ROOT, 'conf/chatd.conf'), '-t']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /test is successful/);
});

it('refuses a bad file with file:line: reason and exit 1', () => {
  withConf('[server]\nworkers = 2\nmax_connections = 0\n', (p) => {
    const r = chatd(['-c', p, '-t']);
    assert.equal(r.status, 1);
    assert.match(r.stderr, new RegExp(`${p.replace(/[.]/g, '\\.')}:3: .*max_connections`));
  });
  withConf('[server]\nno_such_key = 1\n', (p) => {
    const r = chatd(['-c', p, '-t']);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /:2: .*no_such_key/);
  });
  const r = chatd(['-c', '/nonexistent/chatd.conf', '-t']);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /\/nonexistent\/chatd\.conf:0: /);
});

it('prints the resolved settings with -T, and they load again', () => {
  withConf('[server]\nworkers = 3\nlisten = 127.0.0.1:9999\n', (p) => {
    const r = chatd(['-c', p, '-T']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /workers = 3/);
    assert.match(r.stdout, /listen = 127\.0\.0\.1:9999/);
    withConf(r.stdout, (p2) => {
      const again = chatd(['-c', p2, '-T']);
      assert.equal(again.status, 0, again.stderr);
      const body = (t) => t.split('\n').filter((l) => !l.startsWith('# chatd settings')).join('\n');
      assert.equal(body(again.stdout), body(r.stdout));
    });
  });
});

it('documents its options in --help and exits 2 on a wrong one', () => {
  const h = chatd(['--help']);
  assert.equal(h.status, 0);
  for (const o of ['-c', '-t', '-T', '--version']) assert.ok(h.stdout.includes(o), o);
  const bad = chatd(['--bogus']);
  assert.equal(bad.status, 2);
});

it('re-reads the file on SIGHUP: a bad one changes nothing, a good one is taken', async () => {
  const { startChatd, sleep: pause, curl: get } = require('./lib/chatd');
  const srv = await startChatd({ workers: 1 });
  try {
    const good = fs.readFileSync(srv.confPath, 'utf8');
    fs.writeFileSync(srv.confPath, `${good}max_connections = -5\n`);
    srv.proc.kill('SIGHUP');
    await pause(300);
    assert.match(srv.log(), /reload refused, nothing changed: .*chatd\.conf:\d+: .*max_connections/);
    assert.equal(get([`${srv.url}/healthz`]).out, 'ok', 'still serving');
    fs.writeFileSync(srv.confPath, good);
    srv.proc.kill('SIGHUP');
    await pause(300);
    assert.match(srv.log(), /reload: .*chatd\.conf is valid/);
    assert.equal(get([`${srv.url}/healthz`]).out, 'ok');
  } finally {
    await srv.cleanup();
  }
});
