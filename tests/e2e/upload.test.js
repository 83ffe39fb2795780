// File uploads end to end (PROTOCOL.md: POST /api/upload, GET /files/{id}):
// the local backend (round trip of binary bytes, 413 before and during the
// body, traversal attempts in filenames, a 200 MiB upload with the worker's
// memory watched, who may read a file) and the S3 backend against s3rver,
// started here on loopback (presigned URLs, bucket auto-create, a wrong
// secret). Multipart bodies are built by hand so the bytes are exactly
// what the test says.
'use strict';
const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { startChatd, raw, parseResponses, freePort, sleep } = require('./lib/chatd');
const { Api, assertError, assertStatus, shutdown } = require('./lib/api');

const MiB = 1024 * 1024;
const ID_RE = /^[0-9a-f]{32}(\.[a-z0-9]{1,8})?$/;

// ---------------------------------------------------------------- helpers

// A filename as browsers put it in the header (WHATWG HTML, "multipart/
// form-data encoding"): '"', CR and LF percent-encoded, the rest UTF-8.
const browserEscape = (s) => s.replace(/"/g, '%22').replace(/\r/g, '%0D').replace(/\n/g, '%0A');

function partHead(boundary, { name, filename, type }) {
  let h = `--${boundary}\r\nContent-Disposition: form-data; name="${name}"`;
  if (filename !== undefined) h += `; filename="${browserEscape(filename)}"`;
  h += '\r\n';
  if (type) h += `Content-Type: ${type}\r\n`;
  return Buffer.from(`${h}\r\n`, 'utf8');
}

// A multipart/form-data body of parts [{name, filename?, type?, data}].
function multipart(parts, boundary = `----chatdtest${crypto.randomBytes(8).toString('hex')}`) {
  const bufs = [];
  for (const p of parts) {
    bufs.push(partHead(boundary, p), Buffer.from(p.data), Buffer.from('\r\n'));
  }
  bufs.push(Buffer.from(`--${boundary}--\r\n`));
  return { body: Buffer.concat(bufs), type: `multipart/form-data; boundary=${boundary}`, boundary };
}

// One request with a Buffer body (or none); resolves {status, headers, body: Buffer, json}.
function httpReq(port, method, urlPath, { body, headers = {}, agent = false, timeout = 60000 } = {}) {
  return new Promise((resolve, reject) => {
    const h = { ...headers };
    if (body !== undefined) h['Content-Length'] = body.length;
    const req = http.request({ host: '127.0.0.1', port, method, path: urlPath, headers: h, agent });
    req.setTimeout(timeout, () => req.destroy(new Error(`timeout: ${method} ${urlPath}`)));
    req.on('error', reject);
    req.on('response', (res) => {
      const chunks = [];
      res.on('data', (d) => chunks.push(d));
      res.on('error', reject);
      res.on('end', () => {
        const buf = Buffer.concat(chunks);
        let json;
        try { json = JSON.parse(buf.toString('utf8')); } catch { json = undefined; }
        resolve({ status: res.statusCode, headers: res.headers, body: buf, text: buf.toString('utf8'), json });
      });
    });
    req.end(body);
  });
}

function upload(port, token, parts, opts = {}) {
  const m = multipart(parts);
  const headers = { 'Content-Type': m.type, ...(opts.headers || {}) };
  if (token) headers.Authorization = `Bearer ${token}`;
  return httpReq(port, 'POST', '/api/upload', { body: m.body, headers, agent: opts.agent });
}

function getFile(port, urlPath, token, headers = {}, method = 'GET') {
  const h = { ...headers };
  if (token) h.Authorization = `Bearer ${token}`;
  return httpReq(port, method, urlPath, { headers: h });
}

function assertUploaded(r, { filename, type, size }) {
  assertStatus(r, 201, 'upload');
  assert.ok(r.json, `JSON answer: ${r.text}`);
  assert.match(r.json.file, ID_RE, `file id: ${r.text}`);
  if (filename !== undefined) assert.equal(r.json.filename, filename);
  if (type !== undefined) assert.equal(r.json.content_type, type);
  if (size !== undefined) assert.equal(r.json.size, size);
  assert.equal(typeof r.json.url, 'string');
  return r.json;
}

// Waits (up to 3 s) for the spool directory to be empty; fails otherwise.
async function spoolEmpty(srv) {
  const dir = path.join(srv.dir, 'var', 'files', 'tmp');
  let left = [];
  for (let i = 0; i < 60; i++) {
    left = fs.readdirSync(dir);
    if (left.length === 0) return;
    await sleep(50);
  }
  assert.deepEqual(left, [], 'the spool is emptied');
}

function vmRssKiB(pid) {
  const m = fs.readFileSync(`/proc/${pid}/status`, 'utf8').match(/^VmRSS:\s+(\d+) kB/m);
  return m ? Number(m[1]) : 0;
}

// Every entry under dir, as paths relative to it.
function listTree(dir) {
  const out = [];
  const walk = (d) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      out.push(path.relative(dir, p));
      if (e.isDirectory()) walk(p);
    }
  };
  walk(dir);
  return out.sort();
}

// Every byte value, then sequences that look like multipart framing.
function trickyBytes(n) {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7 + 3) & 0xff;
  const traps = Buffer.from('\r\n--\r\n--chatdtest\r\n-\r\r\n\n--', 'latin1');
  for (let off = 0; off + traps.length < n; off += 4099) traps.copy(b, off);
  return b;
}

// ----------------------------------------------------------- local backend

describe('uploads, local backend', () => {
  let srv; let api; let alice; let bob;
  const MAX = 1 * MiB;

  before(async () => {
    srv = await startChatd({ extra: ['[uploads]', `max_size = ${MAX}`] });
    api = new Api(srv.port);
    alice = await api.newUser('up');
    bob = await api.newUser('up');
  });
  after(async () => { api.close(); await shutdown(srv); });

  it('round trip: the exact bytes come back, with safe headers', async () => {
    const data = trickyBytes(300 * 1024 + 17);
    const r = await upload(srv.port, alice.token, [
      { name: 'note', data: 'ignored field' },
      { name: 'f', filename: 'report final.bin', type: 'text/html', data },
    ]);
    const up = assertUploaded(r, { filename: 'report final.bin', size: data.length });
    // The client's type is not trusted: not an image, so octet-stream.
    assert.equal(up.content_type, 'application/octet-stream');
    assert.ok(up.file.endsWith('.bin'));
    // Another user reads it with a token (files are for logged-in users).
    const g = await getFile(srv.port, `/files/${up.file}`, bob.token);
    assertStatus(g, 200, 'download');
    assert.ok(g.body.equals(data), 'bytes equal');
    assert.equal(g.headers['content-type'], 'application/octet-stream');
    assert.equal(g.headers['x-content-type-options'], 'nosniff');
    assert.match(g.headers['content-disposition'], /^attachment; filename="report final\.bin"/);
    const sha = crypto.createHash('sha256').update(data).digest('hex');
    assert.equal(g.headers.etag, `"${sha}"`);
    // The signed URL of the answer works with no token at all.
    const s = await getFile(srv.port, up.url, null);
    assertStatus(s, 200, 'signed url');
    assert.ok(s.body.equals(data));
  });

  it('chatadm rm removes a file, journalled; a second rm and a bad id fail', async () => {
    const chatadm = path.join(process.env.BUILD_DIR || path.resolve(__dirname, '../../build'), 'chatadm');
    const sock = path.join(srv.dir, 'var', 'chatd.sock');
    const adm = (...args) => spawnSync(chatadm, ['-s', sock, ...args], { encoding: 'utf8', timeout: 30000 });
    const up = assertUploaded(await upload(srv.port, alice.token, [{ name: 'f', filename: 'gone.txt', data: 'bye' }]), {});
    assertStatus(await getFile(srv.port, `/files/${up.file}`, bob.token), 200, 'before rm');
    const r = adm('rm', up.file);
    assert.equal(r.status, 0, `chatadm rm: ${r.stderr}`);
    assertStatus(await getFile(srv.port, `/files/${up.file}`, bob.token), 404, 'after rm');
    assertStatus(await getFile(srv.port, up.url, null), 404, 'the signed url after rm');
    assert.deepEqual(fs.readdirSync(path.join(srv.dir, 'var', 'files')).filter((f) => f.startsWith(up.file.slice(0, 32))), [],
      'the bytes and the metadata are gone');
    const again = adm('rm', up.file);
    assert.notEqual(again.status, 0, 'a second rm fails');
    assert.match(again.stderr, /no such file/);
    const bad = adm('rm', '../etc/passwd');
    assert.notEqual(bad.status, 0, 'a path is not a file id');
    assert.match(bad.stderr, /not a file id/);
    // The removal is in the log: the record's type and the id, in a segment.
    const segs = fs.readdirSync(path.join(srv.dir, 'var', 'journal')).filter((f) => f.endsWith('.log'));
    const logged = segs.some((f) => fs.readFileSync(path.join(srv.dir, 'var', 'journal', f)).includes(Buffer.from(up.file)));
    assert.ok(logged, `the file id is in a log segment (${segs.join(', ')})`);
  });

  it('sniffs images, and never serves HTML as HTML', async () => {
    const png = Buffer.concat([Buffer.from('89504e470d0a1a0a', 'hex'), crypto.randomBytes(100)]);
    const r = await upload(srv.port, alice.token, [{ name: 'f', filename: 'Pic.PNG', type: 'text/plain', data: png }]);
    const up = assertUploaded(r, { type: 'image/png', filename: 'Pic.PNG', size: png.length });
    assert.ok(up.file.endsWith('.png'), up.file);
    const g = await getFile(srv.port, `/files/${up.file}`, alice.token);
    assert.equal(g.headers['content-type'], 'image/png');
    assert.match(g.headers['content-disposition'], /^inline;/);

    const html = Buffer.from('<!doctype html><html><script>alert(1)</script></html>');
    const h = assertUploaded(await upload(srv.port, alice.token,
      [{ name: 'f', filename: 'x.html', type: 'text/html', data: html }]), {});
    assert.equal(h.content_type, 'application/octet-stream');
    const hg = await getFile(srv.port, `/files/${h.file}`, alice.token);
    assert.equal(hg.headers['content-type'], 'application/octet-stream');
    assert.match(hg.headers['content-disposition'], /^attachment;/);
    assert.equal(hg.headers['x-content-type-options'], 'nosniff');
    assert.match(hg.headers['content-security-policy'], /sandbox/);
  });

  it('ranges, ETag revalidation, HEAD and unknown ids', async () => {
    const data = crypto.randomBytes(5000);
    const up = assertUploaded(await upload(srv.port, alice.token, [{ name: 'f', filename: 'r.dat', data }]), {});
    const u = `/files/${up.file}`;
    let g = await getFile(srv.port, u, alice.token, { Range: 'bytes=100-199' });
    assertStatus(g, 206, 'range');
    assert.equal(g.headers['content-range'], 'bytes 100-199/5000');
    assert.ok(g.body.equals(data.subarray(100, 200)));
    g = await getFile(srv.port, u, alice.token, { Range: 'bytes=-10' });
    assert.ok(g.body.equals(data.subarray(4990)));
    g = await getFile(srv.port, u, alice.token, { Range: 'bytes=4990-' });
    assert.ok(g.body.equals(data.subarray(4990)));
    g = await getFile(srv.port, u, alice.token, { Range: 'bytes=5000-6000' });
    assertError(g, 416, null, 'unsatisfiable');
    assert.equal(g.headers['content-range'], 'bytes */5000');
    const full = await getFile(srv.port, u, alice.token);
    g = await getFile(srv.port, u, alice.token, { 'If-None-Match': full.headers.etag });
    assertStatus(g, 304, 'if-none-match');
    assert.equal(g.body.length, 0);
    g = await getFile(srv.port, u, alice.token, {}, 'HEAD');
    assertStatus(g, 200, 'HEAD');
    assert.equal(g.headers['content-length'], '5000');
    assert.equal(g.body.length, 0);
    assertError(await getFile(srv.port, `/files/${'0'.repeat(32)}.dat`, alice.token), 404, 'not_found');
    assertError(await getFile(srv.port, '/files/not-an-id', alice.token), 404, 'not_found');
  });

  it('keeps a keep-alive connection usable for the next request', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const a = await upload(srv.port, alice.token, [{ name: 'f', filename: 'a.txt', data: 'one' }], { agent });
    const b = await upload(srv.port, alice.token, [{ name: 'f', filename: 'b.txt', data: 'two' }], { agent });
    assertUploaded(a, { size: 3 });
    assertUploaded(b, { size: 3 });
    const g = await httpReq(srv.port, 'GET', `/files/${b.json.file}`,
      { headers: { Authorization: `Bearer ${alice.token}` }, agent });
    assert.equal(g.text, 'two');
    agent.destroy();
  });

  it('413 from Content-Length, before the body is sent', async () => {
    const m = multipart([{ name: 'f', filename: 'big.bin', data: '' }]);
    const head = `POST /api/upload HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer ${alice.token}\r\n` +
      `Content-Type: ${m.type}\r\nContent-Length: ${MAX + 2 * MiB}\r\n\r\n`;
    // No body byte is sent: the answer must come from the head alone.
    const r = await raw(srv.port, [head], { idleMs: 2000 });
    const [res] = parseResponses(r.text);
    assert.ok(res, `an answer: ${r.text}`);
    assert.equal(res.status, 413);
    assert.equal(JSON.parse(res.body).error.code, 'too_large');
    assert.ok(r.closed, 'the connection closes (the body was never read)');
  });

  it('413 mid-stream, with Content-Length in range and with a chunked body', async () => {
    const data = crypto.randomBytes(MAX + 1);
    const m = multipart([{ name: 'f', filename: 'over.bin', data }]);
    const r = await httpReq(srv.port, 'POST', '/api/upload', {
      body: m.body, headers: { 'Content-Type': m.type, Authorization: `Bearer ${alice.token}` },
    }).catch((e) => ({ error: e }));
    assert.ok(!r.error, `an answer, not ${r.error}`);
    assertError(r, 413, 'too_large', 'over max_size');

    // Chunked: no length is known until the bytes arrive.
    const chunks = [`POST /api/upload HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer ${alice.token}\r\n` +
      `Content-Type: ${m.type}\r\nTransfer-Encoding: chunked\r\n\r\n`];
    for (let off = 0; off < m.body.length; off += 256 * 1024) {
      const piece = m.body.subarray(off, off + 256 * 1024);
      chunks.push(Buffer.concat([Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from('\r\n')]));
    }
    chunks.push('0\r\n\r\n');
    const c = await raw(srv.port, chunks, { idleMs: 2000 });
    const [res] = parseResponses(c.text);
    assert.ok(res, `an answer: ${c.text.slice(0, 200)}`);
    assert.equal(res.status, 413);
    // Nothing was kept: the spool file goes (on the file pool, just after
    // the answer).
    await spoolEmpty(srv);
  });

  it('a chunked upload within the limit is stored', async () => {
    const data = trickyBytes(200 * 1024);
    const m = multipart([{ name: 'f', filename: 'chunked.bin', data }]);
    const chunks = [`POST /api/upload HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer ${alice.token}\r\n` +
      `Content-Type: ${m.type}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n`];
    for (let off = 0; off < m.body.length; off += 7777) {
      const piece = m.body.subarray(off, off + 7777);
      chunks.push(Buffer.concat([Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from('\r\n')]));
    }
    chunks.push('0\r\n\r\n');
    const c = await raw(srv.port, chunks, { idleMs: 3000 });
    const [res] = parseResponses(c.text);
    assert.equal(res.status, 201, c.text.slice(0, 300));
    const up = JSON.parse(res.body);
    const g = await getFile(srv.port, `/files/${up.file}`, alice.token);
    assert.ok(g.body.equals(data));
  });

  it('filenames cannot reach the file system', async () => {
    const filesDir = path.join(srv.dir, 'var', 'files');
    const names = ['../../../../etc/passwd', '..\\..\\windows\\win.ini', '/abs/evil.sh',
      'a/../../b.txt', '..', '.', '%2e%2e%2fx.txt', 'ok.tar.gz/..', 'x.ph\\p', '', 'new\u000aline.txt',
      'ünïcödé 文件.txt', 'q"uote.txt', 'evil.<script>', 'C:\\Users\\me\\win.txt'];
    const before = new Set(listTree(filesDir));
    const ids = [];
    for (const name of names) {
      const r = await upload(srv.port, alice.token, [{ name: 'f', filename: name, data: `x${name}` }]);
      const up = assertUploaded(r, {});
      assert.ok(!/[\/\\]/.test(up.filename), `no path in the kept name: ${JSON.stringify(up.filename)}`);
      assert.ok(!/[\u0000-\u001f"]/.test(up.filename), `no control chars: ${JSON.stringify(up.filename)}`);
      assert.notEqual(up.filename, '..');
      ids.push(up.file);
      const g = await getFile(srv.port, `/files/${up.file}`, alice.token);
      assert.equal(g.text, `x${name}`);
      // The header is well formed: the ASCII fallback has no quote or CR/LF.
      assert.match(g.headers['content-disposition'], /^attachment; filename="[^"\r\n]*"; filename\*=UTF-8''[A-Za-z0-9!#$&+\-.^_`|~%]*$/);
    }
    const r = await upload(srv.port, alice.token, [{ name: 'f', filename: 'ünïcödé 文件.txt', data: 'u' }]);
    assert.equal(r.json.filename, 'ünïcödé 文件.txt');
    const w = await upload(srv.port, alice.token, [{ name: 'f', filename: 'C:\\Users\\me\\win.txt', data: 'w' }]);
    assert.equal(w.json.filename, 'win.txt');
    assert.ok(w.json.file.endsWith('.txt'));
    // Only <id> and <id>.meta appeared, all inside the files directory.
    const added = listTree(filesDir).filter((p) => !before.has(p));
    for (const p of added) assert.match(p, /^[0-9a-f]{32}(\.[a-z0-9]{1,8})?(\.meta)?$/, `unexpected entry ${p}`);
    assert.ok(!fs.existsSync(path.join(srv.dir, 'var', 'b.txt')));
    // Traversal through the URL finds nothing either.
    for (const u of ['/files/../jwt.key', '/files/..%2fjwt.key', `/files/${ids[0]}/../../jwt.key`,
      '/files/%2e%2e/%2e%2e/etc/passwd', '/files/.meta', `/files/${ids[0]}.meta`]) {
      const g = await getFile(srv.port, u, alice.token);
      assert.ok(g.status === 404, `${u} -> ${g.status}`);
    }
  });

  it('refuses the unauthorised', async () => {
    const data = Buffer.from('secret bytes');
    const r = await upload(srv.port, null, [{ name: 'f', filename: 's.txt', data }]);
    assertError(r, 401, null, 'upload without a token');
    const bad = await upload(srv.port, `${alice.token}x`, [{ name: 'f', filename: 's.txt', data }]);
    assertError(bad, 401, null, 'upload with a bad token');
    const up = assertUploaded(await upload(srv.port, alice.token, [{ name: 'f', filename: 's.txt', data }]), {});
    assertError(await getFile(srv.port, `/files/${up.file}`, null), 401, null, 'no token');
    assertError(await getFile(srv.port, `/files/${up.file}`, 'nope.nope.nope'), 401, null, 'bad token');
    // A signature for another file, a tampered expiry, an expired link.
    const u = new URL(up.url, 'http://x');
    const sig = u.searchParams.get('sig');
    const exp = Number(u.searchParams.get('expires'));
    assert.ok(exp > Date.now() / 1000, 'the link expires in the future');
    assertError(await getFile(srv.port, `/files/${'a'.repeat(32)}.txt?expires=${exp}&sig=${sig}`, null), 401);
    assertError(await getFile(srv.port, `/files/${up.file}?expires=${exp + 1}&sig=${sig}`, null), 401);
    const key = fs.readFileSync(path.join(srv.dir, 'var', 'jwt.key')).subarray(0, 32);
    const past = Math.floor(Date.now() / 1000) - 10;
    const pastSig = crypto.createHmac('sha256', key).update(`${up.file}\n${past}`).digest('hex');
    assertError(await getFile(srv.port, `/files/${up.file}?expires=${past}&sig=${pastSig}`, null), 401, null, 'expired');
    // The same construction with a future expiry is accepted: the test
    // above fails for the expiry, not for a wrong key.
    const fut = past + 3600;
    const futSig = crypto.createHmac('sha256', key).update(`${up.file}\n${fut}`).digest('hex');
    assertStatus(await getFile(srv.port, `/files/${up.file}?expires=${fut}&sig=${futSig}`, null), 200);
  });

  it('refuses bodies that are not a well-formed upload', async () => {
    const h = { Authorization: `Bearer ${alice.token}` };
    let r = await httpReq(srv.port, 'POST', '/api/upload',
      { body: Buffer.from('{"f":1}'), headers: { ...h, 'Content-Type': 'application/json' } });
    assertError(r, 400, 'bad_request', 'not multipart');
    const m = multipart([{ name: 'g', filename: 'x', data: 'x' }]);
    r = await httpReq(srv.port, 'POST', '/api/upload', { body: m.body, headers: { ...h, 'Content-Type': m.type } });
    assertError(r, 400, 'bad_request', 'no field f');
    const cut = m.body.subarray(0, m.body.length - 10);
    r = await httpReq(srv.port, 'POST', '/api/upload', { body: cut, headers: { ...h, 'Content-Type': m.type } });
    assertError(r, 400, 'bad_request', 'truncated multipart');
    r = await getFile(srv.port, '/api/upload', alice.token);
    assertError(r, 405, null, 'GET /api/upload');
  });
});

describe('uploads, store write failures (failpoints)', () => {
  const fp = process.env.CHATD_FP;
  const opts = { skip: !fp && 'CHATD_FP not set (make e2e sets it)', timeout: 60000 };

  async function withFailpoint(spec, fn) {
    process.env.CHATD_FAILPOINTS = spec;
    let srv;
    try {
      srv = await startChatd({ binary: fp, workers: 1 });
    } finally { delete process.env.CHATD_FAILPOINTS; }
    const api = new Api(srv.port);
    try {
      const user = await api.newUser('fp');
      await fn(srv, user);
    } finally { api.close(); await shutdown(srv); }
  }

  it('a failing disk write answers 500, keeps nothing', opts, async () => {
    await withFailpoint('store_write=eio@2', async (srv, user) => {
      const data = crypto.randomBytes(3 * MiB);
      const r = await upload(srv.port, user.token, [{ name: 'f', filename: 'x.bin', data }]);
      assertError(r, 500, 'storage_error', 'eio');
      await spoolEmpty(srv);
      const files = path.join(srv.dir, 'var', 'files');
      assert.deepEqual(listTree(files), ['tmp'], 'no file, no spool left');
    });
  });

  it('a full disk answers 507', opts, async () => {
    await withFailpoint('store_write=enospc', async (srv, user) => {
      const r = await upload(srv.port, user.token, [{ name: 'f', filename: 'x.bin', data: 'abc' }]);
      assertError(r, 507, 'storage_error', 'enospc');
    });
  });

  it('short writes still store every byte', opts, async () => {
    await withFailpoint('store_write=short@3', async (srv, user) => {
      const data = trickyBytes(300 * 1024 + 5);
      const up = assertUploaded(await upload(srv.port, user.token, [{ name: 'f', filename: 'x.bin', data }]),
        { size: data.length });
      const g = await getFile(srv.port, `/files/${up.file}`, user.token);
      assert.ok(g.body.equals(data));
    });
  });
});

describe('uploads, 200 MiB with the worker memory watched', () => {
  let srv; let api; let user;
  const SIZE = 200 * MiB;

  before(async () => {
    srv = await startChatd({ workers: 1, extra: ['[uploads]', 'max_size = 256M'] });
    api = new Api(srv.port);
    user = await api.newUser('big');
  });
  after(async () => { api.close(); await shutdown(srv); });

  it('streams to disk: RSS grows by less than 8 MiB', async () => {
    const [worker] = srv.workers();
    // Warm up (buffers, pool threads), then take the baseline.
    assertUploaded(await upload(srv.port, user.token, [{ name: 'f', filename: 'w.bin', data: crypto.randomBytes(4 * MiB) }]), {});
    await sleep(200);
    const base = vmRssKiB(worker.pid);
    let peak = base;
    const timer = setInterval(() => { peak = Math.max(peak, vmRssKiB(worker.pid)); }, 20);

    const boundary = 'bigboundary7f3a';
    const head = partHead(boundary, { name: 'f', filename: 'big.bin' });
    const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
    const block = crypto.randomBytes(MiB);
    const hash = crypto.createHash('sha256');
    const res = await new Promise((resolve, reject) => {
      const req = http.request({
        host: '127.0.0.1', port: srv.port, method: 'POST', path: '/api/upload',
        headers: {
          Authorization: `Bearer ${user.token}`,
          'Content-Type': `multipart/form-data; boundary=${boundary}`,
          'Content-Length': head.length + SIZE + tail.length,
        },
      });
      req.setTimeout(120000, () => req.destroy(new Error('timeout')));
      req.on('error', reject);
      req.on('response', (r) => {
        const chunks = [];
        r.on('data', (d) => chunks.push(d));
        r.on('end', () => resolve({ status: r.statusCode, text: Buffer.concat(chunks).toString() }));
      });
      req.write(head);
      let i = 0;
      const pump = () => {
        while (i < SIZE / MiB) {
          // Each MiB differs (its index in the first bytes), so a lost or
          // repeated block changes the hash.
          const b = Buffer.from(block);
          b.writeUInt32BE(i, 0);
          hash.update(b);
          i++;
          if (!req.write(b)) { req.once('drain', pump); return; }
        }
        req.end(tail);
      };
      pump();
    });
    clearInterval(timer);
    peak = Math.max(peak, vmRssKiB(worker.pid));
    assert.equal(res.status, 201, res.text);
    const up = JSON.parse(res.text);
    assert.equal(up.size, SIZE);
    const growth = (peak - base) / 1024;
    console.log(`# worker RSS ${base} KiB before, ${peak} KiB at peak: +${growth.toFixed(1)} MiB`);
    // Under ASan freed memory sits in its quarantine (256 MiB) and every
    // received 4 KiB passes through it: RSS says nothing there.
    if (/libasan/.test(fs.readFileSync(`/proc/${worker.pid}/maps`, 'utf8'))) {
      console.log('# ASan build: the memory bound is checked with the plain build only');
    } else {
      assert.ok(growth < 8, `worker RSS grew by ${growth.toFixed(1)} MiB`);
    }
    // The stored file is the uploaded one.
    const meta = JSON.parse(fs.readFileSync(path.join(srv.dir, 'var', 'files', `${up.file}.meta`), 'utf8'));
    assert.equal(meta.sha256, hash.digest('hex'));
    assert.equal(fs.statSync(path.join(srv.dir, 'var', 'files', up.file)).size, SIZE);
  });
});

// -------------------------------------------------------------- S3 backend

describe('uploads, S3 backend (s3rver)', () => {
  let S3rver;
  try { S3rver = require('s3rver'); } catch { S3rver = null; }
  let s3; let s3port; let lenient; let lenientPort; let tmp; let srv; let api; let user;
  const BUCKET = 'chat-files';

  async function chatdFor(extra) {
    const server = await startChatd({ extra });
    const a = new Api(server.port);
    const u = await a.newUser('s3');
    return { server, a, u };
  }

  function s3conf({ bucket = BUCKET, secret = 'S3RVER', create = false, port } = {}) {
    const keyFile = path.join(tmp, `secret-${crypto.randomBytes(4).toString('hex')}`);
    fs.writeFileSync(keyFile, `${secret}\n`, { mode: 0o600 });
    return ['[uploads]', 'backend = s3', '[s3]', `endpoint = 127.0.0.1:${port || s3port}`, `bucket = ${bucket}`,
      'access_key = S3RVER', `secret_key_file = ${keyFile}`, 'style = path', 'protocol = http',
      `create_bucket = ${create ? 'on' : 'off'}`];
  }

  before(async () => {
    if (!S3rver) return;
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'chatd-s3-'));
    s3port = await freePort();
    s3 = new S3rver({
      port: s3port, address: '127.0.0.1', silent: true, directory: path.join(tmp, 's3'),
      configureBuckets: [{ name: BUCKET }],
    });
    await s3.run();
    // A second service that accepts any well-formed signature, for the
    // create-bucket path that the strict one refuses (see below).
    lenientPort = await freePort();
    lenient = new S3rver({
      port: lenientPort, address: '127.0.0.1', silent: true, directory: path.join(tmp, 's3-lenient'),
      allowMismatchedSignatures: true,
    });
    await lenient.run();
    ({ server: srv, a: api, u: user } = await chatdFor(s3conf()));
  });
  after(async () => {
    if (api) api.close();
    if (srv) await shutdown(srv);
    if (s3) await s3.close();
    if (lenient) await lenient.close();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('round trip through the presigned URL', { skip: !S3rver && 's3rver is not installed' }, async () => {
    const data = trickyBytes(123457);
    const up = assertUploaded(await upload(srv.port, user.token,
      [{ name: 'f', filename: 'photo.jpg', data: Buffer.concat([Buffer.from('ffd8ffe0', 'hex'), data]) }]),
    { type: 'image/jpeg', filename: 'photo.jpg', size: data.length + 4 });
    const u = new URL(up.url);
    assert.equal(u.host, `127.0.0.1:${s3port}`);
    assert.ok(u.searchParams.get('Signature'), `presigned: ${up.url}`);
    assert.ok(Number(u.searchParams.get('Expires')) > Date.now() / 1000, 'expires in the future');
    const g = await httpReq(s3port, 'GET', u.pathname + u.search);
    assertStatus(g, 200, 'presigned GET');
    assert.ok(g.body.equals(Buffer.concat([Buffer.from('ffd8ffe0', 'hex'), data])), 'bytes equal');
    assert.equal(g.headers['content-type'], 'image/jpeg');
    // The URL is signed: tampering with it is refused by the service.
    const t = await httpReq(s3port, 'GET', `${u.pathname}x${u.search}`);
    assert.notEqual(t.status, 200);
    // chatd's own /files/ URL redirects a logged-in user to a fresh one.
    const r = await getFile(srv.port, `/files/${up.file}`, user.token);
    assertStatus(r, 302, 'redirect');
    assert.match(r.headers.location, new RegExp(`^http://127\\.0\\.0\\.1:${s3port}/${BUCKET}/${up.file}\\?`));
    assertError(await getFile(srv.port, `/files/${up.file}`, null), 401);
    // Nothing is left in the spool.
    await spoolEmpty(srv);
  });

  it('wrong secret: 502 with the S3 error code, nothing stored', { skip: !S3rver && 's3rver is not installed' }, async () => {
    const { server, a, u } = await chatdFor(s3conf({ secret: 'not-the-secret' }));
    try {
      const r = await upload(server.port, u.token, [{ name: 'f', filename: 'x.txt', data: 'hello' }]);
      assertError(r, 502, null, 'wrong secret');
      assert.match(r.json.error.message, /SignatureDoesNotMatch/);
      await spoolEmpty(server);
    } finally { a.close(); await shutdown(server); }
  });

  it('a missing bucket without create_bucket: 502 NoSuchBucket', { skip: !S3rver && 's3rver is not installed' }, async () => {
    const { server, a, u } = await chatdFor(s3conf({ bucket: 'not-there' }));
    try {
      const r = await upload(server.port, u.token, [{ name: 'f', filename: 'x.txt', data: 'hello' }]);
      assertError(r, 502, null, 'no bucket');
      assert.match(r.json.error.message, /NoSuchBucket/);
    } finally { a.close(); await shutdown(server); }
  });

  it('bucket auto-create', { skip: !S3rver && 's3rver is not installed' }, async () => {
    // Against a service that checks signatures as libs3 makes them.
    let { server, a, u } = await chatdFor(s3conf({ bucket: 'made-by-chatd', create: true, port: lenientPort }));
    try {
      const r = await upload(server.port, u.token, [{ name: 'f', filename: 'x.txt', data: 'hello' }]);
      const up = assertUploaded(r, { size: 5 });
      assert.ok(fs.existsSync(path.join(tmp, 's3-lenient', 'made-by-chatd')), 'the bucket was created');
      const url = new URL(up.url);
      const g = await httpReq(lenientPort, 'GET', url.pathname + url.search);
      assert.equal(g.text, 'hello');
      // The next upload finds the bucket there.
      assertUploaded(await upload(server.port, u.token, [{ name: 'f', filename: 'y.txt', data: 'again' }]), { size: 5 });
    } finally { a.close(); await shutdown(server); }

    // s3rver's own check refuses libs3 2.0's create-bucket request: libs3
    // signs the resource "/<bucket>/" (the path it sends), s3rver computes
    // "/<bucket>". chatd answers 502 with that code and stores nothing.
    ({ server, a, u } = await chatdFor(s3conf({ bucket: 'strict-create', create: true })));
    try {
      const r = await upload(server.port, u.token, [{ name: 'f', filename: 'x.txt', data: 'hello' }]);
      assertError(r, 502, null, 'create refused');
      assert.match(r.json.error.message, /create bucket failed: SignatureDoesNotMatch/);
      await spoolEmpty(server);
    } finally { a.close(); await shutdown(server); }
  });
});
