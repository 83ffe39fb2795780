// The web UI (www/, served by chatd) in a real browser: Debian's Chromium,
// headless, driven by playwright-core. Two browser contexts are two users
// (alice and bob, with their own localStorage) on one chatd with 2
// workers. The tests run in order and build on each other: register, a
// room, live messages, history after a reload and upward paging, HTML
// shown as text, a DM, presence, a phone-sized screen, a worker killed
// under a connection, a forged token, a send whose ack is lost, a resume
// past the server's replay limit, uploads. Two of them put the page's
// WebSocket behind playwright's routeWebSocket to lose frames on purpose.
// Screenshots of the main states go to tests/e2e/artifacts/.
'use strict';
const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const path = require('node:path');
const { startChatd, sleep, ROOT } = require('./lib/chatd');
const { Api } = require('./lib/api');
const { WsClient } = require('./lib/wsclient');
const { launch, newPage, screenshot, browserConnections } = require('./lib/browser');

const NO_AUTH_LIMITS = ['auth_per_ip_per_minute = 0', 'auth_failures_per_user_per_minute = 0'];
const WAIT_MS = 8000;           // for anything live (a frame, a render)
const ROOMS_POLL_WAIT_MS = 9000; // the page re-reads its room list every 5 s
const XSS = '<img src=x onerror=alert(1)>';

const tag = () => crypto.randomBytes(3).toString('hex');

// The messages the page shows in the open room, in order.
function shown(page) {
  return page.$$eval('#msg-list > li', (lis) => lis.map((li) => ({
    seq: li.dataset.seq ? Number(li.dataset.seq) : null,
    author: li.querySelector('.author').textContent,
    text: li.querySelector('.body').textContent,
    own: li.classList.contains('own'),
    pending: li.classList.contains('pending') || li.classList.contains('slow') || li.classList.contains('failed'),
    imgs: li.querySelectorAll('img').length,
  })));
}

// Waits until the open room shows a stored (acked) message with this text.
// On a timeout the error says what the page did show.
async function waitForMessage(page, text, timeout = WAIT_MS) {
  try {
    await page.waitForFunction((t) => [...document.querySelectorAll('#msg-list > li[data-seq] .body')]
      .some((b) => b.textContent === t), text, { timeout });
  } catch (e) {
    const state = await page.evaluate(() => ({
      conn: document.getElementById('conn-state').dataset.state,
      connects: document.body.dataset.connects,
      room: document.getElementById('chat-name').textContent,
    })).catch(() => ({}));
    const last = (await shown(page).catch(() => [])).slice(-5).map((m) => `${m.seq}:${m.text.slice(0, 40)}`);
    throw new Error(`${page.label} waited ${timeout} ms for ${JSON.stringify(text)}; page: ${JSON.stringify(state)}; ` +
      `last shown: ${JSON.stringify(last)}`, { cause: e });
  }
}

async function register(page, url, name, password) {
  await page.goto(url);
  await page.fill('#auth-user', name);
  await page.fill('#auth-pass', password);
  await page.click('#register-btn');
  await page.waitForSelector('#app:not([hidden])', { timeout: WAIT_MS });
  await page.waitForSelector('#conn-state[data-state="online"]', { timeout: WAIT_MS });
}

async function openRoom(page, id, timeout = WAIT_MS) {
  const sel = `#room-list li[data-room="${id}"] button`;
  await page.waitForSelector(sel, { timeout });
  await page.click(sel);
  await page.waitForFunction((r) => document.getElementById('chat-name').textContent.includes(r.split(':').pop()) ||
    document.querySelector(`#room-list li.current[data-room="${r}"]`), id, { timeout });
}

async function typeAndSend(page, text) {
  await page.fill('#input', text);
  await page.press('#input', 'Enter');
}

const token = (page) => page.evaluate(() => localStorage.getItem('chatd.token'));

// Every seq once, and no hole between the first and the last.
function assertGapless(list, what) {
  const seqs = list.filter((m) => m.seq !== null).map((m) => m.seq);
  const s = JSON.stringify(seqs);
  assert.equal(new Set(seqs).size, seqs.length, `${what}: a seq shown twice: ${s}`);
  for (let i = 1; i < seqs.length; i++) assert.equal(seqs[i], seqs[i - 1] + 1, `${what}: not gapless in order: ${s}`);
}

describe('web UI in Chromium', { timeout: 120000 }, () => {
  let srv;
  let api;
  let browser;
  let A; // alice's page
  let B; // bob's page
  const alice = { name: `alice-${tag()}`, password: 'alice password 1' };
  const bob = { name: `bob-${tag()}`, password: 'bob password 12' };
  const room = `Room-${tag()}`;

  before(async () => {
    // idle_timeout 1s: idle keep-alive HTTP connections close quickly, so
    // the only lasting connection from a page is its WebSocket.
    srv = await startChatd({
      workers: 2,
      webRoot: path.join(ROOT, 'www'),
      server: ['idle_timeout = 1s'],
      extra: ['[limits]', ...NO_AUTH_LIMITS],
    });
    api = new Api(srv.port, { keepAlive: false });
    browser = await launch();
    A = await newPage(browser, { name: 'alice' });
    B = await newPage(browser, { name: 'bob' });
  });

  after(async () => {
    for (const p of [A, B]) {
      if (p) assert.deepEqual(p.dialogs, [], `${p.label}: no dialog may open`);
    }
    if (browser) await browser.close();
    if (api) api.close();
    let log = '';
    if (srv) {
      await srv.stop();
      log = srv.log();
      await srv.cleanup();
    }
    // Under a sanitizer build (CHATD=.../san/chatd) a report fails the suite.
    assert.doesNotMatch(log, /AddressSanitizer|LeakSanitizer|runtime error:/, 'no sanitizer report in the chatd log');
    for (const p of [A, B]) {
      if (p) assert.deepEqual(p.problems, [], `${p.label}: page errors`);
    }
  });

  it('shows register and login errors next to the form, then registers two users', async () => {
    await A.goto(srv.url);
    await A.waitForSelector('#auth:not([hidden])');
    await A.fill('#auth-user', 'Not Valid');
    await A.fill('#auth-pass', 'short');
    await A.click('#register-btn');
    assert.match(await A.textContent('#auth-user-error'), /\S/, 'client-side username error');
    assert.match(await A.textContent('#auth-pass-error'), /8 to 256/);

    // The server's own errors: a wrong password, a taken name.
    await register(A, srv.url, alice.name, alice.password);
    await B.goto(srv.url);
    await B.fill('#auth-user', alice.name);
    await B.fill('#auth-pass', 'wrong password');
    await B.click('#login-btn');
    await B.waitForFunction(() => document.getElementById('auth-error').textContent.length > 0, null, { timeout: WAIT_MS });
    assert.equal(await B.isVisible('#app'), false, 'a wrong password does not log in');
    await B.click('#register-btn');
    await B.waitForFunction(() => document.getElementById('auth-user-error').textContent.length > 0, null, { timeout: WAIT_MS });
    await screenshot(B, '01-login-errors');
    assert.equal(await B.evaluate(() => localStorage.getItem('chatd.token')), null, 'no token kept after failures');

    await register(B, srv.url, bob.name, bob.password);
    assert.match(await token(B), /^[\w-]+\.[\w-]+\.[\w-]+$/, 'the token is kept in localStorage');
    assert.equal(await B.textContent('#me-name'), bob.name);
  });

  it('creates a room with a participant; messages appear live in both pages', async () => {
    await A.click('#new-room summary');
    await A.fill('#room-id', room);
    await A.fill('#room-people', bob.name);
    await A.click('#room-form button[type=submit]');
    await A.waitForSelector(`#room-list li.current[data-room="${room}"]`, { timeout: WAIT_MS });

    // Before bob opens the room: the list shows it with an unread count
    // and the last message.
    await typeAndSend(A, 'first from alice');
    await waitForMessage(A, 'first from alice');
    const li = `#room-list li[data-room="${room}"]`;
    // (The count can show before the message itself has arrived.)
    await B.waitForFunction((s) => /first from alice/.test(document.querySelector(`${s} .room-last`)?.textContent),
      li, { timeout: ROOMS_POLL_WAIT_MS });
    assert.equal(await B.textContent(`${li} .unread`), '1');
    assert.equal(await B.textContent(`${li} .room-last`), `${alice.name}: first from alice`);
    await screenshot(B, '02-room-list-unread');

    await openRoom(B, room);
    await waitForMessage(B, 'first from alice');
    await B.waitForFunction((s) => !document.querySelector(`${s} .unread`), li, { timeout: WAIT_MS });

    // Enter sends, Shift+Enter is a new line.
    await B.fill('#input', 'line one');
    await B.press('#input', 'Shift+Enter');
    await B.type('#input', 'line two');
    assert.equal(await B.inputValue('#input'), 'line one\nline two', 'Shift+Enter adds a line');
    await B.press('#input', 'Enter');
    assert.equal(await B.inputValue('#input'), '', 'Enter sent and cleared the input');
    await waitForMessage(A, 'line one\nline two');
    await waitForMessage(B, 'line one\nline two');

    await typeAndSend(A, 'second from alice');
    await waitForMessage(B, 'second from alice');
    await waitForMessage(A, 'second from alice'); // acked there too
    const a = await shown(A);
    const b = await shown(B);
    assert.deepEqual(a.map((m) => m.text), ['first from alice', 'line one\nline two', 'second from alice']);
    assert.deepEqual(b.map((m) => [m.seq, m.author, m.text]), a.map((m) => [m.seq, m.author, m.text]),
      'both pages show the same messages, seqs and authors');
    assert.deepEqual(a.map((m) => m.own), [true, false, true], 'alice\'s own messages are marked own');
    assert.deepEqual(b.map((m) => m.own), [false, true, false], 'bob\'s own messages are marked own');
    const align = await A.$$eval('#msg-list > li', (lis) => lis.map((x) => getComputedStyle(x).alignSelf));
    assert.deepEqual(align, ['flex-end', 'flex-start', 'flex-end'], 'own messages are aligned apart');
    assert.match(await A.textContent('#msg-list > li .time'), /^\d\d:\d\d$/, 'each message shows its time');
    await screenshot(A, '03-room-alice');
    await screenshot(B, '04-room-bob');
  });

  it('shows message HTML as text, and no script runs', async () => {
    await typeAndSend(A, XSS);
    await waitForMessage(B, XSS);
    await waitForMessage(A, XSS);
    for (const p of [A, B]) {
      const last = (await shown(p)).pop();
      assert.equal(last.text, XSS);
      assert.equal(last.imgs, 0, `${p.label}: no <img> element made from the text`);
      assert.equal(await p.$$eval('#msg-list img, #room-list img', (x) => x.length), 0);
    }
    assert.equal(await B.textContent(`#room-list li[data-room="${room}"] .room-last`), `${alice.name}: ${XSS}`);
    await sleep(300); // an onerror would have fired by now
    assert.deepEqual(A.dialogs, []);
    assert.deepEqual(B.dialogs, []);
    await screenshot(B, '05-html-as-text');
  });

  it('keeps the session over a reload and shows the history; pages upward with before', async () => {
    // 120 more messages over REST, so the room has more than one page.
    const t = await token(A);
    for (let i = 1; i <= 120; i++) await api.sendOk(t, room, `bulk ${i}`, `bulk-${i}`);
    await waitForMessage(B, 'bulk 120');

    await B.reload();
    await B.waitForSelector('#app:not([hidden])', { timeout: WAIT_MS });
    assert.equal(await B.textContent('#me-name'), bob.name, 'still logged in after a reload');
    await B.waitForSelector(`#room-list li.current[data-room="${room}"]`, { timeout: WAIT_MS });
    await waitForMessage(B, 'bulk 120');
    const first = await shown(B);
    assert.ok(first.length >= 50 && first.length < 124, `a reload shows the newest page, not all: ${first.length}`);
    assertGapless(first, 'after reload');

    // Scroll to the top until the start of the room is shown.
    for (let i = 0; i < 10; i++) {
      const n = (await shown(B)).length;
      if (n === 124) break;
      await B.evaluate(() => { document.getElementById('messages').scrollTop = 0; });
      await B.waitForFunction((k) => document.querySelectorAll('#msg-list > li').length > k, n, { timeout: WAIT_MS });
    }
    const all = await shown(B);
    assertGapless(all, 'after paging up');
    assert.equal(all.length, 124);
    assert.equal(all[0].seq, 1);
    assert.deepEqual(all.slice(0, 3).map((m) => m.text), ['first from alice', 'line one\nline two', 'second from alice']);
    assert.equal(all[3].text, XSS);
    assert.equal(all[123].text, 'bulk 120');
    await B.waitForFunction(() => /Start/.test(document.getElementById('history-state').textContent));
    await screenshot(B, '06-history-top');
  });

  it('delivers a direct message by username', async () => {
    await A.click('#new-dm summary');
    await A.fill('#dm-user', bob.name);
    await A.click('#dm-form button[type=submit]');
    const dm = `dm:${[alice.name, bob.name].sort().join(':')}`;
    await A.waitForSelector(`#room-list li.current[data-room="${dm}"]`);
    await typeAndSend(A, 'psst, bob');
    await waitForMessage(A, 'psst, bob');
    await B.waitForSelector(`#room-list li[data-room="${dm}"]`, { timeout: WAIT_MS });
    assert.equal(await B.textContent(`#room-list li[data-room="${dm}"] .room-name`), alice.name,
      'a DM is listed under the other user\'s name');
    await openRoom(B, dm);
    await waitForMessage(B, 'psst, bob');
    await typeAndSend(B, 'hi alice');
    await waitForMessage(A, 'hi alice');
    assert.deepEqual((await shown(A)).map((m) => [m.seq, m.author, m.text]),
      [[1, alice.name, 'psst, bob'], [2, bob.name, 'hi alice']]);
    await screenshot(A, '07-dm-alice');
  });

  it('shows online users with status dots, updated by presence', async () => {
    const sel = (u, s) => `#user-list li[data-user="${u}"][data-status="${s}"]`;
    await A.waitForSelector(sel(bob.name, 'active'), { timeout: WAIT_MS });
    await B.selectOption('#status-select', 'busy');
    await A.waitForSelector(sel(bob.name, 'busy'), { timeout: WAIT_MS });
    const dot = await A.$eval(`${sel(bob.name, 'busy')} .dot`, (d) => getComputedStyle(d).backgroundColor);
    assert.equal(dot, 'rgb(217, 58, 43)', 'busy is a red dot');
    // The DM header and room list follow the same presence.
    const dm = `dm:${[alice.name, bob.name].sort().join(':')}`;
    await A.waitForSelector(`#room-list li[data-room="${dm}"] .dot[data-status="busy"]`, { timeout: WAIT_MS });
    await B.waitForSelector('#me-dot[data-status="busy"]');
    await A.waitForFunction(() => /^busy since \d\d:\d\d/.test(document.getElementById('chat-sub').textContent),
      null, { timeout: WAIT_MS }); // the open DM's header
    await screenshot(A, '08-presence-busy');
    await B.selectOption('#status-select', 'away');
    await A.waitForSelector(sel(bob.name, 'away'), { timeout: WAIT_MS });
    await B.selectOption('#status-select', 'active');
    await A.waitForSelector(sel(bob.name, 'active'), { timeout: WAIT_MS });
  });

  it('works on a narrow phone screen', async () => {
    const P = await newPage(browser, { name: 'phone', viewport: { width: 360, height: 700 } });
    try {
      await P.goto(srv.url);
      await P.fill('#auth-user', alice.name);
      await P.fill('#auth-pass', alice.password);
      await P.click('#login-btn');
      await P.waitForSelector(`#room-list li[data-room="${room}"]`, { timeout: WAIT_MS });
      assert.equal(await P.isVisible('#chat'), false, 'the room list alone on a phone');
      await screenshot(P, '09-phone-rooms');
      await P.click(`#room-list li[data-room="${room}"] button`);
      await waitForMessage(P, 'bulk 120');
      assert.equal(await P.isVisible('#sidebar'), false, 'the chat alone on a phone');
      const width = await P.evaluate(() => document.documentElement.scrollWidth);
      assert.ok(width <= 360, `no sideways scrolling: ${width}px`);
      const long = 'x'.repeat(300);
      await typeAndSend(P, long);
      await waitForMessage(P, long);
      const w2 = await P.evaluate(() => document.documentElement.scrollWidth);
      assert.ok(w2 <= 360, `a long word wraps: ${w2}px`);
      await screenshot(P, '10-phone-chat');
      await P.click('#back-btn');
      assert.equal(await P.isVisible('#sidebar'), true);
      assert.deepEqual(P.problems, []);
      // Logging out drops the token.
      await P.click('#logout-btn');
      await P.waitForSelector('#auth:not([hidden])');
      assert.equal(await P.evaluate(() => localStorage.getItem('chatd.token')), null);
    } finally {
      await P.context().close();
    }
  });

  it('recovers from kill -9 of the worker holding the connection, losing and doubling nothing', async () => {
    await openRoom(A, room);
    await waitForMessage(A, 'x'.repeat(300));
    // Only alice's WebSocket stays open from this browser: bob's page goes
    // away, and idle HTTP connections close after 1 s.
    await B.goto('about:blank');
    let conns = [];
    const deadline = Date.now() + 6000;
    for (;;) {
      conns = browserConnections(srv);
      if (conns.length === 1 && conns[0].worker) break;
      assert.ok(Date.now() < deadline, `one lasting connection from the browser: ${JSON.stringify(conns)}`);
      await sleep(200);
    }
    const victim = conns[0].worker;
    const connects = Number(await A.evaluate(() => document.body.dataset.connects));

    const tb = (await api.login(bob.name, bob.password)).json.token;
    await api.sendOk(tb, room, 'before the kill', 'k0');
    await waitForMessage(A, 'before the kill');

    process.kill(victim, 'SIGKILL');
    // alice writes while her connection is gone: pending, then sent once.
    await typeAndSend(A, 'written during the outage');
    // bob writes over REST meanwhile; a request that lands on the dying
    // worker is retried with the same id (stored once either way).
    for (let i = 1; i <= 5; i++) {
      for (let tries = 0; ; tries++) {
        try {
          const r = await api.send(tb, room, `during ${i}`, `k${i}`);
          if (r.status === 200) break;
        } catch { /* the worker died under this request */ }
        assert.ok(tries < 50, `send during ${i}`);
        await sleep(100);
      }
    }
    await A.waitForFunction((n) => Number(document.body.dataset.connects) > n, connects, { timeout: 15000 });
    for (let i = 1; i <= 5; i++) await waitForMessage(A, `during ${i}`, 15000);
    await waitForMessage(A, 'written during the outage', 15000);
    await A.waitForFunction(() => !document.querySelector('#msg-list li.pending, #msg-list li.slow'), null, { timeout: WAIT_MS });
    await screenshot(A, '11-after-worker-kill');

    const list = await shown(A);
    assertGapless(list, 'alice after the kill');
    const texts = list.map((m) => m.text);
    for (const t of ['before the kill', 'written during the outage', 'during 1', 'during 5']) {
      assert.equal(texts.filter((x) => x === t).length, 1, `"${t}" shown once`);
    }
    // The server stored each message once, and alice shows all it has.
    const hist = await api.historyAll(tb, room);
    assert.equal(hist.filter((m) => m.content === 'written during the outage').length, 1, 'stored once');
    assert.equal(list[list.length - 1].seq, Math.max(...hist.map((m) => m.seq)), 'alice is up to date');

    // bob comes back and sees it all too.
    await B.goto(srv.url);
    await openRoom(B, room);
    await waitForMessage(B, 'written during the outage');
    await waitForMessage(B, 'during 5');
    assertGapless(await shown(B), 'bob after the kill');
  });

  it('drops the token and shows the login form on 401', async () => {
    // A forged token: the server answers 401 and the page logs out.
    await B.goto(srv.url);
    await B.waitForSelector('#app:not([hidden])', { timeout: WAIT_MS });
    await B.evaluate(() => localStorage.setItem('chatd.token', 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4IiwiZXhwIjo0MTAyNDQ0ODAwfQ.AAAA'));
    await B.reload();
    await B.waitForSelector('#auth:not([hidden])', { timeout: WAIT_MS });
    assert.equal(await B.evaluate(() => localStorage.getItem('chatd.token')), null);
    assert.match(await B.textContent('#auth-error'), /session/i);
    // bob has no connection left: alice sees him go offline.
    await A.waitForFunction((u) => !document.querySelector(`#user-list li[data-user="${u}"]`), bob.name, { timeout: WAIT_MS });
    await A.waitForSelector(`#room-list .dot[data-status="offline"]`, { timeout: WAIT_MS });
    // And logs in again.
    await B.fill('#auth-user', bob.name);
    await B.fill('#auth-pass', bob.password);
    await B.click('#login-btn');
    await B.waitForSelector('#conn-state[data-state="online"]', { timeout: WAIT_MS });
    await A.waitForSelector(`#user-list li[data-user="${bob.name}"][data-status="active"]`, { timeout: WAIT_MS });
  });

  it('keeps a send pending until its ack; after a lost ack it resends the same id, stored once', async () => {
    // A third page (bob again) whose WebSocket passes through the test: on
    // its first connection the ack and the echo of one message are held
    // back, as if the connection died right after the send.
    const C = await newPage(browser, { name: 'bob-proxied' });
    const sends = [];
    let first = null;
    try {
      await C.context().routeWebSocket(/\/ws/, (ws) => {
        const server = ws.connectToServer();
        const n = first ? 2 : 1;
        if (!first) first = ws;
        ws.onMessage((m) => {
          const f = JSON.parse(m);
          if (f.type === 'send' && f.content === 'held back') sends.push({ conn: n, id: f.id });
          server.send(m);
        });
        server.onMessage((m) => {
          const f = JSON.parse(m);
          const mine = sends.find((x) => x.conn === 1 && x.id === f.id);
          if (n === 1 && mine && (f.type === 'ack' || f.type === 'msg')) return;
          ws.send(m);
        });
      });
      await C.goto(srv.url);
      await C.fill('#auth-user', bob.name);
      await C.fill('#auth-pass', bob.password);
      await C.click('#login-btn');
      await C.waitForSelector('#conn-state[data-state="online"]', { timeout: WAIT_MS });
      await openRoom(C, room);
      await typeAndSend(C, 'held back');
      await C.waitForSelector('#msg-list li.pending', { timeout: WAIT_MS });
      const p = (await shown(C)).pop();
      assert.deepEqual([p.text, p.pending, p.seq], ['held back', true, null], 'shown as pending, without a seq');
      assert.match(await C.textContent('#msg-list li.pending .send-state'), /sending/);
      await sleep(300);
      assert.equal(await C.$$eval('#msg-list li.pending', (x) => x.length), 1, 'still pending without its ack');
      await screenshot(C, '12-pending-send');

      await first.close({ code: 1001, reason: 'test' });
      await waitForMessage(C, 'held back', 15000);
      assert.equal(await C.$$eval('#msg-list li.pending', (x) => x.length), 0);
      assert.equal(sends.length, 2, `sent on the first connection and again on the next: ${JSON.stringify(sends)}`);
      assert.equal(sends[0].id, sends[1].id, 'the retry carries the same id');
      const list = await shown(C);
      assertGapless(list, 'after the resend');
      assert.equal(list.filter((m) => m.text === 'held back').length, 1, 'shown once');
      const tb = (await api.login(bob.name, bob.password)).json.token;
      const hist = await api.historyAll(tb, room);
      assert.equal(hist.filter((m) => m.content === 'held back').length, 1, 'stored once');
      await waitForMessage(A, 'held back');
      assert.deepEqual(C.problems, []);
    } finally {
      await C.context().close();
    }
  });

  it('after missing more than the server replays (truncated), pages the rest in: nothing lost', { timeout: 60000 }, async () => {
    // bob's page misses every frame while `deaf`, as if the network had
    // died silently; then the connection closes and the page resumes with
    // since, over more messages than the server replays (1000).
    const D = await newPage(browser, { name: 'bob-deaf' });
    let deaf = false;
    let current = null;
    const truncated = [];
    const MISSED = 1100;
    try {
      await D.context().routeWebSocket(/\/ws/, (ws) => {
        const server = ws.connectToServer();
        current = ws;
        ws.onMessage((m) => server.send(m));
        server.onMessage((m) => {
          if (deaf && ws === current) return;
          if (JSON.parse(m).type === 'truncated') truncated.push(JSON.parse(m));
          ws.send(m);
        });
      });
      await D.goto(srv.url);
      await D.fill('#auth-user', bob.name);
      await D.fill('#auth-pass', bob.password);
      await D.click('#login-btn');
      await D.waitForSelector('#conn-state[data-state="online"]', { timeout: WAIT_MS });
      await openRoom(D, room);
      await waitForMessage(D, 'held back');
      const lastSeen = (await shown(D)).pop().seq;

      deaf = true;
      const t = await token(A);
      // alice sends them over a WebSocket of her own, a window at a time.
      const ws = await WsClient.connect(srv.port, { token: t, name: 'alice-bulk' });
      try {
        const WINDOW = 100;
        for (let i = 1; i <= MISSED; i += WINDOW) {
          const from = ws.frames.length;
          const n = Math.min(WINDOW, MISSED - i + 1);
          for (let k = i; k < i + n; k++) ws.send({ type: 'send', room, content: `missed ${k}`, id: `missed-${k}` });
          await ws.waitCount((f) => f.type === 'ack' || f.type === 'error', n, { from, timeout: 15000, what: 'acks' });
          const errors = ws.frames.slice(from).filter((f) => f.type === 'error');
          assert.deepEqual(errors, [], 'every bulk send acked');
        }
      } finally {
        await ws.close();
      }
      assert.ok(!(await shown(D)).some((m) => m.text === 'missed 1'), 'the page really missed them');
      const deafConn = current;
      deaf = false;
      await deafConn.close({ code: 1006, reason: 'network gone' }).catch(() => deafConn.close());
      await waitForMessage(D, `missed ${MISSED}`, 20000);
      assert.equal(truncated.length, 1, 'the server said the replay was truncated');
      assert.ok(truncated[0].first_seq > lastSeen + 1, JSON.stringify(truncated));

      // Scroll up until what the page had before is back on screen.
      for (let i = 0; i < 40; i++) {
        const list = await shown(D);
        if (list[0].seq <= lastSeen) break;
        await D.evaluate(() => { document.getElementById('messages').scrollTop = 0; });
        await D.waitForFunction((s) => Number(document.querySelector('#msg-list > li[data-seq]').dataset.seq) < s,
          list[0].seq, { timeout: WAIT_MS });
      }
      const list = await shown(D);
      assertGapless(list, 'after a truncated resume and paging');
      assert.ok(list[0].seq <= lastSeen, `paged back to ${lastSeen}: starts at ${list[0].seq}`);
      for (let i = 1; i <= MISSED; i += 137) {
        assert.equal(list.filter((m) => m.text === `missed ${i}`).length, 1, `"missed ${i}" shown once`);
      }
      assert.deepEqual(D.problems, []);
    } finally {
      await D.context().close();
    }
  });

  it('uploads files: progress, images inline, other files as links with name and size', async (t) => {
    const probe = await api.post('/api/upload', 'x', null, { headers: { 'Content-Type': 'text/plain' } });
    if (probe.status === 404) {
      t.skip('the server does not serve POST /api/upload yet');
      return;
    }
    await openRoom(A, room);
    await openRoom(B, room);
    // A 2x2 PNG and a text file with a hostile name.
    const png = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAYAAABytg0kAAAAFklEQVR4nGP8z8DwnwEIGJkY/jMwAAAmCAIBdv0eAAAAAElFTkSuQmCC', 'base64');
    // (no '/': the server keeps only what follows the last one)
    const name = '<img src=x onerror=alert(2)>notes.txt';
    const text = Buffer.from('hello file\n'.repeat(1000));
    // Record every value the progress bars take (XMLHttpRequest upload
    // progress events set them).
    await A.evaluate(() => {
      window.progressSeen = [];
      new MutationObserver((ms) => {
        for (const m of ms) {
          if (m.target.tagName === 'PROGRESS') window.progressSeen.push(Number(m.target.getAttribute('value')));
        }
      }).observe(document.getElementById('uploads'), { attributes: true, subtree: true, attributeFilter: ['value'] });
    });
    await A.setInputFiles('#file-input', [
      { name: 'dot.png', mimeType: 'image/png', buffer: png },
    ]);
    await B.waitForFunction(() => [...document.querySelectorAll('#msg-list img.inline-image')]
      .some((i) => i.complete && i.naturalWidth === 2), null, { timeout: WAIT_MS });

    // Drag and drop the text file onto the chat.
    await A.evaluate(({ n, b64 }) => {
      const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      const dt = new DataTransfer();
      dt.items.add(new File([bytes], n, { type: 'text/plain' }));
      const chat = document.getElementById('chat');
      chat.dispatchEvent(new DragEvent('dragenter', { dataTransfer: dt, bubbles: true, cancelable: true }));
      chat.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
    }, { n: name, b64: text.toString('base64') });
    await B.waitForFunction((n) => [...document.querySelectorAll('#msg-list .file-name')].some((e) => e.textContent === n),
      name, { timeout: WAIT_MS });
    const link = await B.$$eval('#msg-list .file-link', (as) => as.map((a) => ({
      name: a.querySelector('.file-name').textContent, size: a.querySelector('.file-size').textContent, href: a.getAttribute('href'),
    })));
    const f = link.find((l) => l.name === name);
    assert.equal(f.size, '11 KB');
    assert.equal(await B.$$eval('#msg-list img:not(.inline-image)', (x) => x.length), 0, 'the file name is text');
    await screenshot(B, '13-uploads');
    const seen = await A.evaluate(() => window.progressSeen);
    assert.ok(seen.some((v) => v > 0), `the progress bar moved: ${JSON.stringify(seen)}`);
    // The link serves the bytes (the page's token is allowed to fetch it).
    const got = await B.evaluate(async (href) => {
      const r = await fetch(href, { headers: { Authorization: 'Bearer ' + localStorage.getItem('chatd.token') } });
      return { status: r.status, len: (await r.arrayBuffer()).byteLength };
    }, f.href);
    assert.deepEqual(got, { status: 200, len: text.length });
  });
});
