// Calls to the orchestrator's HTTP/JSON API and its SSE streams, with the bearer token.

import { SseParser } from "./sse.js";

const TOKEN_KEY = "polyfleet.token";

/** The token entered in this tab (sessionStorage: gone when the tab closes). */
export function token() {
  return sessionStorage.getItem(TOKEN_KEY) ?? "";
}

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** An API error: the problem+json body's fields (status, title, detail, code, …). */
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

// Called on every 401: the page asks for a (new) token.
let unauthorized = () => {};

export function onUnauthorized(handler) {
  unauthorized = handler;
}

function headers(extra = {}) {
  const result = { Accept: "application/json", ...extra };
  const bearer = token();
  if (bearer) result.Authorization = `Bearer ${bearer}`;
  return result;
}

async function problemOf(response) {
  const text = await response.text().catch(() => "");
  try {
    const body = JSON.parse(text);
    if (body && typeof body === "object") return body;
  } catch {
    // Not JSON (a proxy's page): keep the text as the detail.
  }
  return { status: response.status, title: response.statusText, detail: text.slice(0, 300) };
}

async function failure(response) {
  const error = new ApiError(response.status, await problemOf(response));
  if (response.status === 401) unauthorized(error);
  return error;
}

/** GET or POST JSON; resolves to the parsed body, rejects with an ApiError. */
export async function api(path, { method = "GET", body, signal } = {}) {
  const init = { method, signal, headers: headers() };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (!response.ok) throw await failure(response);
  return response.status === 204 ? {} : response.json();
}

/** A query string from an object, leaving out empty values. */
export function query(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") search.set(name, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

const sleep = (ms, signal) =>
  new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    });
  });

// Without a (valid) token, or for an execution that is not there, retrying is useless.
const FINAL = [400, 401, 403, 404];

/**
 * Follow an SSE stream until `signal` aborts, reconnecting with Last-Event-ID so nothing is
 * lost or repeated.
 *
 * @param {string} path The stream's URL.
 * @param {object} handlers
 * @param {(message: {id: string, event: string, data: any}) => void} handlers.onMessage
 *   Each message, its data parsed as JSON.
 * @param {() => boolean} [handlers.isDone] Checked when the stream ends: true stops
 *   (an execution's stream ends after its terminal event), false reconnects.
 * @param {(connected: boolean, error?: Error) => void} [handlers.onState] Connection changes.
 * @param {AbortSignal} handlers.signal Stops the stream.
 * @returns {Promise<void>} Settles once the stream is done or aborted.
 */
export async function follow(path, handlers) {
  const { onMessage, isDone = () => false, onState = () => {}, signal } = handlers;
  let lastEventId = "";
  let failures = 0;
  while (!signal.aborted) {
    // An error after the stream began comes as its last message: "event: error", a problem.
    let streamError = null;
    const parser = new SseParser((message) => {
      let data;
      try {
        data = JSON.parse(message.data);
      } catch {
        return; // Not ours to understand; the stream goes on.
      }
      if (message.event === "error") streamError = new ApiError(data.status ?? 500, data);
      else onMessage({ ...message, data });
    });
    try {
      const extra = { Accept: "text/event-stream" };
      if (lastEventId) extra["Last-Event-ID"] = lastEventId;
      const response = await fetch(path, { headers: headers(extra), signal, cache: "no-store" });
      if (!response.ok) {
        const error = await failure(response);
        if (FINAL.includes(response.status)) {
          onState(false, error);
          return;
        }
        throw error;
      }
      onState(true);
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        parser.feed(value);
        if (parser.lastEventId) lastEventId = parser.lastEventId;
        failures = 0;
      }
      if (streamError) {
        if (streamError.status === 401) unauthorized(streamError);
        onState(false, streamError);
        if (FINAL.includes(streamError.status)) return;
      } else if (isDone()) {
        onState(false);
        return;
      }
    } catch (error) {
      if (signal.aborted) return;
      onState(false, error);
    }
    failures += 1;
    // Back off 0.5 s, 1 s, 2 s … up to 10 s between attempts.
    await sleep(Math.min(10000, 500 * 2 ** Math.min(failures - 1, 5)), signal);
  }
}
