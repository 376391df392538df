// The console's only way to the broker: the management HTTP API, with HTTP Basic credentials
// kept in sessionStorage for this tab (docs/security.md explains the trade-off).

const KEY = 'warren.auth';

/** The stored `Basic` credentials (base64 of user:password), or null. */
export function credentials() {
  return sessionStorage.getItem(KEY);
}

/** Stores credentials for this browser tab. */
export function setCredentials(user, password) {
  // btoa needs Latin-1; encode UTF-8 first so any password works.
  const bytes = new TextEncoder().encode(`${user}:${password}`);
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  sessionStorage.setItem(KEY, btoa(bin));
}

/** Forgets the credentials. */
export function clearCredentials() {
  sessionStorage.removeItem(KEY);
}

/** An API error: the HTTP status and RabbitMQ's `error`/`reason`. */
export class ApiError extends Error {
  constructor(status, error, reason) {
    super(reason ? `${error}: ${reason}` : `${status} ${error}`);
    this.status = status;
    this.error = error;
    this.reason = reason;
  }
}

/** Encodes one path segment (vhost `/` becomes `%2F`, as the API expects). */
export function seg(s) {
  return encodeURIComponent(s);
}

/** Calls the API: `path` starts after `/api`; `body` is sent as JSON. Answers parsed JSON or null. */
export async function api(method, path, body, query, extraHeaders) {
  const url = new URL('api' + path, document.baseURI);
  if (query) {
    for (const [k, v] of Object.entries(query)) {
      if (v !== undefined && v !== null && v !== '') url.searchParams.set(k, String(v));
    }
  }
  const headers = { accept: 'application/json', ...(extraHeaders || {}) };
  const auth = credentials();
  if (auth) headers.authorization = 'Basic ' + auth;
  const init = {
    method,
    headers,
    // `omit` keeps the browser from prompting for a password on 401 (the API sends
    // WWW-Authenticate, as RabbitMQ's does); the credentials travel in the header instead.
    credentials: 'omit',
    cache: 'no-store',
  };
  if (body !== undefined) {
    headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await fetch(url, init);
  const text = await res.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = text;
    }
  }
  if (!res.ok) {
    const error = data && data.error ? data.error : res.statusText;
    const reason = data && data.reason !== undefined ? String(typeof data.reason === 'string' ? data.reason : JSON.stringify(data.reason)) : '';
    throw new ApiError(res.status, error, reason);
  }
  return data;
}

export const get = (path, query) => api('GET', path, undefined, query);
export const put = (path, body) => api('PUT', path, body ?? {});
export const post = (path, body) => api('POST', path, body ?? {});
export const del = (path, headers) => api('DELETE', path, undefined, undefined, headers);
