// The dashboard's entry point: settings, token entry, and the two views (list, detail).
//
// Routes live in the URL hash so a view can be linked: "#/" is the list,
// "#/executions/<id>" one execution.

import { onUnauthorized, setToken, token } from "./api.js";
import { ExecutionDetail } from "./detail.js";
import { ExecutionList } from "./list.js";

const $ = (id) => document.getElementById(id);

let config = null;
let session = null; // AbortController of everything the current token started
let list = null;
let detail = null;

async function boot() {
  try {
    const response = await fetch("/dashboard/config.json", { cache: "no-store" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    config = await response.json();
  } catch (error) {
    fatal(`Cannot read the dashboard settings (/dashboard/config.json): ${error.message}`);
    return;
  }
  onUnauthorized((error) => askToken(`The API refused the token: ${error.message}`));
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = $("token-input").value.trim();
    if (!value) return;
    setToken(value);
    $("token-input").value = "";
    start();
  });
  $("forget-token").addEventListener("click", () => askToken("Token forgotten."));
  window.addEventListener("hashchange", route);
  if (config.authRequired && !token()) askToken("");
  else start();
}

function start() {
  session?.abort();
  session = new AbortController();
  $("auth").hidden = true;
  $("forget-token").hidden = !token();
  list = new ExecutionList({ root: $("list-view"), config, onLive: live });
  detail = new ExecutionDetail({
    root: $("detail-view"),
    config,
    onChange: (execution, kind) => list.touch(execution, kind),
  });
  list.start(session.signal);
  route();
}

function route() {
  if (!session || session.signal.aborted) return;
  const match = location.hash.match(/^#\/executions\/([^/?]+)/);
  const id = match ? decodeURIComponent(match[1]) : "";
  $("list-view").hidden = Boolean(id);
  $("detail-view").hidden = !id;
  if (id) {
    if (detail.id !== id || !detail.controller) detail.open(id, session.signal);
    document.title = `${id} · polyfleet`;
  } else {
    detail.close();
    detail.id = "";
    document.title = "polyfleet";
  }
}

/** Stop everything and show the token form (a 401, or no token yet). */
function askToken(message) {
  session?.abort();
  session = null;
  setToken("");
  live(false);
  $("list-view").hidden = true;
  $("detail-view").hidden = true;
  $("forget-token").hidden = true;
  $("auth").hidden = false;
  const note = $("token-message");
  note.textContent = message;
  note.hidden = !message;
  $("token-input").focus();
}

function live(connected) {
  const badge = $("live");
  badge.textContent = connected ? "live" : "offline";
  badge.className = `live ${connected ? "on" : "off"}`;
}

function fatal(message) {
  const node = $("fatal");
  node.textContent = message;
  node.hidden = false;
}

boot();
