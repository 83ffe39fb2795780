// Drives a steady rate of WebSocket sends at a chatd primary and samples
// its replication lag: for bench/repl-acks.
//
//   node bench/repl-lag.js PORT TOKEN ROOM RATE SECONDS
//
// Opens CONNS (default 8) WebSockets as the user of TOKEN, sends RATE
// messages per second in total (100-byte content, one tick every 10 ms,
// at most WINDOW (default 2000) unacked per connection so a stalled
// server is not buried), and every 100 ms reads GET /metrics of the same
// chatd: chatd_repl_lag_ms (append to standby-durable, last batch) and
// chatd_repl_lag_bytes. Prints one JSON line: the rate achieved (acks/s),
// the sampled lag p50/p99/max in ms, the largest byte lag, and the
// primary's own chatd_repl_lag_p99_ms (over its last 4096 batches).
'use strict';
const http = require('node:http');
const path = require('node:path');
const WebSocket = require(path.join(__dirname, '../tests/e2e/node_modules/ws'));

const [port, token, room, rate, seconds] = process.argv.slice(2);
const CONNS = Number(process.env.CONNS || 8);
const WINDOW = Number(process.env.WINDOW || 2000);
const TICK_MS = 10;
const content = 'x'.repeat(100);

function metrics() {
  return new Promise((resolve) => {
    http.get({ host: '127.0.0.1', port, path: '/metrics', agent: false }, (res) => {
      let text = '';
      res.on('data', (d) => { text += d; });
      res.on('end', () => {
        const m = {};
        for (const line of text.split('\n')) {
          const x = line.match(/^chatd_([a-z0-9_]+) (\d+)$/);
          if (x) m[x[1]] = Number(x[2]);
        }
        resolve(m);
      });
    }).on('error', () => resolve({}));
  });
}

function pct(sorted, p) { return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] : 0; }

(async () => {
  const socks = await Promise.all(Array.from({ length: CONNS }, () => new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`, { headers: { Authorization: `Bearer ${token}` }, perMessageDeflate: false });
    ws.inflight = 0;
    ws.on('open', () => resolve(ws));
    ws.on('error', reject);
    ws.on('message', (d) => {
      const s = d.toString();
      if (s.includes('"type":"ack"')) { ws.inflight--; acks++; } else if (s.includes('"type":"error"')) errors++;
    });
  })));
  let acks = 0;
  let errors = 0;
  let sent = 0;
  let skipped = 0;
  const lagMs = [];
  let maxBytes = 0;
  const perTick = Number(rate) * TICK_MS / 1000;
  let owed = 0;
  const t0 = Date.now();
  const end = t0 + Number(seconds) * 1000;
  const sampler = setInterval(async () => {
    const m = await metrics();
    if (m.repl_lag_ms !== undefined) lagMs.push(m.repl_lag_ms);
    if (m.repl_lag_bytes > maxBytes) maxBytes = m.repl_lag_bytes;
  }, 100);
  await new Promise((resolve) => {
    const tick = setInterval(() => {
      if (Date.now() >= end) { clearInterval(tick); resolve(); return; }
      owed += perTick;
      let k = 0;
      while (owed >= 1) {
        const ws = socks[k++ % CONNS];
        owed--;
        if (ws.inflight >= WINDOW) { skipped++; continue; }
        ws.inflight++;
        sent++;
        ws.send(`{"type":"send","room":"${room}","content":"${content}"}`);
      }
    }, TICK_MS);
  });
  const sendSeconds = (Date.now() - t0) / 1000;
  const ackedInTime = acks;
  for (let i = 0; i < 500 && socks.some((w) => w.inflight > 0); i++) await new Promise((r) => setTimeout(r, 10));
  clearInterval(sampler);
  const last = await metrics();
  for (const ws of socks) ws.close();
  const sorted = lagMs.slice().sort((a, b) => a - b);
  console.log(JSON.stringify({
    target_rate: Number(rate), sent, skipped_window_full: skipped, errors,
    acked_per_s: Math.round(ackedInTime / sendSeconds),
    lag_ms_samples: sorted.length, lag_ms_p50: pct(sorted, 0.5), lag_ms_p99: pct(sorted, 0.99),
    lag_ms_max: sorted.length ? sorted[sorted.length - 1] : 0, lag_bytes_max: maxBytes,
    primary_lag_p99_ms: last.repl_lag_p99_ms,
  }));
  process.exit(0);
})().catch((e) => { console.error(`repl-lag: ${e.message}`); process.exit(1); });
