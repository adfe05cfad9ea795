// labelhub's JSON API, called with the signed-in user's token.
//
// The session (token, username, role) lives in sessionStorage: it lasts as
// long as the tab and is never shared with other tabs or written to disk.

const SESSION_KEY = "labelhub.session";

let onSessionLost = () => {};

/** An answer of `{"error": {"code", "message"}}`, or no answer at all. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
  }
}

export function loadSession() {
  const stored = sessionStorage.getItem(SESSION_KEY);
  return stored ? JSON.parse(stored) : null;
}

export function saveSession(session) {
  sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
}

export function clearSession() {
  sessionStorage.removeItem(SESSION_KEY);
}

/** Call `handler(error)` when the API refuses the stored token (401). */
export function whenSessionLost(handler) {
  onSessionLost = handler;
}

/** `path` with `params` as its query string, leaving out empty values. */
export function withQuery(path, params) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== "") {
      query.set(name, String(value));
    }
  }
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}

export async function request(method, path, { body, signal } = {}) {
  const session = loadSession();
  const headers = { Accept: "application/json" };
  if (session) headers.Authorization = `Bearer ${session.token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";

  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
    });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    const message = "labelhub cannot be reached; check that it runs and try again";
    throw new ApiError(0, "unreachable", message);
  }
  const payload = await response.json().catch(() => null);

  if (response.ok) return payload;
  const problem = payload?.error ?? {};
  const error = new ApiError(
    response.status,
    problem.code ?? "http_error",
    problem.message ?? `the request failed with status ${response.status}`,
  );
  if (response.status === 401 && session) {
    error.handled = true; // the sign-in page shows it instead
    onSessionLost(error);
  }
  throw error;
}

export const get = (path, options) => request("GET", path, options);
export const post = (path, body, options = {}) => request("POST", path, { ...options, body });
