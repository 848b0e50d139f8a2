// The executions list: listed on load, then kept live from the change stream.
//
// Both kinds are listed (newest first, a bounded number of pages), then every change of
// GET /v1/executions:watch is applied: CREATED adds the execution, PHASE_CHANGED updates
// it, RESET lists again. Nothing polls: the only timer re-evaluates the "stuck?" badge
// from times the page already has.

import { api, follow, query } from "./api.js";
import {
  PHASES,
  badge,
  collection,
  el,
  elapsed,
  int,
  labelChips,
  millis,
  phaseOf,
  shortEnum,
  shortTime,
} from "./format.js";

const COLUMNS = ["ID", "Kind", "Agent / workflow", "Labels", "Phase", "Created", "Duration", ""];
const PAGE_SIZE = 100;
// At most this many pages per kind on load: the newest 1000 executions of each kind.
const MAX_PAGES = 10;

export class ExecutionList {
  /**
   * @param {object} options
   * @param {HTMLElement} options.root The list view's section.
   * @param {object} options.config /dashboard/config.json.
   * @param {(connected: boolean) => void} options.onLive The change stream's state.
   */
  constructor({ root, config, onLive }) {
    this.root = root;
    this.config = config;
    this.onLive = onLive;
    /** @type {Map<string, object>} executions by ID, each with a `kind` added */
    this.rows = new Map();
    // RUNNING executions re-read because they looked stuck: ID -> {updateTime read, at}.
    this.verified = new Map();
    this.verifying = new Set();
    this.truncated = false;
    this.error = "";
    this.loaded = false;
    this.build();
  }

  build() {
    const phases = PHASES.map((phase) => el("option", { value: phase }, phase));
    this.filters = {
      kind: el(
        "select",
        { id: "filter-kind", dataset: { testid: "filter-kind" } },
        el("option", { value: "" }, "All kinds"),
        el("option", { value: "agent" }, "Agent"),
        el("option", { value: "workflow" }, "Workflow"),
      ),
      name: el("input", {
        id: "filter-name",
        type: "search",
        placeholder: "name",
        dataset: { testid: "filter-name" },
      }),
      phase: el(
        "select",
        { id: "filter-phase", dataset: { testid: "filter-phase" } },
        el("option", { value: "" }, "Any phase"),
        phases,
      ),
      label: el("input", {
        id: "filter-label",
        type: "search",
        placeholder: "key=value",
        dataset: { testid: "filter-label" },
      }),
    };
    for (const input of Object.values(this.filters)) {
      input.addEventListener("input", () => this.render());
    }
    const field = (label, input) => el("label", { class: "field" }, el("span", {}, label), input);
    this.count = el("span", { class: "count", dataset: { testid: "list-count" } });
    this.body = el("tbody", { dataset: { testid: "executions" } });
    this.message = el("p", { class: "notice", role: "status", hidden: true });
    this.root.replaceChildren(
      el(
        "form",
        { class: "filters", role: "search", onsubmit: (event) => event.preventDefault() },
        field("Kind", this.filters.kind),
        field("Agent or workflow", this.filters.name),
        field("Phase", this.filters.phase),
        field("Label", this.filters.label),
        this.count,
      ),
      this.message,
      el(
        "table",
        { class: "executions" },
        el(
          "thead",
          {},
          el(
            "tr",
            {},
            COLUMNS.map((name) => el("th", { scope: "col" }, name)),
          ),
        ),
        this.body,
      ),
    );
  }

  /** Open the change stream, then list; both end when `signal` aborts. */
  start(signal) {
    this.signal = signal;
    let listed = false;
    follow("/v1/executions:watch", {
      signal,
      onMessage: ({ data }) => this.change(data),
      onState: (connected, error) => {
        this.onLive(connected);
        if (error && !connected) this.showError(`Live updates: ${error.message}`);
        if (connected) this.showError("");
        // List once the stream is open, so no creation falls between the list and the stream.
        if (!listed) {
          listed = true;
          this.load();
        }
      },
    });
    const timer = setInterval(() => this.tick(), this.tickMillis());
    signal.addEventListener("abort", () => clearInterval(timer));
  }

  tickMillis() {
    const threshold = int(this.config.stuckAfterSeconds) * 1000;
    return Math.max(250, Math.min(5000, threshold / 4 || 5000));
  }

  async load() {
    try {
      const [agents, workflows] = await Promise.all([
        this.listKind("agent"),
        this.listKind("workflow"),
      ]);
      this.truncated = agents.more || workflows.more;
      for (const execution of [...agents.items, ...workflows.items]) this.upsert(execution);
      this.loaded = true;
      this.showError("");
    } catch (error) {
      if (!this.signal.aborted) this.showError(`Listing executions failed: ${error.message}`);
    }
    this.render();
  }

  async listKind(kind) {
    const items = [];
    let pageToken = "";
    for (let page = 0; page < MAX_PAGES; page++) {
      const path = `/v1/${collection(kind)}${query({ pageSize: PAGE_SIZE, pageToken })}`;
      const response = await api(path, { signal: this.signal });
      for (const execution of response.executions ?? []) items.push({ ...execution, kind });
      pageToken = response.nextPageToken ?? "";
      if (!pageToken) break;
    }
    return { items, more: Boolean(pageToken) };
  }

  /** Apply one ExecutionChange of the stream. */
  change(change) {
    const type = shortEnum(change.type, "EXECUTION_CHANGE_TYPE_");
    if (type === "RESET") {
      this.load();
      return;
    }
    if (change.agentExecution) this.upsert({ ...change.agentExecution, kind: "agent" });
    else if (change.workflowExecution) {
      this.upsert({ ...change.workflowExecution, kind: "workflow" });
    }
    this.render();
  }

  /** Keep the newer of two copies of an execution (by version), whichever came first. */
  upsert(execution) {
    const known = this.rows.get(execution.id);
    if (known && int(known.version) > int(execution.version)) return;
    execution.kind ??= known?.kind;
    this.rows.set(execution.id, execution);
  }

  /** What an open detail view learnt: the phase and last update of one execution. */
  touch(execution, kind) {
    const known = this.rows.get(execution.id);
    const newer = !known || millis(execution.updateTime) >= millis(known.updateTime);
    if (newer) {
      this.rows.set(execution.id, { ...known, ...basicOf(execution), kind });
      this.render();
    }
  }

  visible() {
    const kind = this.filters.kind.value;
    const name = this.filters.name.value.trim().toLowerCase();
    const phase = this.filters.phase.value;
    const labels = this.filters.label.value
      .split(/[,\s]+/)
      .filter(Boolean)
      .map((pair) => {
        const at = pair.indexOf("=");
        return at < 0 ? [pair, null] : [pair.slice(0, at), pair.slice(at + 1)];
      });
    return [...this.rows.values()]
      .filter((execution) => {
        if (kind && execution.kind !== kind) return false;
        if (phase && phaseOf(execution) !== phase) return false;
        const own = (execution.agent ?? execution.workflow ?? "").toLowerCase();
        if (name && !own.includes(name)) return false;
        const carried = execution.labels ?? {};
        return labels.every(([key, value]) =>
          value === null ? key in carried : carried[key] === value,
        );
      })
      .sort((a, b) => millis(b.createTime) - millis(a.createTime) || (a.id < b.id ? 1 : -1));
  }

  render() {
    if (this.pending) return;
    this.pending = requestAnimationFrame(() => {
      this.pending = 0;
      this.draw();
    });
  }

  draw() {
    const rows = this.visible();
    const now = Date.now();
    const empty = this.loaded ? "No executions match." : "Loading executions…";
    this.body.replaceChildren(
      ...(rows.length
        ? rows.map((execution) => this.row(execution, now))
        : [el("tr", {}, el("td", { colspan: COLUMNS.length, class: "empty" }, empty))]),
    );
    const more = this.truncated ? " (newest only)" : "";
    this.count.textContent = `${rows.length} of ${this.rows.size}${more}`;
  }

  row(execution, now) {
    const phase = phaseOf(execution);
    const href = `#/executions/${encodeURIComponent(execution.id)}`;
    const status = execution.status ?? {};
    const stuck = this.isStuck(execution, now);
    return el(
      "tr",
      {
        class: "row",
        dataset: { testid: "execution-row", id: execution.id, phase },
        onclick: (event) => {
          if (!event.target.closest("a")) location.hash = href;
        },
      },
      el("td", { class: "mono" }, el("a", { href }, execution.id)),
      el("td", {}, execution.kind),
      el("td", {}, execution.agent ?? execution.workflow ?? ""),
      el("td", {}, labelChips(execution.labels)),
      el("td", {}, badge(phase, { dataset: { testid: "phase" } })),
      el("td", { title: execution.createTime ?? "" }, shortTime(execution.createTime)),
      el("td", {}, elapsed(status.startTime, status.endTime, now)),
      el(
        "td",
        {},
        stuck
          ? el(
              "span",
              {
                class: "badge badge-stuck",
                dataset: { testid: "stuck" },
                title: `RUNNING, no update for over ${this.config.stuckAfterSeconds} s`,
              },
              "stuck?",
            )
          : null,
      ),
    );
  }

  /** RUNNING, and its last update (re-read to be sure) is older than the threshold. */
  isStuck(execution, now) {
    const check = this.verified.get(execution.id);
    return this.isStale(execution, now) && check?.updateTime === execution.updateTime;
  }

  isStale(execution, now) {
    const threshold = Number(this.config.stuckAfterSeconds);
    if (phaseOf(execution) !== "RUNNING" || !(threshold > 0)) return false;
    return now - millis(execution.updateTime) > threshold * 1000;
  }

  tick() {
    const now = Date.now();
    const threshold = Number(this.config.stuckAfterSeconds) * 1000;
    for (const execution of this.rows.values()) {
      if (!this.isStale(execution, now) || this.verifying.has(execution.id)) continue;
      const check = this.verified.get(execution.id);
      if (check?.updateTime === execution.updateTime && now - check.at < threshold) continue;
      this.verify(execution);
    }
    this.render();
  }

  // The change stream carries creations and phase changes only, so a RUNNING execution's
  // updateTime here may be older than its last event: it is re-read before it is called
  // stuck, and again each threshold while it stays so (never otherwise).
  async verify(execution) {
    this.verifying.add(execution.id);
    try {
      const path = `/v1/${collection(execution.kind)}/${encodeURIComponent(execution.id)}`;
      const fresh = await api(`${path}${query({ view: "EXECUTION_VIEW_BASIC" })}`, {
        signal: this.signal,
      });
      this.upsert({ ...fresh, kind: execution.kind });
      this.verified.set(execution.id, { updateTime: fresh.updateTime, at: Date.now() });
    } catch {
      // Not called stuck; the next tick tries again.
    } finally {
      this.verifying.delete(execution.id);
    }
    this.render();
  }

  showError(text) {
    this.message.textContent = text;
    this.message.hidden = !text;
  }
}

// The fields the list shows, from a FULL execution of the detail view.
function basicOf(execution) {
  const status = execution.status ?? {};
  return {
    id: execution.id,
    agent: execution.agent,
    workflow: execution.workflow,
    labels: execution.labels,
    version: execution.version,
    createTime: execution.createTime,
    updateTime: execution.updateTime,
    status: { phase: status.phase, startTime: status.startTime, endTime: status.endTime },
  };
}
