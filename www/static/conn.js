// The one WebSocket to /ws that carries every room, and its reconnection.
//
// Before each attempt beforeConnect() runs (the app refreshes its room list
// over REST there, which also tells a dead token from a dead network: a
// browser cannot see the 401 that refuses an upgrade). A lost connection is
// retried with exponential backoff and jitter; the app's onOpen then joins
// every room with `since`, so the server replays what was missed. Close
// code 1008 means the token is no longer valid: no retry, the app logs out.
// An application-level ping detects a connection that died without a FIN.

const BACKOFF_MIN_MS = 250;
const BACKOFF_MAX_MS = 15000;
const STABLE_MS = 5000;          // open this long: the next loss starts backoff again
const PING_EVERY_MS = 25000;
const PONG_WITHIN_MS = 10000;
const CLOSE_POLICY = 1008;

export class Conn {
  constructor({ url, beforeConnect, onOpen, onFrame, onState, onAuthLost }) {
    this.url = url;                 // () => ws URL with the current token
    this.beforeConnect = beforeConnect;
    this.onOpen = onOpen;
    this.onFrame = onFrame;
    this.onState = onState;
    this.onAuthLost = onAuthLost;
    this.ws = null;
    this.attempts = 0;
    this.timer = null;
    this.pingTimer = null;
    this.pongTimer = null;
    this.stopped = true;
    this.connects = 0;              // opened connections so far (tests read it)
    this.onOnline = () => this.retryNow();
  }

  get open() { return this.ws !== null && this.ws.readyState === WebSocket.OPEN; }

  start() {
    this.stopped = false;
    window.addEventListener('online', this.onOnline);
    this.connect();
  }

  stop() {
    this.stopped = true;
    window.removeEventListener('online', this.onOnline);
    clearTimeout(this.timer);
    this.clearPing();
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.onclose = null;
      ws.close(1000, 'logout');
    }
  }

  // Skip the rest of the backoff wait (the browser says it is online again).
  retryNow() {
    if (this.stopped || this.ws) return;
    clearTimeout(this.timer);
    this.connect();
  }

  send(frame) {
    if (!this.open) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  async connect() {
    this.timer = null;
    this.onState('connecting');
    try {
      await this.beforeConnect();
    } catch (e) {
      if (e && e.status === 401) { this.onAuthLost(); return; }
      this.scheduleRetry();
      return;
    }
    if (this.stopped) return;
    let ws;
    try {
      ws = new WebSocket(this.url());
    } catch {
      this.scheduleRetry();
      return;
    }
    this.ws = ws;
    let openedAt = 0;
    ws.onopen = () => {
      openedAt = Date.now();
      this.connects++;
      this.onState('online');
      this.armPing();
      this.onOpen();
    };
    ws.onmessage = (ev) => {
      this.gotTraffic();
      let frame;
      try { frame = JSON.parse(ev.data); } catch { return; }
      if (frame && typeof frame.type === 'string') this.onFrame(frame);
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.clearPing();
      if (openedAt && Date.now() - openedAt >= STABLE_MS) this.attempts = 0;
      if (this.stopped) return;
      if (ev.code === CLOSE_POLICY) { this.onAuthLost(); return; }
      this.scheduleRetry();
    };
  }

  scheduleRetry() {
    if (this.stopped) return;
    this.onState('offline');
    const cap = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** this.attempts);
    this.attempts++;
    const delay = cap / 2 + Math.random() * cap / 2;
    this.timer = setTimeout(() => this.connect(), delay);
  }

  armPing() {
    this.clearPing();
    this.pingTimer = setTimeout(() => {
      if (!this.send({ type: 'ping' })) return;
      this.pongTimer = setTimeout(() => this.abandon(), PONG_WITHIN_MS);
    }, PING_EVERY_MS);
  }

  // The peer stopped answering: a close handshake would wait for it too,
  // so forget this socket now and start over.
  abandon() {
    const ws = this.ws;
    if (!ws) return;
    this.ws = null;
    this.clearPing();
    ws.onclose = null;
    ws.close();
    this.scheduleRetry();
  }

  // Any frame proves the connection alive: restart the ping clock.
  gotTraffic() {
    clearTimeout(this.pongTimer);
    this.pongTimer = null;
    this.armPing();
  }

  clearPing() {
    clearTimeout(this.pingTimer);
    clearTimeout(this.pongTimer);
    this.pingTimer = this.pongTimer = null;
  }
}
