// The REST half of PROTOCOL.md, and the session (token) it needs.
//
// The token lives in localStorage so a reload stays logged in; it is
// dropped on any 401 (expired, revoked, signed by an old key) and on
// logout, and whoever listens to onUnauthorized shows the login form.
// Every failure is thrown as an ApiError carrying the server's error code
// and message, so forms can show them next to the fields.

const TOKEN_KEY = 'chatd.token';
const USER_KEY = 'chatd.user';

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;   // 0 when the network failed
    this.code = code;
  }
}

let unauthorizedHandler = () => {};

export function onUnauthorized(fn) { unauthorizedHandler = fn; }

// The JWT's exp (seconds), read without checking the signature: only used
// to avoid starting with a token that has certainly expired.
function tokenExpiry(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(atob(part)).exp * 1000;
  } catch {
    return 0;
  }
}

export const session = {
  get token() { return localStorage.getItem(TOKEN_KEY); },
  get user() { return localStorage.getItem(USER_KEY); },
  valid() {
    const t = this.token;
    return Boolean(t && this.user && tokenExpiry(t) > Date.now());
  },
  save(token, user) {
    localStorage.setItem(TOKEN_KEY, token);
    localStorage.setItem(USER_KEY, user);
  },
  clear() {
    localStorage.removeItem(TOKEN_KEY);
    localStorage.removeItem(USER_KEY);
  },
};

function errorFrom(status, body) {
  const e = body && body.error;
  if (e && typeof e.code === 'string') return new ApiError(status, e.code, e.message || e.code);
  return new ApiError(status, 'http_' + status, `the server answered ${status}`);
}

async function call(method, path, body, { auth = true } = {}) {
  const headers = {};
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (auth && session.token) headers.Authorization = 'Bearer ' + session.token;
  let res;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
    });
  } catch (e) {
    throw new ApiError(0, 'network', 'cannot reach the server');
  }
  let data = null;
  try { data = await res.json(); } catch { data = null; }
  if (res.status === 401 && auth) {
    session.clear();
    unauthorizedHandler();
  }
  if (!res.ok) throw errorFrom(res.status, data);
  return data;
}

export const api = {
  register: (username, password) => call('POST', '/api/register', { username, password }, { auth: false }),
  async login(username, password) {
    const r = await call('POST', '/api/login', { username, password }, { auth: false });
    session.save(r.token, username);
    return r;
  },
  rooms: () => call('GET', '/api/rooms'),
  createRoom: (id, participants) => call('POST', '/api/room', { id, participants }),
  history(room, { limit = 50, before } = {}) {
    let q = `?limit=${limit}`;
    if (before !== undefined) q += `&before=${before}`;
    return call('GET', `/api/history/${encodeURIComponent(room)}${q}`);
  },
};

// POST /api/upload with XMLHttpRequest, because fetch cannot report upload
// progress. onProgress(fraction) is called as bytes leave. Returns the
// server's {file, filename, content_type, size, url}; abort() cancels.
export function upload(file, onProgress) {
  const xhr = new XMLHttpRequest();
  const done = new Promise((resolve, reject) => {
    xhr.open('POST', '/api/upload');
    if (session.token) xhr.setRequestHeader('Authorization', 'Bearer ' + session.token);
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) onProgress(e.loaded / e.total);
    };
    xhr.onload = () => {
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch { body = null; }
      if (xhr.status === 401) {
        session.clear();
        unauthorizedHandler();
      }
      if (xhr.status >= 200 && xhr.status < 300 && body) resolve(body);
      else reject(errorFrom(xhr.status, body));
    };
    xhr.onerror = () => reject(new ApiError(0, 'network', 'the upload failed'));
    xhr.onabort = () => reject(new ApiError(0, 'aborted', 'the upload was cancelled'));
    const form = new FormData();
    form.append('f', file, file.name);
    xhr.send(form);
  });
  return { done, abort: () => xhr.abort() };
}

// A file as an object URL. A same-origin /files/ link carries a signature
// that expires, so it is fetched by path with the token first (that works
// for as long as the user is logged in), then as given; a link elsewhere
// (a presigned S3 URL) is used as it is.
export async function fileBlobUrl(url) {
  const u = new URL(url, location.href);
  if (u.origin !== location.origin) return url;
  const auth = session.token ? { Authorization: 'Bearer ' + session.token } : {};
  for (const [path, headers] of [[u.pathname, auth], [u.pathname + u.search, {}]]) {
    try {
      const res = await fetch(path, { headers });
      if (res.ok) return URL.createObjectURL(await res.blob());
    } catch {
      /* try the next way */
    }
  }
  throw new ApiError(404, 'not_found', 'cannot load the file');
}
