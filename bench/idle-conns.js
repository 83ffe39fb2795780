// Memory per idle keep-alive connection: opens N connections to a chatd
// started with 1 worker, sends one request on each, and compares the
// worker's RSS (private, from /proc/PID/smaps_rollup) before and after.
// Usage: node bench/idle-conns.js [N] [--ws]   (build/chatd, or $CHATD, must exist)
// With --ws the connections are WebSocket connections (Node's ws, from
// tests/e2e/node_modules) of one logged-in user, each upgraded and idle.
'use strict';
const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const N = Number(process.argv.find((a) => /^\d+$/.test(a)) || 10000);
const WS = process.argv.includes('--ws');
const top = path.resolve(__dirname, '..');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'chatd-idle-'));
const port = 18090;
fs.writeFileSync(path.join(dir, 'c.conf'), `[server]\nlisten = 127.0.0.1:${port}\nworkers = 1\n` +
  `data_dir = ${dir}/var\nweb_root = ${top}/www\nidle_timeout = 10m\nheader_timeout = 10m\nmax_connections = ${N + 100}\n` +
  '[limits]\nauth_per_ip_per_minute = 0\n');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const rss = (pid) => {
  const t = fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  const kb = (k) => Number((t.match(new RegExp(`^${k}:\\s+(\\d+)`, 'm')) || [0, 0])[1]);
  return { rss: kb('Rss'), priv: kb('Private_Dirty') + kb('Private_Clean') };
};

(async () => {
  const srv = spawn(process.env.CHATD || `${top}/build/chatd`, ['-c', path.join(dir, 'c.conf')], { stdio: 'ignore' });
  await sleep(700);
  const worker = Number(execFileSync('ps', ['--ppid', String(srv.pid), '-o', 'pid=,args='])
    .toString().split('\n').find((l) => /chatd: worker 0/.test(l)).trim().split(/\s+/)[0]);
  let token = null;
  if (WS) {
    const post = (p, body) => fetch(`http://127.0.0.1:${port}${p}`, { method: 'POST', body: JSON.stringify(body) });
    await post('/api/register', { username: 'idle', password: 'password1' });
    token = (await (await post('/api/login', { username: 'idle', password: 'password1' })).json()).token;
  }
  const socks = [];
  // Warm up: a few requests so one-time allocations are not counted.
  for (let i = 0; i < 50; i++) socks.push(await open());
  await sleep(300);
  const before = rss(worker);
  for (let i = 50; i < N; i++) socks.push(await open());
  await sleep(1000);
  const after = rss(worker);
  const per = (k) => ((after[k] - before[k]) * 1024 / (N - 50)).toFixed(0);
  console.log(`worker RSS idle: ${before.rss} KiB (private ${before.priv} KiB)`);
  console.log(`worker RSS with ${N} idle ${WS ? 'WebSocket' : 'keep-alive'} connections: ${after.rss} KiB (private ${after.priv} KiB)`);
  console.log(`per connection: ${per('rss')} bytes RSS, ${per('priv')} bytes private`);
  for (const s of socks) s.destroy();
  srv.kill('SIGTERM');
  fs.rmSync(dir, { recursive: true, force: true });

  function open() {
    if (WS) {
      const WebSocket = require(path.join(top, 'tests/e2e/node_modules/ws'));
      return new Promise((resolve, reject) => {
        const ws = new WebSocket(`ws://127.0.0.1:${port}/ws?token=${token}`, { perMessageDeflate: false });
        ws.on('open', () => resolve({ destroy: () => ws.terminate() }));
        ws.on('error', reject);
      });
    }
    return new Promise((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1', () => s.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n'));
      s.once('data', () => resolve(s));
      s.on('error', reject);
    });
  }
})();
