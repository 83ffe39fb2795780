// Debian's Chromium, headless, driven by playwright-core: a browser for
// the web UI tests, pages that record what a test must see (uncaught
// errors, console errors, dialogs, which should never open), and
// screenshots saved under tests/e2e/artifacts/ (gitignored).
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { chromium } = require('playwright-core');

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ARTIFACTS = path.resolve(__dirname, '..', 'artifacts');

async function launch() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--no-first-run'],
  });
}

// A page in a fresh context (its own localStorage and cookies), with
// page.problems: uncaught page errors and console errors, and
// page.dialogs: every alert/confirm/prompt that opened (then dismissed).
async function newPage(browser, { viewport = { width: 1100, height: 760 }, name = 'page' } = {}) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  page.label = name;
  page.problems = [];
  page.dialogs = [];
  page.on('pageerror', (e) => page.problems.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    // A refused or reset WebSocket is logged by Chromium itself while a
    // server restarts; that is expected in the tests that kill a worker.
    if (m.type() === 'error' && !/WebSocket connection|ERR_CONNECTION|Failed to load resource/.test(m.text())) {
      page.problems.push(`console: ${m.text()}`);
    }
  });
  page.on('dialog', (d) => {
    page.dialogs.push(`${d.type()}: ${d.message()}`);
    d.dismiss().catch(() => {});
  });
  return page;
}

async function screenshot(page, name) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const file = path.join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: false });
  return file;
}

// --- which chatd worker holds the browser's connections --------------------
// A TCP connection between Chromium and chatd shows twice in /proc/net/tcp:
// the browser's end (remote port = chatd's) and chatd's end (local port =
// chatd's). Chromium's end is owned by one of the browser's processes (its
// network service), chatd's by one worker; socket inodes link each end to
// its process through /proc/PID/fd.

function descendants(pid) {
  const kids = new Map();
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    let stat;
    try { stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8'); } catch { continue; }
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (!kids.has(ppid)) kids.set(ppid, []);
    kids.get(ppid).push(Number(d));
  }
  const out = [pid];
  for (let i = 0; i < out.length; i++) out.push(...(kids.get(out[i]) || []));
  return out;
}

// Socket inode -> pid, for the given processes.
function socketInodes(pids) {
  const m = new Map();
  for (const pid of pids) {
    let fds = [];
    try { fds = fs.readdirSync(`/proc/${pid}/fd`); } catch { continue; }
    for (const fd of fds) {
      try {
        const mm = fs.readlinkSync(`/proc/${pid}/fd/${fd}`).match(/^socket:\[(\d+)\]$/);
        if (mm) m.set(mm[1], pid);
      } catch { /* closed meanwhile */ }
    }
  }
  return m;
}

// Established TCP sockets: [{localPort, remotePort, inode}].
function tcpSockets() {
  const out = [];
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text;
    try { text = fs.readFileSync(file, 'utf8'); } catch { continue; }
    for (const line of text.split('\n').slice(1)) {
      const p = line.trim().split(/\s+/);
      if (p.length < 10 || p[3] !== '01') continue; // 01: ESTABLISHED
      const port = (x) => parseInt(x.split(':').pop(), 16);
      out.push({ localPort: port(p[1]), remotePort: port(p[2]), inode: p[9] });
    }
  }
  return out;
}

// [{clientPort, worker}] for each connection from the Chromium this test
// process launched to chatd
// (worker: the pid of the chatd worker holding it, or null).
function browserConnections(srv) {
  // playwright's Browser does not expose its process: take the Chromium
  // processes started under this test process.
  const chromium = descendants(process.pid).filter((pid) => {
    try { return /chrom/.test(fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8')); } catch { return false; }
  });
  const mine = socketInodes(chromium);
  const workers = socketInodes(srv.workers().map((w) => w.pid));
  const socks = tcpSockets();
  const out = [];
  for (const s of socks) {
    if (s.remotePort !== srv.port || !mine.has(s.inode)) continue;
    const server = socks.find((x) => x.localPort === srv.port && x.remotePort === s.localPort);
    out.push({ clientPort: s.localPort, worker: server ? workers.get(server.inode) || null : null });
  }
  return out;
}

module.exports = { launch, newPage, screenshot, browserConnections, ARTIFACTS };
