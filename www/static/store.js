// Rooms and their messages as this page knows them, without any DOM.
//
// Invariants, per room:
// - msgs is sorted by seq and holds each seq at most once: every source
//   (live msg frames, the replay after a reconnect, acks, REST history)
//   goes through addMessage, which drops a seq it already has. That is what
//   makes "resume with since" safe to overlap.
// - lo..hi is the contiguous run this page holds: every seq in it is in
//   msgs. A reconnect joins with since = hi, so the server replays exactly
//   what is missing above it; history paging fetches below lo.
// - pending holds this user's sends that have no ack yet, by client id.
//   The same id is reused on every retry, so the server stores it once.

export const DM_PREFIX = 'dm:';

export function dmRoomId(a, b) {
  return a < b ? `${DM_PREFIX}${a}:${b}` : `${DM_PREFIX}${b}:${a}`;
}

// The other user of a DM room id, or null when id is not one of me's DMs.
export function dmPeer(id, me) {
  const m = /^dm:([^:]+):([^:]+)$/.exec(id);
  if (!m) return null;
  if (m[1] === me) return m[2];
  if (m[2] === me) return m[1];
  return null;
}

export class Room {
  constructor(id, me) {
    this.id = id;
    this.peer = dmPeer(id, me);
    this.participants = this.peer ? [me, this.peer].sort() : [me];
    this.createdBy = null;
    this.createdAt = 0;
    this.lastSeq = 0;       // the newest seq the server told us of
    this.msgs = [];         // {seq, from, content, ts, id?}, sorted by seq
    this.lo = 1;            // lowest seq of the contiguous run held
    this.hi = 0;            // highest seq of the contiguous run held
    this.synced = false;    // lo/hi are meaningful (joined at least once)
    this.historyDone = false;
    this.loadingOlder = false;
    this.pending = new Map(); // client id -> {id, content, ts, state, error, sentAt}
  }

  get lastMessage() { return this.msgs.length ? this.msgs[this.msgs.length - 1] : null; }

  has(seq) { return this.index(seq) >= 0; }

  // Binary search: the index of seq, or -(insertion point) - 1.
  index(seq) {
    let a = 0;
    let b = this.msgs.length - 1;
    while (a <= b) {
      const m = (a + b) >> 1;
      const s = this.msgs[m].seq;
      if (s === seq) return m;
      if (s < seq) a = m + 1; else b = m - 1;
    }
    return -a - 1;
  }

  // Returns false for a seq already held (a replayed or doubled frame).
  addMessage(m) {
    const i = this.index(m.seq);
    if (i >= 0) return false;
    this.msgs.splice(-i - 1, 0, {
      seq: m.seq, from: m.from, content: m.content, ts: m.ts, id: m.id,
    });
    if (m.seq > this.lastSeq) this.lastSeq = m.seq;
    if (m.seq < this.lo) this.lo = m.seq;
    this.extendHi();
    return true;
  }

  extendHi() {
    let i = this.index(this.hi + 1);
    while (i >= 0 && i < this.msgs.length && this.msgs[i].seq === this.hi + 1) {
      this.hi++;
      i++;
    }
  }

  // The first seq above hi that is held, when there is a hole below it.
  gapEnd() {
    const i = this.index(this.hi + 1);
    const at = i >= 0 ? i : -i - 1;
    return at < this.msgs.length ? this.msgs[at].seq : 0;
  }

  // First sync: the page wants the newest `tail` messages, so the join
  // asks for everything above since and the run starts just past it.
  startAt(since) {
    this.lo = since + 1;
    this.hi = since;
    this.synced = true;
    this.historyDone = since === 0;
  }

  // The server keeps fewer messages for replay than were missed: what is
  // held below first_seq is no longer contiguous with what comes, so the
  // run restarts at first_seq and older messages come from paging.
  truncate(firstSeq) {
    this.msgs = this.msgs.filter((m) => m.seq >= firstSeq);
    this.lo = firstSeq;
    this.hi = firstSeq - 1;
    this.historyDone = firstSeq <= 1;
    this.extendHi();
  }

  // REST history (newest first) below lo.
  addOlder(list, limit) {
    let lowest = this.lo;
    for (const m of list) {
      this.addMessage(m);
      if (m.seq < lowest) lowest = m.seq;
    }
    this.lo = Math.min(this.lo, lowest);
    if (list.length < limit || this.lo <= 1) this.historyDone = true;
  }

  unread(readSeq, me) {
    let n = 0;
    for (let i = this.msgs.length - 1; i >= 0 && this.msgs[i].seq > readSeq; i--) {
      if (this.msgs[i].from !== me) n++;
    }
    // Messages the server has that this page never loaded (authors unknown).
    const firstHeld = this.msgs.length ? this.msgs[0].seq : this.lastSeq + 1;
    n += Math.max(0, Math.min(firstHeld - 1, this.lastSeq) - readSeq);
    return n;
  }

  lastActivity() {
    const m = this.lastMessage;
    return m ? m.ts : this.createdAt;
  }
}
