// HTTP/1.1 end to end: the real daemon with 2 workers, driven by raw
// sockets and curl.
'use strict';
const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { startChatd, raw, parseResponses, curl, sleep } = require('./lib/chatd');

const GET = (p, extra = '') => `GET ${p} HTTP/1.1\r\nHost: t\r\n${extra}\r\n`;

describe('http', () => {
  let srv;
  let webRoot;
  before(async () => {
    // A web root of our own, with a link that leads out of it and one
    // that stays inside.
    webRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'chatd-www-'));
    fs.mkdirSync(path.join(webRoot, 'static'));
    fs.writeFileSync(path.join(webRoot, 'index.html'), '<!doctype html><title>chatd</title>');
    fs.writeFileSync(path.join(webRoot, 'static', 'app.js'), 'console.log(1);');
    fs.writeFileSync(path.join(webRoot, 'static', 'style.css'), 'body{}');
    fs.writeFileSync(path.join(webRoot, 'secret.txt'), 'not under /static');
    fs.symlinkSync('/etc/passwd', path.join(webRoot, 'static', 'passwd'));
    fs.symlinkSync('../secret.txt', path.join(webRoot, 'static', 'up.txt'));
    fs.symlinkSync('app.js', path.join(webRoot, 'static', 'alias.js'));
    srv = await startChatd({
      webRoot,
      server: ['header_timeout = 1s', 'idle_timeout = 2s', 'max_body_size = 1K',
        'shutdown_timeout = 3s', 'max_connections = 200'],
    });
  });
  after(async () => {
    await srv.cleanup();
    fs.rmSync(webRoot, { recursive: true, force: true });
  });

  it('answers /healthz with 200 ok', () => {
    const r = curl(['-i', `${srv.url}/healthz`]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(r.out, /\r\n\r\nok$/);
  });

  it('keeps a connection alive across requests', async () => {
    const r = curl(['-v', '-o', '/dev/null', '-o', '/dev/null', `${srv.url}/healthz`, `${srv.url}/healthz`]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.err, /Re-using existing connection/);
  });

  it('answers pipelined requests in order', async () => {
    const r = await raw(srv.port, GET('/healthz') + GET('/nope') + GET('/static/app.js') +
      GET('/healthz', 'Connection: close\r\n'));
    const rs = parseResponses(r.text);
    assert.deepEqual(rs.map((x) => x.status), [200, 404, 200, 200]);
    assert.equal(rs[2].body, 'console.log(1);');
    assert.equal(rs[3].headers.connection, 'close');
    assert.ok(r.closed);
  });

  it('parses a request that arrives one byte at a time', async () => {
    const req = GET('/healthz', 'Connection: close\r\n');
    const parts = [];
    for (const ch of req) parts.push(ch, 2);
    const rs = parseResponses((await raw(srv.port, parts)).text);
    assert.equal(rs.length, 1);
    assert.equal(rs[0].status, 200);
  });

  it('reads chunked and Content-Length bodies before answering', async () => {
    // POST is not served on /healthz: 405, but the body is consumed, so the
    // next pipelined request parses.
    const chunked = 'POST /healthz HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n' +
      '5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nTrailer: x\r\n\r\n';
    const cl = 'POST /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nabcde';
    const rs = parseResponses((await raw(srv.port, [chunked, cl, GET('/healthz', 'Connection: close\r\n')])).text);
    assert.deepEqual(rs.map((x) => x.status), [405, 405, 200]);
    assert.equal(rs[0].headers.allow, 'GET, HEAD');
    assert.equal(JSON.parse(rs[0].body).error.code, 'method_not_allowed');
  });

  it('sends 100 Continue for Expect: 100-continue', async () => {
    const r = await raw(srv.port, ['POST /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n', 200, 'abc']);
    const rs = parseResponses(r.text);
    assert.deepEqual(rs.map((x) => x.status), [100, 405]);
  });

  it('refuses each kind of bad request with a clear status', async () => {
    const cases = [
      ['garbage\r\n\r\n', 400],
      ['GET /healthz HTTP/1.1\r\nBad Header: x\r\n\r\n', 400],
      ['GET /healthz HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n', 400],
      ['GET /healthz HTTP/2.0\r\n\r\n', 505],
      ['POST /healthz HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n', 501],
      ['BREW /healthz HTTP/1.1\r\nHost: t\r\n\r\n', 405],
      ['PUT /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nConnection: close\r\n\r\n', 405],
      ['POST /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n', 413],
      ['POST /healthz HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n800\r\n' + 'x'.repeat(2048) + '\r\n0\r\n\r\n', 413],
      [`GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: ${'a'.repeat(17 * 1024)}\r\n\r\n`, 431],
    ];
    for (const [req, status] of cases) {
      const rs = parseResponses((await raw(srv.port, req, { idleMs: 2000 })).text);
      assert.equal(rs[0] && rs[0].status, status, `request ${JSON.stringify(req.slice(0, 60))}`);
      const body = JSON.parse(rs[0].body);
      assert.equal(typeof body.error.code, 'string');
      assert.equal(typeof body.error.message, 'string');
    }
  });

  it('times out a slow request head with 408 and closes', async () => {
    const t0 = Date.now();
    const r = await raw(srv.port, ['GET /healthz HTTP/1.1\r\nHost: t\r\n', 300, 'X-Slow: 1\r\n'], { idleMs: 4000 });
    const rs = parseResponses(r.text);
    assert.equal(rs[0].status, 408);
    assert.ok(r.closed, 'connection closed after 408');
    assert.ok(Date.now() - t0 < 3500, 'within the header timeout plus a tick');
  });

  it('times out an idle keep-alive connection', async () => {
    const r = await raw(srv.port, [GET('/healthz')], { idleMs: 5000 });
    const rs = parseResponses(r.text);
    assert.equal(rs[0].status, 200);
    assert.equal(rs[1] && rs[1].status, 408);
    assert.ok(r.closed);
  });

  it('serves the web root with the right types, and nothing outside it', async () => {
    let r = curl(['-i', `${srv.url}/`]);
    assert.match(r.out, /^HTTP\/1\.1 200/);
    assert.match(r.out, /content-type: text\/html; charset=utf-8/i);
    r = curl(['-i', `${srv.url}/static/style.css`]);
    assert.match(r.out, /content-type: text\/css/i);
    r = curl(['-i', `${srv.url}/static/alias.js`]);
    assert.match(r.out, /^HTTP\/1\.1 200/, 'a link within the root is served');
    r = curl([`${srv.url}/static/up.txt`]);
    assert.equal(r.out, 'not under /static', 'a link to elsewhere in the root is served');
    r = curl(['-I', `${srv.url}/static/app.js`]);
    assert.match(r.out, /content-length: 15/i, 'HEAD gives the length');
    const etag = r.out.match(/etag: (".*?")/i)[1];
    r = curl(['-i', '-H', `If-None-Match: ${etag}`, `${srv.url}/static/app.js`]);
    assert.match(r.out, /^HTTP\/1\.1 304/);
    r = curl(['-i', '-H', `If-None-Match: "other",\t${etag} `, `${srv.url}/static/app.js`]);
    assert.match(r.out, /^HTTP\/1\.1 304/, 'the tag anywhere in a list');
    r = curl(['-i', '-H', 'If-None-Match: *', `${srv.url}/static/app.js`]);
    assert.match(r.out, /^HTTP\/1\.1 304/, '* matches any tag');
    r = curl(['-i', '-H', `If-None-Match: "x${etag.slice(1)}`, `${srv.url}/static/app.js`]);
    assert.match(r.out, /^HTTP\/1\.1 200/, 'a longer tag that ends like this one does not');
    const escapes = ['/static/passwd', '/secret.txt', '/../etc/passwd',
      '/static/../../etc/passwd', '/static/%2e%2e/%2e%2e/etc/passwd',
      '/static/..%2f..%2fetc%2fpasswd', '/static/%2E%2E/secret.txt', '/static/missing.js',
      '/static/', '//etc/passwd'];
    for (const p of escapes) {
      const rs = parseResponses((await raw(srv.port, GET(p, 'Connection: close\r\n'))).text);
      assert.ok([400, 404].includes(rs[0].status), `${p} gave ${rs[0].status}`);
      assert.doesNotMatch(rs[0].body, /root:|not under/, p);
    }
  });

  it('spreads connections evenly over the workers', async () => {
    const n = 300; // under 2 x max_connections, so none is refused
    const socks = [];
    for (let i = 0; i < n; i++) {
      socks.push(await new Promise((resolve, reject) => {
        const s = net.connect(srv.port, '127.0.0.1', () => resolve(s));
        s.on('error', reject);
      }));
    }
    await sleep(200);
    // Sockets each worker holds, less its one listening socket.
    const counts = srv.workers().map((w) => fs.readdirSync(`/proc/${w.pid}/fd`)
      .filter((fd) => { try { return /^socket:/.test(fs.readlinkSync(`/proc/${w.pid}/fd/${fd}`)); } catch { return false; } }).length - 1);
    for (const s of socks) s.destroy();
    const total = counts.reduce((a, b) => a + b, 0);
    assert.ok(total >= n, `all ${n} connections accepted (${counts})`);
    const avg = total / counts.length;
    for (const c of counts) assert.ok(c <= 1.3 * avg, `worker holds ${c}, average ${avg}`);
  });

  it('refuses the newest connections past max_connections', async () => {
    const socks = [];
    const got = [];
    for (let i = 0; i < 500; i++) {
      const s = net.connect(srv.port, '127.0.0.1');
      got[i] = '';
      s.on('data', (d) => { got[i] += d.toString('latin1'); });
      s.on('error', () => {});
      socks.push(s);
    }
    await sleep(1000);
    const answers = got.filter((t) => /^HTTP\/1\.1 503/.test(t)).map((t) => parseResponses(t)[0]);
    const refused = answers.length;
    for (const a of answers) {
      // The whole body, exactly as long as Content-Length says.
      assert.equal(Buffer.byteLength(a.body, 'latin1'), Number(a.headers['content-length']));
      assert.equal(JSON.parse(a.body).error.code, 'too_many_connections');
    }
    // 2 workers x 200: at least 100 refused, and the server still serves.
    assert.ok(refused >= 50, `refused ${refused}`);
    for (const s of socks) s.destroy();
    await sleep(300);
    const r = curl([`${srv.url}/healthz`]);
    assert.equal(r.out, 'ok');
  });

  it('names its processes in ps', () => {
    const ps = fs.readFileSync(`/proc/${srv.pid}/cmdline`, 'utf8').replace(/\0+$/, '');
    assert.equal(ps, 'chatd: master');
    const names = srv.workers().map((w) => w.args).sort();
    assert.deepEqual(names, ['chatd: worker 0', 'chatd: worker 1']);
  });

  it('replaces a worker killed with SIGKILL and keeps answering', async () => {
    const before = srv.workers();
    const victim = before[0];
    let ok = 0;
    let failed = 0;
    const stopAt = Date.now() + 2500;
    // curl runs synchronously: yield between requests, so the kill below
    // happens while the load runs, not after it.
    const load = (async () => {
      while (Date.now() < stopAt) {
        const r = curl([`${srv.url}/healthz`]);
        if (r.out === 'ok') ok++; else failed++;
        await sleep(5);
      }
    })();
    await sleep(500);
    process.kill(victim.pid, 'SIGKILL');
    await load;
    // The master restarts it at once, but the test may look first.
    let after = srv.workers();
    for (let i = 0; i < 50 && !(after.length === 2 && after.every((w) => w.pid !== victim.pid)); i++) {
      await sleep(100);
      after = srv.workers();
    }
    assert.equal(after.length, 2);
    assert.ok(!after.some((w) => w.pid === victim.pid), 'the killed worker is gone');
    assert.ok(after.some((w) => w.args === victim.args), 'and replaced under the same name');
    assert.ok(ok > 20, `${ok} requests answered`);
    assert.ok(failed <= 2, `${failed} requests failed`);
    assert.match(srv.log(), /killed by signal 9/);
  });
});

describe('stop', () => {
  it('finishes a request in flight on SIGTERM and exits 0 within the timeout', async () => {
    const srv = await startChatd({ server: ['shutdown_timeout = 3s'] });
    try {
      // A request whose body is still coming when the stop begins.
      const pending = raw(srv.port, [
        'POST /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nab', 400, 'cd'], { idleMs: 3000 });
      // An idle keep-alive connection: closed at once.
      const idle = raw(srv.port, [GET('/healthz')], { idleMs: 3000 });
      await sleep(150);
      const t0 = Date.now();
      srv.proc.kill('SIGTERM');
      const rs = parseResponses((await pending).text);
      assert.equal(rs[0].status, 405);
      assert.equal(rs[0].headers.connection, 'close');
      const i = await idle;
      assert.ok(i.closed);
      const exit = await srv.exited;
      assert.equal(exit.code, 0);
      assert.ok(Date.now() - t0 < 3000, 'exited within shutdown_timeout');
      assert.match(srv.log(), /chatd stopped/);
    } finally {
      await srv.cleanup();
    }
  });
});
