// Memory per idle keep-alive connection: opens N connections to a chatd
// started with 1 worker, sends one request on each, and compares the
// worker's RSS (private, from /proc/PID/smaps_rollup) before and after.
// Usage: node bench/idle-conns.js [N]   (build/chatd must exist)
'use strict';
const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const N = Number(process.argv[2] || 10000);
const top = path.resolve(__dirname, '..');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'chatd-idle-'));
const port = 18090;
fs.writeFileSync(path.join(dir, 'c.conf'), `[server]\nlisten = 127.0.0.1:${port}\nworkers = 1\n` +
  `data_dir = ${dir}/var\nweb_root = ${top}/www\nidle_timeout = 10m\nheader_timeout = 10m\nmax_connections = ${N + 100}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const rss = (pid) => {
  const t = fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  const kb = (k) => Number((t.match(new RegExp(`^${k}:\\s+(\\d+)`, 'm')) || [0, 0])[1]);
  return { rss: kb('Rss'), priv: kb('Private_Dirty') + kb('Private_Clean') };
};

(async () => {
  const srv = spawn(`${top}/build/chatd`, ['-c', path.join(dir, 'c.conf')], { stdio: 'ignore' });
  await sleep(700);
  const worker = Number(execFileSync('pgrep', ['-P', String(srv.pid)]).toString().trim());
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
  console.log(`worker RSS with ${N} idle keep-alive connections: ${after.rss} KiB (private ${after.priv} KiB)`);
  console.log(`per connection: ${per('rss')} bytes RSS, ${per('priv')} bytes private`);
  for (const s of socks) s.destroy();
  srv.kill('SIGTERM');
  fs.rmSync(dir, { recursive: true, force: true });

  function open() {
    return new Promise((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1', () => s.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n'));
      s.once('data', () => resolve(s));
      s.on('error', reject);
    });
  }
})();
