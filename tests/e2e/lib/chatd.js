// Starts and stops a real chatd for a test, and talks to it over raw
// sockets, so the tests see exactly the bytes chatd sends.
'use strict';
const { spawn, spawnSync, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const CHATD = process.env.CHATD || path.resolve(__dirname, '../../../build/chatd');
const ROOT = path.resolve(__dirname, '../../..');

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// One HTTP exchange (or several, pipelined) on a fresh connection: writes
// `chunks` (strings or Buffers; numbers are pauses in ms), then collects
// everything until the server closes or `idleMs` passes without data.
function raw(port, chunks, { idleMs = 1000, host = '127.0.0.1' } = {}) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, host);
    const got = [];
    let timer = null;
    let closed = false;
    const finish = () => {
      clearTimeout(timer);
      sock.destroy();
      resolve({ text: Buffer.concat(got).toString('latin1'), closed });
    };
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(finish, idleMs);
    };
    sock.on('data', (d) => { got.push(d); arm(); });
    sock.on('end', () => { closed = true; finish(); });
    sock.on('error', (e) => {
      if (e.code === 'ECONNRESET' || e.code === 'EPIPE') { closed = true; finish(); } else reject(e);
    });
    sock.on('connect', async () => {
      for (const c of [].concat(chunks)) {
        if (typeof c === 'number') await sleep(c);
        else if (!sock.destroyed) sock.write(c);
      }
      arm();
    });
  });
}

// Split a byte stream of responses into [{status, headers, body}], using
// Content-Length (chatd always sends it).
function parseResponses(text) {
  const out = [];
  let rest = text;
  while (rest.length) {
    const end = rest.indexOf('\r\n\r\n');
    if (end < 0) break;
    const head = rest.slice(0, end).split('\r\n');
    const status = Number(head[0].split(' ')[1]);
    const headers = {};
    for (const line of head.slice(1)) {
      const i = line.indexOf(':');
      headers[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
    }
    const len = status === 100 || status === 304 ? 0 : Number(headers['content-length'] || 0);
    out.push({ status, headers, body: rest.slice(end + 4, end + 4 + len), head: head[0] });
    rest = rest.slice(end + 4 + len);
  }
  return out;
}

function curl(args) {
  const r = spawnSync('curl', ['-sS', '--max-time', '10', ...args], { encoding: 'latin1' });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

// Children of a pid, with their command lines as ps shows them.
function children(pid) {
  const out = execFileSync('ps', ['--ppid', String(pid), '-o', 'pid=,args='], { encoding: 'utf8' });
  return out.split('\n').filter(Boolean).map((l) => {
    const m = l.trim().match(/^(\d+)\s+(.*)$/);
    return { pid: Number(m[1]), args: m[2] };
  });
}

// opts.reuse: a stopped server whose directory, port and configuration
// are used again; opts.args: extra command-line arguments; opts.binary: the
// chatd to run (default CHATD); opts.host: the address to listen on and to
// probe /healthz at (default 127.0.0.1); opts.wrap: a command prefix that
// runs chatd in place, e.g. ['ip', 'netns', 'exec', name] (it must exec
// chatd, not fork it, so proc.pid stays chatd's master).
async function startChatd(opts = {}) {
  const host = opts.host || '127.0.0.1';
  const dir = opts.reuse ? opts.reuse.dir : fs.mkdtempSync(path.join(os.tmpdir(), 'chatd-e2e-'));
  const port = opts.reuse ? opts.reuse.port : opts.port || await freePort();
  const webRoot = opts.webRoot || path.join(ROOT, 'www');
  const conf = [
    '[server]',
    `listen = ${host}:${port}`,
    `workers = ${opts.workers || 2}`,
    `data_dir = ${path.join(dir, 'var')}`,
    `web_root = ${webRoot}`,
    `log_level = ${opts.logLevel || 'info'}`,
    ...(opts.server || []),
    ...(opts.extra || []),
  ].join('\n') + '\n';
  const confPath = path.join(dir, 'chatd.conf');
  if (!opts.reuse) fs.writeFileSync(confPath, conf);
  const logPath = path.join(dir, `chatd-${Date.now()}.log`);
  const log = fs.openSync(logPath, 'w');
  const argv = [opts.binary || CHATD, '-c', confPath, ...(opts.args || [])];
  const cmd = [...(opts.wrap || []), ...argv];
  const proc = spawn(cmd[0], cmd.slice(1), { stdio: ['ignore', log, log] });
  fs.closeSync(log);
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  const srv = {
    port, host, dir, confPath, proc, exited, pid: proc.pid,
    url: `http://${host}:${port}`,
    log: () => fs.readFileSync(logPath, 'utf8'),
    workers: () => children(proc.pid).filter((c) => /chatd: worker/.test(c.args)),
    async stop(signal = 'SIGTERM') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      let timer;
      const r = await Promise.race([exited,
        new Promise((resolve) => { timer = setTimeout(() => resolve(null), 20000); })]);
      clearTimeout(timer);
      if (!r) proc.kill('SIGKILL');
      return r;
    },
    async cleanup() {
      await srv.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  const deadline = Date.now() + 15000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`chatd exited at start:\n${srv.log()}`);
    try {
      const r = await raw(port, 'GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n', { idleMs: 500, host });
      if (/^HTTP\/1\.1 200/.test(r.text) && srv.workers().length === (opts.workers || 2)) break;
    } catch (e) { /* not listening yet */ }
    if (Date.now() > deadline) throw new Error(`chatd did not come up:\n${srv.log()}`);
    await sleep(50);
  }
  return srv;
}

// Polls pred every `every` ms until it returns something truthy, which it
// returns; throws "timed out waiting for <what>" after ms.
async function waitFor(pred, what, ms = 10000, every = 50) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(every);
  }
}

module.exports = { startChatd, raw, parseResponses, curl, children, freePort, sleep, waitFor, CHATD, ROOT };
