// Building DOM nodes from server data. Everything a user or the server
// wrote (message text, user names, room ids, file names) enters the page
// as a text node or through textContent, never as markup; a link's href is
// only ever a same-origin path or an http(s) URL.

import { fileBlobUrl } from './api.js';

// el('li', {class: 'x', title: t}, child, 'text', ...): attributes are set
// with setAttribute and string children become text nodes.
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k === 'dataset') Object.assign(node.dataset, v);
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    node.append(typeof c === 'string' ? document.createTextNode(c) : c);
  }
  return node;
}

const pad2 = (n) => String(n).padStart(2, '0');

export function formatTime(ts) {
  const d = new Date(ts);
  const now = new Date();
  const hm = `${pad2(d.getHours())}:${pad2(d.getMinutes())}`;
  if (d.toDateString() === now.toDateString()) return hm;
  return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ${hm}`;
}

export function formatSize(n) {
  if (!Number.isFinite(n) || n < 0) return '';
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${i === 0 ? n : n.toFixed(n < 10 ? 1 : 0)} ${units[i]}`;
}

// --- file messages ---------------------------------------------------------
// An upload is posted as its URL (as the original system did, so every
// client sees a working link), with the file's name, size and type in the
// fragment, which the server never sees: "/files/ID#name=a.png&size=12&type=image%2Fpng".

export function fileMessage(up) {
  const frag = new URLSearchParams();
  frag.set('name', up.filename || up.file || 'file');
  if (Number.isFinite(up.size)) frag.set('size', String(up.size));
  if (up.content_type) frag.set('type', up.content_type);
  const base = String(up.url || `/files/${up.file}`).split('#')[0];
  return `${base}#${frag.toString()}`;
}

const IMAGE_EXT = /\.(png|jpe?g|gif|webp|svg)$/i;

// {url, name, size, type, image} when content is a file message, else null.
export function parseFile(content) {
  if (typeof content !== 'string' || /\s/.test(content) || content.length > 4096) return null;
  if (!content.startsWith('/files/') && !/^https?:\/\//i.test(content)) return null;
  let u;
  try { u = new URL(content, location.href); } catch { return null; }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return null;
  const sameOrigin = u.origin === location.origin;
  const relative = content.startsWith('/files/');
  const frag = new URLSearchParams(u.hash.slice(1));
  if (!relative && !(sameOrigin && u.pathname.startsWith('/files/')) && !frag.has('name')) return null;
  const name = frag.get('name') || decodeURIComponent(u.pathname.split('/').pop() || 'file');
  const size = frag.has('size') ? Number(frag.get('size')) : NaN;
  const type = frag.get('type') || '';
  u.hash = '';
  const url = relative ? u.pathname + u.search : u.href;
  const image = type ? type.startsWith('image/') : IMAGE_EXT.test(name) || IMAGE_EXT.test(u.pathname);
  return { url, name, size, type, image };
}

const blobUrls = new Map(); // file url -> Promise of an object URL

function fileBody(f) {
  const label = f.name + (Number.isFinite(f.size) ? ` (${formatSize(f.size)})` : '');
  const link = el('a', { class: 'file-link', href: f.url, download: f.name, target: '_blank', rel: 'noopener' },
    el('span', { class: 'file-name' }, f.name),
    el('span', { class: 'file-size' }, Number.isFinite(f.size) ? formatSize(f.size) : ''));
  link.title = label;
  link.addEventListener('click', (ev) => {
    // Same-origin: download through the token rather than a signature that
    // may have expired since the message was posted.
    const u = new URL(f.url, location.href);
    if (u.origin !== location.origin) return;
    ev.preventDefault();
    fileBlobUrl(f.url).then((href) => {
      const a = el('a', { href, download: f.name });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(href), 60000);
    }, () => window.open(f.url, '_blank', 'noopener'));
  });
  if (!f.image) return el('div', { class: 'body file' }, link);
  const img = el('img', { class: 'inline-image', alt: f.name, loading: 'lazy' });
  if (!blobUrls.has(f.url)) blobUrls.set(f.url, fileBlobUrl(f.url).catch(() => f.url));
  blobUrls.get(f.url).then((src) => { img.src = src; });
  return el('div', { class: 'body file image' }, el('a', { href: f.url, target: '_blank', rel: 'noopener' }, img), link);
}

// One message (or pending send) as an <li>. own: written by this user.
export function messageNode(m, own, { onRetry } = {}) {
  const f = parseFile(m.content);
  const body = f ? fileBody(f) : el('div', { class: 'body' }, m.content);
  const meta = el('div', { class: 'meta' },
    el('span', { class: 'author' }, m.from),
    el('time', { class: 'time', datetime: new Date(m.ts).toISOString(), title: new Date(m.ts).toLocaleString() },
      formatTime(m.ts)));
  const li = el('li', { class: own ? 'msg own' : 'msg' }, meta, body);
  if (m.seq) li.dataset.seq = String(m.seq);
  if (m.state) {
    li.classList.add(m.state);
    li.dataset.id = m.id;
    const label = m.state === 'failed' ? `not sent${m.error ? ': ' + m.error : ''}` : 'sending…';
    const status = el('div', { class: 'send-state' }, label);
    if (m.state === 'failed' || m.state === 'slow') {
      const retry = el('button', { type: 'button', class: 'link retry' }, 'Retry');
      retry.addEventListener('click', () => onRetry && onRetry(m));
      status.append(' ', retry);
    }
    li.append(status);
  }
  return li;
}

export function statusDot(status) {
  return el('span', { class: 'dot', dataset: { status: status || 'offline' }, title: status || 'offline' });
}
