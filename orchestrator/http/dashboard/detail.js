// One execution, live: its watch stream (snapshot, then events) rendered as it arrives.

import { api, follow, query } from "./api.js";
import {
  actorText,
  badge,
  collection,
  el,
  elapsed,
  isTerminal,
  json,
  kindOf,
  labelChips,
  phaseOf,
  shortTime,
} from "./format.js";
import { answerOf, applyEvent, applySnapshot, newState } from "./merge.js";
import {
  answerSection,
  collapsible,
  errorSection,
  executionLink,
  externalLink,
  facts,
  messagesSection,
  subAgentsSection,
  tasksSection,
  timelineSection,
  toolCallsSection,
  usageSection,
  workflowOutputSection,
} from "./views.js";

export class ExecutionDetail {
  /**
   * @param {object} options
   * @param {HTMLElement} options.root The detail view's section.
   * @param {object} options.config /dashboard/config.json.
   * @param {(execution: object, kind: string) => void} options.onChange Told of every change.
   */
  constructor({ root, config, onChange }) {
    this.root = root;
    this.config = config;
    this.onChange = onChange;
    this.controller = null;
  }

  /** Show execution `id` and follow it until `close()` or until `signal` aborts. */
  open(id, signal) {
    this.close();
    this.controller = new AbortController();
    const stop = this.controller;
    signal.addEventListener("abort", () => stop.abort());
    this.id = id;
    this.kind = kindOf(id);
    this.path = `/v1/${collection(this.kind)}/${encodeURIComponent(id)}`;
    this.state = newState();
    this.problem = "";
    this.cancel = { busy: false, error: "", refused: false };
    this.connection = "connecting";
    this.root.replaceChildren(
      backLink(),
      el("p", { class: "muted", dataset: { testid: "detail-loading" } }, `Loading ${id}…`),
    );
    follow(`${this.path}/events`, {
      signal: stop.signal,
      onMessage: (message) => this.message(message),
      isDone: () => isTerminal(phaseOf(this.state.execution)),
      onState: (connected, error) => {
        const ended = !connected && !error && isTerminal(phaseOf(this.state.execution));
        this.connection = connected ? "live" : ended ? "ended" : "disconnected";
        if (error) this.problem = error.message;
        else if (connected) this.problem = "";
        this.render();
      },
    }).then(() => {
      // The stream ends after the terminal event; the stored execution then holds the
      // transitions with who made them, which events do not carry.
      if (!stop.signal.aborted && this.state.execution) this.refresh(stop.signal);
    });
  }

  close() {
    this.controller?.abort();
    this.controller = null;
  }

  message({ event, data }) {
    const phaseBefore = phaseOf(this.state.execution);
    if (event === "snapshot") applySnapshot(this.state, data.snapshot ?? data);
    else if (event === "event") applyEvent(this.state, data.event ?? data);
    else return;
    const execution = this.state.execution;
    if (!execution) return;
    const phase = phaseOf(execution);
    if (event === "event" && phase !== phaseBefore && !isTerminal(phase)) {
      // Events do not name who changed the phase: the stored transitions do.
      this.refresh(this.controller?.signal);
    }
    this.onChange(execution, this.kind);
    this.render();
  }

  // Re-read the execution's transitions and times (BASIC view: no contents to transfer).
  async refresh(signal) {
    // The execution shown now: another may be open by the time the answer comes.
    const state = this.state;
    try {
      const view = query({ view: "EXECUTION_VIEW_BASIC" });
      const fresh = await api(`${this.path}${view}`, { signal });
      if (state !== this.state) return;
      const status = state.execution.status;
      const stored = fresh.status?.transitions ?? [];
      // An answer that left before a later phase change was merged is older than what the
      // page holds: it only adds who made the changes it knows of.
      if (stored.length >= (status.transitions ?? []).length) status.transitions = stored;
      for (const field of ["startTime", "endTime"]) {
        status[field] = fresh.status?.[field] ?? status[field];
      }
      const asked = fresh.cancelRequestedBy;
      if (asked) state.execution.cancelRequestedBy = asked;
      this.render();
    } catch {
      // The transitions from the events stay; they only lack the actors.
    }
  }

  async requestCancel() {
    const state = this.state;
    this.cancel = { busy: true, error: "", refused: false };
    this.render();
    let outcome = { busy: false, error: "", refused: false };
    try {
      const execution = await api(`${this.path}:cancel`, { method: "POST", body: {} });
      if (execution.cancelRequestedBy && state.execution) {
        state.execution.cancelRequestedBy = execution.cancelRequestedBy;
      }
    } catch (error) {
      // 403: the token's role may not cancel; the button stays disabled with the reason.
      outcome = { busy: false, error: error.message, refused: error.status === 403 };
    }
    if (state !== this.state) return;
    this.cancel = outcome;
    this.render();
  }

  render() {
    if (this.pending) return;
    this.pending = requestAnimationFrame(() => {
      this.pending = 0;
      if (this.state?.execution) this.draw();
      else if (this.problem) this.drawProblem();
    });
  }

  drawProblem() {
    const attrs = { class: "notice", role: "alert", dataset: { testid: "detail-error" } };
    this.root.replaceChildren(backLink(), el("p", attrs, this.problem));
  }

  draw() {
    const execution = this.state.execution;
    const status = execution.status;
    const agent = this.kind === "agent";
    const sections = [
      this.header(execution),
      agent ? answerSection(answerOf(this.state), execution) : workflowOutputSection(status),
      errorSection(status.error),
      agent ? null : tasksSection(status.tasks ?? []),
      messagesSection(status.messages ?? [], status),
      agent ? toolCallsSection(status.toolCalls ?? []) : null,
      agent ? subAgentsSection(status.subAgentExecutions ?? []) : null,
      agent ? usageSection(status.usage) : null,
      timelineSection(status.transitions ?? []),
    ].filter(Boolean);
    // What the reader opened stays open across redraws.
    const open = new Set(
      [...this.root.querySelectorAll("details[open][data-key]")].map((node) => node.dataset.key),
    );
    // Replace only the sections that changed: the rest (a button being clicked, text being
    // selected) stays as it is while tokens stream in.
    const current = [...this.root.children];
    sections.forEach((node, index) => {
      for (const details of node.querySelectorAll("details[data-key]")) {
        if (open.has(details.dataset.key)) details.open = true;
      }
      const old = current[index];
      if (old?.outerHTML === node.outerHTML) return;
      if (old) old.replaceWith(node);
      else this.root.append(node);
    });
    for (const stale of current.slice(sections.length)) stale.remove();
  }

  header(execution) {
    const status = execution.status;
    const phase = phaseOf(execution);
    const agent = this.kind === "agent";
    const pairs = [
      ["Kind", this.kind],
      [agent ? "Agent" : "Workflow", execution.agent ?? execution.workflow],
      ["Session", execution.sessionId],
      [
        "Created",
        [shortTime(execution.createTime), actorText(execution.createdBy)]
          .filter(Boolean)
          .join(" by "),
      ],
      ["Started", shortTime(status.startTime)],
      ["Ended", shortTime(status.endTime)],
      // Once ended only: a ticking duration would redraw the header all the time.
      ["Duration", status.endTime ? elapsed(status.startTime, status.endTime) : ""],
      ["Runner queue", execution.runnerQueue],
      ["Priority", execution.priority],
      ["Queued behind", status.queuedBehind && executionLink(status.queuedBehind)],
      ["Cancel asked by", actorText(execution.cancelRequestedBy)],
      ["Labels", labelChips(execution.labels)],
      ["Workflow ID", execution.workflowId],
    ];
    const title = el(
      "div",
      { class: "title" },
      el("h1", { class: "mono", dataset: { testid: "detail-id" } }, execution.id),
      badge(phase, { dataset: { testid: "detail-phase" } }),
      el("span", { class: `conn conn-${this.connection}`, title: "event stream" }, this.connection),
      el("span", { class: "spacer" }),
      this.links(execution),
      this.cancelButton(phase),
    );
    const notice = (text, attrs) => (text ? el("p", { class: "notice", ...attrs }, text) : null);
    const streamProblem = this.connection === "live" ? "" : this.problem;
    return el(
      "section",
      { class: "card head" },
      backLink(),
      title,
      notice(this.cancel.error, { role: "alert", dataset: { testid: "cancel-error" } }),
      notice(streamProblem && `Event stream: ${streamProblem}`, { role: "status" }),
      facts(pairs),
      agent && execution.message
        ? el(
            "div",
            { class: "prompt" },
            el("h2", {}, "Message"),
            el("p", { class: "text" }, execution.message),
          )
        : null,
      !agent && execution.input ? collapsible("input", "Input", json(execution.input)) : null,
    );
  }

  links(execution) {
    const links = [];
    const { temporalUiUrl, namespace, traceUrlTemplate } = this.config;
    if (temporalUiUrl && execution.workflowId) {
      const base = temporalUiUrl.replace(/\/+$/, "");
      const workflow = encodeURIComponent(execution.workflowId);
      const href = `${base}/namespaces/${encodeURIComponent(namespace)}/workflows/${workflow}`;
      links.push(externalLink(href, "Temporal UI", "temporal-link"));
    }
    if (traceUrlTemplate && execution.traceId) {
      const href = traceUrlTemplate.replaceAll("{trace_id}", encodeURIComponent(execution.traceId));
      links.push(externalLink(href, "Trace", "trace-link"));
    }
    return links;
  }

  cancelButton(phase) {
    if (isTerminal(phase)) return null;
    const { busy, refused, error } = this.cancel;
    return el(
      "button",
      {
        type: "button",
        class: "danger",
        dataset: { testid: "cancel" },
        disabled: busy || refused,
        title: refused ? error : "Ask the orchestrator to cancel this execution",
        onclick: () => this.requestCancel(),
      },
      busy ? "Cancelling…" : "Cancel",
    );
  }
}

function backLink() {
  return el("p", { class: "back" }, el("a", { href: "#/" }, "← All executions"));
}
