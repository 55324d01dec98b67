// The backend's HTTP API, as the page uses it. Errors carry the server's readable message.

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
  }
}

async function readError(response) {
  try {
    const body = await response.json();
    if (body && typeof body.detail === 'string') return body.detail;
  } catch {
    // not JSON: fall through to the status text
  }
  return response.statusText || `HTTP ${response.status}`;
}

async function post(path, body) {
  let response;
  try {
    response = await fetch(path, {
      method: 'POST',
      credentials: 'same-origin',
      headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, 'the server cannot be reached');
  }
  if (!response.ok) throw new ApiError(response.status, await readError(response));
  return response.json();
}

/** A fresh connection token and the user it is for: `{token, user, expires_in}`. */
export const fetchToken = () => post('/api/token');

/** Starts an answer streaming into `channel`; resolves once the backend accepted it (202). */
export const execute = ({ text, channel, thinking, history }) =>
  post('/api/execute', { text, channel, thinking, history });

/** Whether the backend reaches the real-time server: `{ok, reason}`. */
export async function checkReady() {
  try {
    const response = await fetch('/api/ready', { credentials: 'same-origin' });
    return { ok: response.ok, reason: response.ok ? '' : await readError(response) };
  } catch {
    return { ok: false, reason: 'the server cannot be reached' };
  }
}
