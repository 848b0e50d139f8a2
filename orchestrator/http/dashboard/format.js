// Building DOM nodes and formatting the API's proto3 JSON values for people.

/**
 * Create an element: el("a", {href: "#", class: "x", dataset: {testid: "y"}}, "text", child).
 * Attributes whose value is null, undefined or false are left out; children may be
 * strings, nodes, or (nested) arrays of them, and null/undefined/false are skipped.
 */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "dataset") Object.assign(node.dataset, value);
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "class") node.className = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(node, child);
    else node.append(child instanceof Node ? child : String(child));
  }
}

export const PHASES = ["PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED"];
const TERMINAL = new Set(["COMPLETED", "FAILED", "CANCELLED"]);

/** "EXECUTION_PHASE_RUNNING" (or "TASK_PHASE_…", "TOOL_CALL_STATUS_…") -> "RUNNING". */
export function shortEnum(value, prefix) {
  if (!value) return "UNSPECIFIED";
  return value.startsWith(prefix) ? value.slice(prefix.length) : value;
}

export function phaseOf(execution) {
  return shortEnum(execution?.status?.phase, "EXECUTION_PHASE_");
}

export function isTerminal(phase) {
  return TERMINAL.has(phase);
}

/** A phase (or task phase, tool call status) as a coloured badge. */
export function badge(name, extra = {}) {
  return el("span", { class: `badge badge-${name.toLowerCase()}`, ...extra }, name);
}

/** Whether an ID names a workflow execution ("wex-…") rather than an agent execution. */
export function kindOf(id) {
  return id.startsWith("wex-") ? "workflow" : "agent";
}

/** The API collection of an execution kind. */
export function collection(kind) {
  return kind === "workflow" ? "workflowExecutions" : "agentExecutions";
}

/** Milliseconds since the epoch of an RFC 3339 timestamp; NaN when unset. */
export function millis(timestamp) {
  return timestamp ? Date.parse(timestamp) : NaN;
}

const pad = (n) => String(n).padStart(2, "0");

/** A time as "14:03:07" today, "2026-11-27 14:03" before. */
export function shortTime(timestamp) {
  const ms = millis(timestamp);
  if (Number.isNaN(ms)) return "";
  const date = new Date(ms);
  const clock = `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
  if (date.toDateString() === new Date().toDateString()) return clock;
  const day = `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
  return `${day} ${clock.slice(0, 5)}`;
}

/** A span of milliseconds as "850 ms", "4.2 s", "3 m 07 s", "2 h 05 m". */
export function duration(ms) {
  if (!Number.isFinite(ms) || ms < 0) return "";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const seconds = ms / 1000;
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} m ${pad(Math.floor(seconds % 60))} s`;
  return `${Math.floor(minutes / 60)} h ${pad(minutes % 60)} m`;
}

/** How long something ran: start to end, or start to now while it runs. */
export function elapsed(start, end, now = Date.now()) {
  const from = millis(start);
  if (Number.isNaN(from)) return "";
  const to = millis(end);
  return duration((Number.isNaN(to) ? now : to) - from);
}

/** A JSON value (a Struct, a Value) for a <pre>; "" for undefined. */
export function json(value) {
  if (value === undefined) return "";
  return typeof value === "string" ? value : JSON.stringify(value, null, 2);
}

/** An int64 of proto3 JSON (a string) or a number as a number; 0 when unset. */
export function int(value) {
  const n = Number(value ?? 0);
  return Number.isFinite(n) ? n : 0;
}

/** "subject (role, via)" of an Actor; "" when unset. */
export function actorText(actor) {
  if (!actor?.subject) return "";
  const how = [actor.role, actor.via].filter(Boolean).join(", ");
  return how ? `${actor.subject} (${how})` : actor.subject;
}

/** Labels as chips; "" when there are none. */
export function labelChips(labels) {
  const entries = Object.entries(labels ?? {});
  if (entries.length === 0) return "";
  return entries.map(([key, value]) => el("span", { class: "label" }, `${key}=${value}`));
}

/** An ExecutionError as one line. */
export function errorText(error) {
  if (!error) return "";
  const parts = [error.type, error.title, error.message || error.detail].filter(Boolean);
  const where = [error.step && `step ${error.step}`, error.instance].filter(Boolean).join(", ");
  return parts.join(": ") + (where ? ` (${where})` : "");
}
