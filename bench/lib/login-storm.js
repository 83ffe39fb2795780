// A storm of logins at a fixed rate: POST /api/login with the correct
// password, one request every 1/RATE s on a fresh connection, as
// "storm-0" .. "storm-{USERS-1}" in turn (register them first with
// prepare.js setup --storm-users). Open loop: requests are started on
// schedule whether or not earlier ones have been answered, so a slow
// server shows up as requests in flight, not as a lower rate.
// Runs until SIGTERM or SIGINT, then stops issuing, waits (at most 30 s)
// for the answers still due, so the server is left idle, and prints one
// summary line on stdout:
//   sent=N ok=N other=N errors=N rate=R/s p50=Xms p99=Xms max=Xms
//   max_in_flight=N drain=Xms abandoned=N
// "other" counts answers that were not 200 (the first few go to stderr);
// rate is the 200s received while issuing, per second of issuing; the
// latencies cover every login, drained ones included; drain is how long the
// server took to answer the rest; abandoned counts those that never came.
// Usage: node bench/lib/login-storm.js PORT RATE USERS [PASSWORD]
'use strict';
const http = require('node:http');

const port = Number(process.argv[2]);
const rate = Number(process.argv[3] || 50);
const users = Number(process.argv[4] || 1);
const password = process.argv[5] || 'bench-password-1';
const TIMEOUT_MS = 30000;
const SHOWN_FAILURES = 5;	// non-200 answers echoed to stderr
const DRAIN_MS = 30000;		// longest wait for answers after the stop

const period = 1000 / rate;
const latencies = [];
let sent = 0, ok = 0, other = 0, errors = 0, inFlight = 0, maxInFlight = 0;
let started = 0, stopped = 0, okWhileIssuing = 0, timer = null;

function login(user) {
  const data = Buffer.from(JSON.stringify({ username: user, password }));
  const t0 = process.hrtime.bigint();
  inFlight++;
  maxInFlight = Math.max(maxInFlight, inFlight);
  const done = () => {
    inFlight--;
    if (stopped && inFlight === 0) finish();
  };
  const req = http.request({
    host: '127.0.0.1', port, method: 'POST', path: '/api/login', agent: false,
    headers: { 'Content-Type': 'application/json', 'Content-Length': data.length },
  });
  req.setTimeout(TIMEOUT_MS, () => req.destroy(new Error('timeout')));
  req.on('error', (e) => {
    errors++;
    if (errors <= SHOWN_FAILURES) console.error(`login-storm: ${user}: ${e.message}`);
    done();
  });
  req.on('response', (res) => {
    const chunks = [];
    res.on('data', (d) => chunks.push(d));
    res.on('end', () => {
      if (res.statusCode === 200) {
        ok++;
        if (!stopped) okWhileIssuing++;
        latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
      } else {
        other++;
        if (other <= SHOWN_FAILURES) {
          console.error(`login-storm: ${user}: ${res.statusCode} ${Buffer.concat(chunks).toString()}`);
        }
      }
      done();
    });
  });
  req.end(data);
}

// Start every request that is due by now, then sleep until the next one.
function tick() {
  const now = performance.now();
  while (started + sent * period <= now) {
    login(`storm-${sent % users}`);
    sent++;
  }
  timer = setTimeout(tick, Math.max(0, started + sent * period - performance.now()));
}

function pct(sorted, p) {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

function finish() {
  const now = performance.now();
  const s = latencies.slice().sort((a, b) => a - b);
  console.log(`sent=${sent} ok=${ok} other=${other} errors=${errors} ` +
    `rate=${(okWhileIssuing * 1000 / (stopped - started)).toFixed(1)}/s ` +
    `p50=${pct(s, 0.5).toFixed(1)}ms p99=${pct(s, 0.99).toFixed(1)}ms ` +
    `max=${(s[s.length - 1] || NaN).toFixed(1)}ms max_in_flight=${maxInFlight} ` +
    `drain=${(now - stopped).toFixed(0)}ms abandoned=${inFlight}`);
  process.exit(0);
}

function stop() {
  if (stopped) return;
  stopped = performance.now();
  clearTimeout(timer);
  if (inFlight === 0) finish();
  setTimeout(finish, DRAIN_MS);
}

process.on('SIGTERM', stop);
process.on('SIGINT', stop);
started = performance.now();
tick();
