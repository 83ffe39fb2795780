// The chatd web page: wires the session (api.js), the one WebSocket
// (conn.js) and the room model (store.js) to the DOM (view.js).
//
// Data flow: every message, whatever brought it (a live msg frame, the
// replay after a reconnect, an ack, a page of REST history), goes through
// Room.addMessage, which keeps one copy per seq; the page then re-renders
// the open room from the model. Sends stay pending (shown greyed) until
// their ack; a reconnect resends them with the same client id, which the
// server answers with the first ack instead of storing them again.

import { api, session, onUnauthorized, upload } from './api.js';
import { Conn } from './conn.js';
import { Room, dmRoomId } from './store.js';
import { el, messageNode, statusDot, fileMessage, parseFile, formatTime } from './view.js';

const TAIL = 50;                // messages fetched per room on first sight
const HISTORY_PAGE = 50;        // messages per page when scrolling up
const ROOMS_POLL_MS = 5000;     // no frame says "you were added to a room"
const SLOW_ACK_MS = 8000;       // a send without ack this long offers Retry
const GAP_WAIT_MS = 1000;       // a hole may just be frames still on the way
const BOTTOM_SLACK_PX = 48;     // "at the bottom" for auto-scroll and reading
const TOP_LOAD_PX = 80;         // this close to the top loads older messages
const USER_RE = /^[a-z0-9_.-]{1,32}$/;
const ROOM_RE = /^[A-Za-z0-9_.:-]{1,64}$/;
const STATUSES = ['active', 'busy', 'away'];

const $ = (id) => document.getElementById(id);

const state = {
  me: null,
  conn: null,
  rooms: new Map(),       // id -> Room
  current: null,          // open room id
  online: new Map(),      // user -> status, for users known to be online
  info: new Map(),        // user -> last info frame
  myStatus: 'active',     // as the server last said
  chosenStatus: 'active', // as the user set it; said again on reconnect
  nodes: new Map(),       // room id -> Map(seq -> <li>)
  pollTimer: null,
  reopen: null,           // the room of the last visit, opened once known
  renderQueued: false,
};

// --- small helpers ----------------------------------------------------------

function newId() {
  const b = new Uint8Array(9);
  crypto.getRandomValues(b);
  return 'w' + Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

const readKey = (room) => `chatd.read.${state.me}.${room}`;

function readSeq(room) {
  return Number(localStorage.getItem(readKey(room))) || 0;
}

function roomName(room) { return room.peer ? room.peer : room.id; }

function statusOf(user) { return state.online.get(user) || 'offline'; }

function atBottom() {
  const box = $('messages');
  return box.scrollHeight - box.scrollTop - box.clientHeight < BOTTOM_SLACK_PX;
}

function ensureRoom(id) {
  let room = state.rooms.get(id);
  if (!room) {
    room = new Room(id, state.me);
    state.rooms.set(id, room);
    scheduleRoomsRefresh();
  }
  return room;
}

// --- authentication ---------------------------------------------------------

const FIELD_OF = {
  invalid_username: 'auth-user-error',
  user_exists: 'auth-user-error',
  invalid_password: 'auth-pass-error',
};

function clearAuthErrors() {
  for (const id of ['auth-user-error', 'auth-pass-error', 'auth-error']) $(id).textContent = '';
}

function showAuth(message) {
  stopApp();
  $('app').hidden = true;
  $('auth').hidden = false;
  clearAuthErrors();
  if (message) $('auth-error').textContent = message;
  $('auth-user').focus();
}

async function onAuthSubmit(ev) {
  ev.preventDefault();
  clearAuthErrors();
  const action = ev.submitter && ev.submitter.dataset.action === 'register' ? 'register' : 'login';
  const username = $('auth-user').value.trim();
  const password = $('auth-pass').value;
  let bad = false;
  if (!USER_RE.test(username)) {
    $('auth-user-error').textContent = 'Use 1 to 32 of a-z, 0-9, _ . -';
    bad = true;
  }
  if (password.length < 8 || password.length > 256) {
    $('auth-pass-error').textContent = 'A password has 8 to 256 characters.';
    bad = true;
  }
  if (bad) return;
  const buttons = $('auth-form').querySelectorAll('button');
  buttons.forEach((b) => { b.disabled = true; });
  try {
    if (action === 'register') await api.register(username, password);
    await api.login(username, password);
    $('auth-pass').value = '';
    startApp();
  } catch (e) {
    $(FIELD_OF[e.code] || 'auth-error').textContent = e.message || 'failed';
  } finally {
    buttons.forEach((b) => { b.disabled = false; });
  }
}

function logout() {
  session.clear();
  showAuth();
}

// --- starting and stopping --------------------------------------------------

function startApp() {
  state.me = session.user;
  state.rooms = new Map();
  state.online = new Map();
  state.info = new Map();
  state.nodes = new Map();
  state.current = null;
  state.myStatus = 'active';
  state.chosenStatus = 'active';
  state.reopen = localStorage.getItem(`chatd.room.${state.me}`);
  $('auth').hidden = true;
  $('app').hidden = false;
  $('me-name').textContent = state.me;
  $('status-select').value = 'active';
  renderAll();
  state.conn = new Conn({
    url: () => `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws?token=${encodeURIComponent(session.token)}`,
    beforeConnect: refreshRooms,
    onOpen,
    onFrame,
    onState: setConnState,
    onAuthLost: () => { session.clear(); showAuth('Your session has ended. Log in again.'); },
  });
  state.conn.start();
  state.pollTimer = setInterval(() => {
    if (document.visibilityState === 'visible' && state.conn && state.conn.open) refreshRooms().catch(() => {});
  }, ROOMS_POLL_MS);
}

function stopApp() {
  if (state.conn) state.conn.stop();
  state.conn = null;
  clearInterval(state.pollTimer);
  state.pollTimer = null;
}

function setConnState(s) {
  const p = $('conn-state');
  p.dataset.state = s;
  p.textContent = s === 'online' ? 'connected' : s === 'connecting' ? 'connecting…' : 'offline, retrying…';
  if (state.conn) document.body.dataset.connects = String(state.conn.connects);
}

// --- rooms ------------------------------------------------------------------

async function refreshRooms() {
  const list = await api.rooms();
  if (!state.conn) return;    // logged out meanwhile
  for (const r of list) {
    const room = state.rooms.get(r.id) || new Room(r.id, state.me);
    const fresh = !state.rooms.has(r.id) || room.local;
    state.rooms.set(r.id, room);
    if (Array.isArray(r.participants)) room.participants = r.participants.slice().sort();
    room.createdBy = r.created_by;
    room.createdAt = r.created_at || 0;
    if (r.last_seq > room.lastSeq) room.lastSeq = r.last_seq;
    if (fresh) {
      room.local = false;
      if (state.conn && state.conn.open) joinRoom(room);
    }
  }
  if (state.reopen) {
    // The room of the last visit, once the list knows it, unless the user
    // has opened another one already.
    const last = state.reopen;
    state.reopen = null;
    if (!state.current && state.rooms.has(last)) openRoom(last);
  }
  scheduleRender();
}

let roomsRefreshTimer = null;
function scheduleRoomsRefresh() {
  if (roomsRefreshTimer) return;
  roomsRefreshTimer = setTimeout(() => {
    roomsRefreshTimer = null;
    refreshRooms().catch(() => {});
  }, 300);
}

function joinRoom(room) {
  if (room.local) return;
  if (!room.synced) room.startAt(Math.max(0, room.lastSeq - TAIL));
  state.conn.send({ type: 'join', room: room.id, since: room.hi });
}

function onOpen() {
  const c = state.conn;
  c.send({ type: 'users' });
  if (state.chosenStatus !== 'active') c.send({ type: 'status', status: state.chosenStatus });
  for (const room of state.rooms.values()) joinRoom(room);
  for (const room of state.rooms.values()) {
    for (const p of room.pending.values()) {
      if (p.state === 'failed') continue;
      p.state = 'pending';
      transmit(room, p);
    }
  }
  askAboutCurrent();
}

function askAboutCurrent() {
  const room = state.rooms.get(state.current);
  if (!room || !state.conn) return;
  if (room.peer) state.conn.send({ type: 'info', user: room.peer });
  else if (!room.local) state.conn.send({ type: 'who', room: room.id });
}

// --- frames from the server -------------------------------------------------

function onFrame(f) {
  switch (f.type) {
  case 'msg': onMsg(f); break;
  case 'ack': onAck(f); break;
  case 'joined': {
    const room = ensureRoom(f.room);
    if (f.last_seq > room.lastSeq) room.lastSeq = f.last_seq;
    scheduleRender();
    break;
  }
  case 'truncated': {
    const room = ensureRoom(f.room);
    room.truncate(f.first_seq);
    state.nodes.delete(room.id);
    scheduleRender();
    break;
  }
  case 'error': onError(f); break;
  case 'users':
    state.online = new Map();
    for (const u of f.users || []) state.online.set(u.user, u.status);
    scheduleRender();
    break;
  case 'who':
    for (const u of f.users || []) state.online.set(u.user, u.status);
    scheduleRender();
    break;
  case 'presence':
    if (f.status === 'offline') state.online.delete(f.user);
    else state.online.set(f.user, f.status);
    if (f.user === state.me && STATUSES.includes(f.status)) showMyStatus(f.status);
    // The DM header says since when the peer has had this status: ask anew.
    if (state.rooms.get(state.current)?.peer === f.user) askAboutCurrent();
    scheduleRender();
    break;
  case 'status':
    if (STATUSES.includes(f.status)) {
      state.myStatus = f.status;
      state.online.set(state.me, f.status);
      showMyStatus(f.status);
      scheduleRender();
    }
    break;
  case 'info':
    state.info.set(f.user, f);
    if (f.online && f.status) state.online.set(f.user, f.status);
    else if (f.online === false) state.online.delete(f.user);
    scheduleRender();
    break;
  default:
    break;
  }
}

function onMsg(f) {
  const room = ensureRoom(f.room);
  room.local = false;   // a DM placeholder exists on the server now
  if (!room.synced) room.startAt(f.seq - 1);
  const added = room.addMessage(f);
  if (f.from === state.me && f.id && room.pending.delete(f.id)) scheduleRender();
  if (!added) return;
  if (room.gapEnd()) scheduleGapFill(room);
  scheduleRender();
}

// The pending send with this client id, in whichever room holds it.
function takePending(id, roomId) {
  const rooms = [state.rooms.get(roomId), ...state.rooms.values()];
  for (const room of rooms) {
    if (room && room.pending.has(id)) {
      const p = room.pending.get(id);
      room.pending.delete(id);
      return { room, p };
    }
  }
  return null;
}

function onAck(f) {
  const found = takePending(f.id, f.room);
  if (!found) return;
  // For a first DM the ack names the server's room, which replaces the
  // page's placeholder (normally the same id).
  const room = ensureRoom(f.room);
  const wasLocal = Boolean(found.room.local);
  room.local = false;
  if (!room.synced) room.startAt(f.seq - 1);
  room.addMessage({ seq: f.seq, ts: f.ts, from: state.me, content: found.p.content, id: f.id });
  if (wasLocal && found.room !== room) {
    state.rooms.delete(found.room.id);
    if (state.current === found.room.id) state.current = room.id;
  }
  if (room.gapEnd()) scheduleGapFill(room);
  if (wasLocal && state.conn) {
    // The server joins both users to a new DM room; joining it here too
    // (with since, so nothing is replayed twice) also covers a server
    // that left that to the client.
    state.conn.send({ type: 'join', room: room.id, since: room.hi });
  }
  scheduleRender();
}

const RETRYABLE = new Set(['unavailable', 'rate_limited', 'busy']);

function onError(f) {
  const found = f.id ? takePending(f.id, null) : null;
  if (!found) {
    if (f.code !== 'not_a_participant') console.warn('chatd:', f.code, f.message);
    return;
  }
  const { room, p } = found;
  room.pending.set(p.id, p);
  if (RETRYABLE.has(f.code)) {
    p.state = 'slow';
    setTimeout(() => { if (p.state === 'slow') retry(room, p); }, 1000);
  } else {
    p.state = 'failed';
    p.error = f.message || f.code;
  }
  scheduleRender();
}

// A hole between hi and a newer message: wait for frames still in flight,
// then fetch what is still missing over REST.
function scheduleGapFill(room) {
  if (room.gapTimer) return;
  room.gapTimer = setTimeout(async () => {
    room.gapTimer = null;
    for (let end = room.gapEnd(); end; end = room.gapEnd()) {
      const need = Math.min(500, end - room.hi - 1);
      let list;
      try {
        list = await api.history(room.id, { limit: need, before: end });
      } catch {
        return;
      }
      const before = room.hi;
      for (const m of list) room.addMessage(m);
      if (room.hi === before) break;
    }
    scheduleRender();
  }, GAP_WAIT_MS);
}

// --- sending ----------------------------------------------------------------

function transmit(room, p) {
  const frame = room.peer
    ? { type: 'dm', to: room.peer, content: p.content, id: p.id }
    : { type: 'send', room: room.id, content: p.content, id: p.id };
  const sentAt = Date.now();
  p.sentAt = sentAt;
  if (state.conn) state.conn.send(frame);
  setTimeout(() => {
    if (p.sentAt === sentAt && p.state === 'pending' && room.pending.has(p.id)) {
      p.state = 'slow';
      scheduleRender();
    }
  }, SLOW_ACK_MS);
}

function retry(room, p) {
  p.state = 'pending';
  p.error = null;
  transmit(room, p);
  scheduleRender();
}

function sendMessage(room, content) {
  const p = { id: newId(), content, ts: Date.now(), from: state.me, state: 'pending' };
  room.pending.set(p.id, p);
  transmit(room, p);
  renderNow({ stick: true });
}

function onComposerSubmit(ev) {
  ev.preventDefault();
  const room = state.rooms.get(state.current);
  const input = $('input');
  const text = input.value;
  if (!room || !text.trim()) return;
  input.value = '';
  autoGrow();
  sendMessage(room, text);
}

function onComposerKey(ev) {
  if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
    ev.preventDefault();
    $('composer').requestSubmit();
  }
}

function autoGrow() {
  const t = $('input');
  t.style.height = 'auto';
  t.style.height = Math.min(t.scrollHeight, 160) + 'px';
}

// --- files ------------------------------------------------------------------

function startUpload(file) {
  const room = state.rooms.get(state.current);
  if (!room) return;
  const bar = el('progress', { max: '1', value: '0' });
  const cancel = el('button', { type: 'button', class: 'link' }, 'Cancel');
  const note = el('span', { class: 'upload-note' });
  const row = el('div', { class: 'upload' }, el('span', { class: 'upload-name' }, file.name), bar, note, cancel);
  $('uploads').append(row);
  const job = upload(file, (fraction) => { bar.value = fraction; });
  cancel.addEventListener('click', () => job.abort());
  job.done.then((res) => {
    row.remove();
    sendMessage(room, fileMessage(res));
  }, (e) => {
    bar.remove();
    row.classList.add('failed');
    note.textContent = e.code === 'aborted' ? 'cancelled' : `failed: ${e.message}`;
    cancel.textContent = 'Dismiss';
    cancel.onclick = () => row.remove();
  });
}

function setupDrop() {
  const chat = $('chat');
  let depth = 0;
  const hasFiles = (ev) => ev.dataTransfer && Array.from(ev.dataTransfer.types).includes('Files');
  chat.addEventListener('dragenter', (ev) => {
    if (!hasFiles(ev) || !state.current) return;
    ev.preventDefault();
    depth++;
    $('drop-hint').hidden = false;
  });
  chat.addEventListener('dragover', (ev) => {
    if (!hasFiles(ev) || !state.current) return;
    ev.preventDefault();
    ev.dataTransfer.dropEffect = 'copy';
  });
  chat.addEventListener('dragleave', () => {
    if (--depth <= 0) { depth = 0; $('drop-hint').hidden = true; }
  });
  chat.addEventListener('drop', (ev) => {
    if (!hasFiles(ev)) return;
    ev.preventDefault();
    depth = 0;
    $('drop-hint').hidden = true;
    for (const f of ev.dataTransfer.files) startUpload(f);
  });
}

// --- opening rooms, history, reading ---------------------------------------

function openRoom(id) {
  state.current = id;
  localStorage.setItem(`chatd.room.${state.me}`, id);
  document.body.classList.add('show-chat');
  $('composer').hidden = false;
  askAboutCurrent();
  renderNow({ stick: true });
  const room = state.rooms.get(id);
  if (room && room.msgs.length < HISTORY_PAGE / 2) loadOlder(room);
  if (!matchMedia('(max-width: 700px)').matches) $('input').focus();
}

function openDm(user) {
  const id = dmRoomId(state.me, user);
  if (!state.rooms.has(id)) {
    const room = new Room(id, state.me);
    room.local = true;     // nothing on the server until the first message
    room.startAt(0);
    state.rooms.set(id, room);
  }
  openRoom(id);
}

async function loadOlder(room) {
  if (room.historyDone || room.loadingOlder || room.local || !room.synced) return;
  if (room.lo <= 1) { room.historyDone = true; return; }
  room.loadingOlder = true;
  room.loadFailed = false;
  renderHistoryState(room);
  try {
    const list = await api.history(room.id, { limit: HISTORY_PAGE, before: room.lo });
    room.addOlder(list, HISTORY_PAGE);
  } catch {
    room.loadFailed = true;   // said above the list; scrolling up retries
  } finally {
    room.loadingOlder = false;
  }
  if (state.current !== room.id) return;
  renderNow({ keepOffset: true });
  const box = $('messages');
  if (!room.historyDone && !room.loadFailed && box.scrollHeight <= box.clientHeight) loadOlder(room);
}

function markRead() {
  const room = state.rooms.get(state.current);
  if (!room || document.visibilityState !== 'visible' || !atBottom()) return;
  if ($('app').hidden || (matchMedia('(max-width: 700px)').matches && !document.body.classList.contains('show-chat'))) return;
  const last = room.lastMessage;
  if (last && last.seq > readSeq(room.id)) {
    localStorage.setItem(readKey(room.id), String(last.seq));
    renderRoomList();
  }
}

// --- rendering --------------------------------------------------------------

function scheduleRender() {
  if (state.renderQueued) return;
  state.renderQueued = true;
  const run = () => {
    state.renderQueued = false;
    renderNow({});
  };
  // A hidden tab gets no animation frames; its title still counts unread.
  if (document.visibilityState === 'visible') requestAnimationFrame(run);
  else setTimeout(run, 100);
}

function renderNow(opts) {
  renderAll(opts);
}

function renderAll(opts = {}) {
  renderRoomList();
  renderUsers();
  renderHeader();
  renderMessages(opts);
  markRead();
}

function preview(m) {
  if (!m) return '';
  const f = parseFile(m.content);
  const text = f ? `[file] ${f.name}` : m.content.replace(/\s+/g, ' ');
  return `${m.from}: ${text.length > 80 ? text.slice(0, 80) + '…' : text}`;
}

function renderRoomList() {
  const rooms = [...state.rooms.values()].sort((a, b) => b.lastActivity() - a.lastActivity() || a.id.localeCompare(b.id));
  let total = 0;
  const items = rooms.map((room) => {
    const isCurrent = room.id === state.current;
    const unread = isCurrent && atBottom() && document.visibilityState === 'visible' ? 0 : room.unread(readSeq(room.id), state.me);
    total += unread;
    const btn = el('button', { type: 'button', class: 'room-btn' },
      room.peer ? statusDot(statusOf(room.peer)) : el('span', { class: 'hash', 'aria-hidden': 'true' }, '#'),
      el('span', { class: 'room-name' }, roomName(room)),
      unread ? el('span', { class: 'unread', title: `${unread} unread` }, String(unread)) : null,
      el('span', { class: 'room-last' }, preview(room.lastMessage)));
    btn.addEventListener('click', () => openRoom(room.id));
    return el('li', { class: isCurrent ? 'room current' : 'room', dataset: { room: room.id } }, btn);
  });
  $('room-list').replaceChildren(...items);
  document.title = total ? `(${total}) chatd` : 'chatd';
}

function renderUsers() {
  const users = [...state.online.keys()].sort();
  $('user-list').replaceChildren(...users.map((u) => {
    const btn = el('button', { type: 'button', class: 'user-btn', title: u === state.me ? 'you' : `message ${u}` },
      statusDot(state.online.get(u)),
      el('span', { class: 'user-name' }, u, u === state.me ? el('span', { class: 'you' }, ' (you)') : null),
      el('span', { class: 'user-status' }, state.online.get(u)));
    if (u !== state.me) btn.addEventListener('click', () => openDm(u));
    return el('li', { class: 'user', dataset: { user: u, status: state.online.get(u) } }, btn);
  }));
  $('me-dot').dataset.status = state.myStatus;
}

function showMyStatus(s) {
  state.myStatus = s;
  $('status-select').value = s;
  $('me-dot').dataset.status = s;
}

function renderHeader() {
  const room = state.rooms.get(state.current);
  const name = $('chat-name');
  const sub = $('chat-sub');
  if (!room) {
    name.textContent = 'No room open';
    sub.textContent = '';
    return;
  }
  if (room.peer) {
    name.replaceChildren(statusDot(statusOf(room.peer)), document.createTextNode(' ' + room.peer));
    const info = state.info.get(room.peer);
    let text = statusOf(room.peer);
    if (info && info.since) text += ` since ${formatTime(info.since)}`;
    sub.textContent = text;
  } else {
    name.textContent = room.id;
    const here = room.participants.filter((u) => state.online.has(u));
    sub.textContent = `${room.participants.length} member${room.participants.length === 1 ? '' : 's'}, ${here.length} online` +
      (here.length ? `: ${here.join(', ')}` : '');
  }
}

function renderHistoryState(room) {
  const p = $('history-state');
  if (!room) { p.textContent = ''; return; }
  if (room.loadingOlder) p.textContent = 'Loading older messages…';
  else if (room.historyDone) p.textContent = room.msgs.length ? 'Start of the conversation' : '';
  else if (room.synced && !room.local) {
    // Scrolling up loads them too; the button is for keyboards and screens
    // where the list does not scroll yet.
    const b = el('button', { type: 'button', class: 'link' }, 'Load older messages');
    b.addEventListener('click', () => loadOlder(room));
    p.replaceChildren(room.loadFailed ? 'Could not load older messages. ' : '', b);
  } else p.textContent = '';
}

// Make list's children exactly nodes. Messages mostly arrive at the end,
// so keep the common prefix and touch only what follows it.
function patchList(list, nodes) {
  const old = list.children;
  let same = 0;
  while (same < nodes.length && same < old.length && old[same] === nodes[same]) same++;
  while (old.length > same) list.lastElementChild.remove();
  if (same < nodes.length) list.append(...nodes.slice(same));
}

function renderMessages({ stick = false, keepOffset = false } = {}) {
  const room = state.rooms.get(state.current);
  const box = $('messages');
  const list = $('msg-list');
  $('empty').hidden = Boolean(room);
  $('composer').hidden = !room;
  if (!room) { list.replaceChildren(); renderHistoryState(null); return; }
  const wasAtBottom = atBottom();
  const fromBottom = box.scrollHeight - box.scrollTop;
  let cache = state.nodes.get(room.id);
  if (!cache) { cache = new Map(); state.nodes.set(room.id, cache); }
  const nodes = room.msgs.map((m) => {
    let li = cache.get(m.seq);
    if (!li) {
      li = messageNode(m, m.from === state.me);
      cache.set(m.seq, li);
    }
    return li;
  });
  const pend = [...room.pending.values()].sort((a, b) => a.ts - b.ts);
  for (const p of pend) nodes.push(messageNode(p, true, { onRetry: (x) => retry(room, x) }));
  patchList(list, nodes);
  renderHistoryState(room);
  if (stick || (wasAtBottom && !keepOffset)) box.scrollTop = box.scrollHeight;
  else if (keepOffset) box.scrollTop = box.scrollHeight - fromBottom;
}

// --- wiring -----------------------------------------------------------------

async function onCreateRoom(ev) {
  ev.preventDefault();
  const err = $('room-error');
  err.textContent = '';
  const id = $('room-id').value.trim();
  const people = $('room-people').value.split(/[\s,]+/).map((s) => s.trim()).filter(Boolean);
  if (!ROOM_RE.test(id)) { err.textContent = 'A room id is 1 to 64 of A-Z a-z 0-9 _ . : -'; return; }
  const bad = people.find((u) => !USER_RE.test(u));
  if (bad !== undefined) { err.textContent = `Not a username: ${bad}`; return; }
  try {
    await api.createRoom(id, people);
  } catch (e) {
    err.textContent = e.message;
    return;
  }
  $('room-id').value = '';
  $('room-people').value = '';
  $('new-room').open = false;
  await refreshRooms().catch(() => {});
  openRoom(id);
}

function onOpenDm(ev) {
  ev.preventDefault();
  const err = $('dm-error');
  err.textContent = '';
  const user = $('dm-user').value.trim();
  if (!USER_RE.test(user)) { err.textContent = 'Use 1 to 32 of a-z, 0-9, _ . -'; return; }
  if (user === state.me) { err.textContent = 'That is you.'; return; }
  $('dm-user').value = '';
  $('new-dm').open = false;
  openDm(user);
}

function wire() {
  $('auth-form').addEventListener('submit', onAuthSubmit);
  $('logout-btn').addEventListener('click', logout);
  $('room-form').addEventListener('submit', onCreateRoom);
  $('dm-form').addEventListener('submit', onOpenDm);
  $('rooms-refresh').addEventListener('click', () => refreshRooms().catch(() => {}));
  $('composer').addEventListener('submit', onComposerSubmit);
  $('input').addEventListener('keydown', onComposerKey);
  $('input').addEventListener('input', autoGrow);
  $('attach-btn').addEventListener('click', () => $('file-input').click());
  $('file-input').addEventListener('change', () => {
    for (const f of $('file-input').files) startUpload(f);
    $('file-input').value = '';
  });
  $('status-select').addEventListener('change', () => {
    const s = $('status-select').value;
    state.chosenStatus = s;
    state.myStatus = s;
    $('me-dot').dataset.status = s;
    if (state.conn) state.conn.send({ type: 'status', status: s });
  });
  $('back-btn').addEventListener('click', () => {
    document.body.classList.remove('show-chat');
    renderRoomList();
  });
  $('messages').addEventListener('scroll', () => {
    const room = state.rooms.get(state.current);
    if (room && $('messages').scrollTop < TOP_LOAD_PX) loadOlder(room);
    markRead();
  }, { passive: true });
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState !== 'visible' || !state.conn) return;
    markRead();
    if (state.conn.open) refreshRooms().catch(() => {});
    else state.conn.retryNow();
  });
  setupDrop();
  onUnauthorized(() => {
    if (state.conn) showAuth('Your session has ended. Log in again.');
  });
}

wire();
if (session.valid()) {
  startApp();
} else {
  session.clear();
  showAuth();
}
