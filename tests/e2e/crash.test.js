// Journal crash safety: with `ack = fsync`, the journal process is killed
// with SIGKILL at random moments, 20 times, while a client sends numbered
// messages as fast as it can and retries every failed send with the same
// client id. The master restarts the journal each time. In the end every
// message is in the room's history exactly once, seq runs 1..N with no gap
// and no repeat, and each history entry carries the seq and ts of its ack
// (PROTOCOL.md: ts set once; seq with no gaps and no repeats; a retry with
// the same id gets the same ack and stores nothing twice).
'use strict';
const { it } = require('node:test');
const assert = require('node:assert/strict');
const { startChatd, sleep } = require('./lib/chatd');
const { Api, assertStatus, journalPid, shutdown } = require('./lib/api');

const KILLS = 20;
const CONCURRENCY = 4; // requests in flight at once
const REQUEST_TIMEOUT_MS = 5000; // then the send counts as failed and is retried
const RUN_MS = 70000; // kills must be done by then
const SETTLE_MS = 80000; // and every message acked by then
const AFTER_LAST_KILL = 50; // acks to see after the last kill before stopping

it('acks every message exactly once across 20 journal kills (ack = fsync)', { timeout: 90000 }, async (t) => {
  const srv = await startChatd({ workers: 2, extra: ['[journal]', 'ack = fsync'] });
  const api = new Api(srv.port, { maxSockets: CONCURRENCY });
  const t0 = Date.now();
  const tail = () => srv.log().split('\n').slice(-30).join('\n');
  let stopping = false; // senders take no new message
  let aborted = false; // senders give up at once (the test failed)
  try {
    const u = await api.newUser('crash');
    const room = await api.newRoom(u.token);

    // --- the sender: message i is {content "n=i", id "c<i>"}, retried
    // until chatd answers 200.
    const acks = new Map(); // i -> {seq, ts}
    const failures = {}; // what the failed attempts were, for the log
    let next = 1;
    const sendOne = async (i) => {
      for (;;) {
        if (aborted) throw new Error('aborted');
        if (Date.now() - t0 > SETTLE_MS) throw new Error(`message ${i} never acked`);
        let why;
        try {
          const r = await api.send(u.token, room, `n=${i}`, `c${i}`, { timeout: REQUEST_TIMEOUT_MS });
          if (r.status === 200 && r.json && r.json.ok === true) {
            acks.set(i, { seq: r.json.seq, ts: r.json.ts });
            return;
          }
          why = `${r.status} ${r.json && r.json.error ? r.json.error.code : r.text.slice(0, 40)}`;
        } catch (e) {
          why = e.code || e.message.replace(/:.*/, '');
        }
        failures[why] = (failures[why] || 0) + 1;
        await sleep(10);
      }
    };
    const senders = Promise.all(Array.from({ length: CONCURRENCY }, async () => {
      while (!stopping) await sendOne(next++);
    }));
    senders.catch(() => {}); // awaited below; this only keeps an early failure from going unhandled

    // Waits for cond() while the senders are healthy; fails with the log.
    const until = async (cond, what) => {
      while (!cond()) {
        if (srv.proc.exitCode !== null || srv.proc.signalCode !== null) {
          throw new Error(`chatd (the master) exited while waiting for ${what}; log:\n${tail()}`);
        }
        if (Date.now() - t0 > RUN_MS) throw new Error(`timed out waiting for ${what}; log:\n${tail()}`);
        await sleep(10);
      }
    };

    // A kill rarely lands between "stored" and "acked", so lost acks (and
    // so retries of stored messages) come by chance only. To check every
    // time that a new journal still knows the ids the old one acked, the
    // last messages acked before each kill, and a few older ones, are sent
    // again once the new journal works: each must get its first ack back.
    let replays = 0;
    const replay = async (is) => {
      for (const i of is) {
        const want = acks.get(i);
        await sendOne(i); // sets acks[i] to the new answer
        assert.deepEqual(acks.get(i), want, `message ${i} sent again after a journal restart got another ack`);
        replays++;
      }
    };

    // --- the killer.
    const killed = [];
    let pid = null;
    let lastBeforeKill = [];
    await until(() => (pid = journalPid(srv.pid)) !== null, 'the journal process');
    for (let k = 0; k <= KILLS; k++) {
      // Kill only a journal that works: one that acked since it started.
      const acked = acks.size;
      await until(() => acks.size > acked, `an ack from journal ${pid} (after kill ${k})`);
      const keys = [...acks.keys()];
      const older = Array.from({ length: 3 }, () => keys[Math.floor(Math.random() * keys.length)]);
      await replay([...lastBeforeKill, ...older]);
      if (k === KILLS) break;
      await sleep(Math.floor(Math.random() * 600));
      await until(() => (pid = journalPid(srv.pid)) !== null, `the journal (kill ${k + 1})`);
      process.kill(pid, 'SIGKILL');
      lastBeforeKill = [...acks.keys()].slice(-5); // in the order they were acked
      killed.push(pid);
      // The master starts a new one.
      await until(() => { const p = journalPid(srv.pid); return p !== null && p !== killed[k]; },
        `a new journal after kill ${k + 1}`);
      pid = journalPid(srv.pid);
    }
    const afterKills = acks.size;
    await until(() => acks.size >= afterKills + AFTER_LAST_KILL, 'acks after the last kill');
    stopping = true;
    await senders;
    const n = next - 1; // every message taken was acked, or senders threw
    t.diagnostic(`${n} messages, ${KILLS} kills, ${replays} sent again, failed attempts: ${JSON.stringify(failures)}, ${Date.now() - t0} ms`);

    // --- the checks.
    assert.equal(killed.length, KILLS);
    assert.ok(replays >= KILLS * 5, `${replays} messages sent again`);
    assert.equal(new Set(killed).size, KILLS, 'each kill hit a different journal process');
    assert.equal(acks.size, n, 'every message was acked');
    assertStatus(await api.get('/healthz'), 200, 'healthz after the kills');

    const history = await api.historyAll(u.token, room);
    // Seq 1..N with no gap and no repeat, newest first.
    assert.equal(history.length, n, `history holds ${history.length} messages for ${n} sent`);
    history.forEach((e, j) => assert.equal(e.seq, n - j, `entry ${j} of the history`));
    // Each message once, with the seq and ts its ack gave.
    const seen = new Set();
    for (const e of history) {
      const m = /^n=(\d+)$/.exec(e.content);
      assert.ok(m, `unexpected content ${JSON.stringify(e.content)} at seq ${e.seq}`);
      const i = Number(m[1]);
      assert.ok(!seen.has(i), `message ${i} stored twice (seq ${e.seq})`);
      seen.add(i);
      const ack = acks.get(i);
      assert.ok(ack, `message ${i} in history was never sent`);
      assert.deepEqual({ seq: e.seq, ts: e.ts }, ack, `message ${i}: history vs ack`);
      assert.equal(e.from, u.name);
      assert.equal(e.room, room);
    }
    const rooms = await api.rooms(u.token);
    assertStatus(rooms, 200);
    assert.equal(rooms.json.find((x) => x.id === room).last_seq, n, 'last_seq');
    // And the room goes on from there.
    assert.equal((await api.sendOk(u.token, room, 'after', 'after')).seq, n + 1);
  } finally {
    stopping = true;
    aborted = true;
    api.close();
    await shutdown(srv);
  }
});
