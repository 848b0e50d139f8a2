// The sections of the execution detail, each a function of the execution (proto3 JSON)
// returning a node, or null when there is nothing to show.

import {
  actorText,
  badge,
  el,
  elapsed,
  errorText,
  int,
  json,
  phaseOf,
  shortEnum,
  shortTime,
} from "./format.js";
import { taskTree } from "./tasks.js";

/** A card with a heading. */
export function section(title, attrs, ...children) {
  const classes = ["card", attrs.class].filter(Boolean).join(" ");
  return el("section", { ...attrs, class: classes }, el("h2", {}, title), ...children);
}

/** A definition list of [term, value] pairs, leaving out empty values. */
export function facts(pairs, attrs = {}) {
  const shown = pairs.filter(([, value]) => value !== undefined && value !== null && value !== "");
  return el(
    "dl",
    { class: "facts", ...attrs },
    shown.map(([term, value]) => [el("dt", {}, term), el("dd", {}, value)]),
  );
}

function table(headings, rows) {
  const head = el("tr", {}, headings.map((text) => el("th", { scope: "col" }, text)));
  return el("table", { class: "grid" }, el("thead", {}, head), el("tbody", {}, rows));
}

/** A link to another execution's detail. */
export function executionLink(id) {
  return el("a", { href: `#/executions/${encodeURIComponent(id)}` }, id);
}

/** A link that opens elsewhere (the Temporal UI, a trace). */
export function externalLink(href, text, testid) {
  return el("a", { href, target: "_blank", rel: "noopener", dataset: { testid } }, text);
}

/** A <details> block that starts closed; `key` lets a redraw keep it open. */
export function collapsible(key, summary, text) {
  return el("details", { dataset: { key } }, el("summary", {}, summary), el("pre", {}, text));
}

/** The answer of an agent execution, as far as it has been typed. */
export function answerSection({ text, streaming }, execution) {
  const ended = ["COMPLETED", "FAILED", "CANCELLED"].includes(phaseOf(execution));
  const output = execution.status.output;
  return section(
    "Answer",
    {},
    el(
      "p",
      {
        class: `text answer${streaming ? " streaming" : ""}`,
        dataset: { testid: "answer", streaming: String(streaming) },
        "aria-live": "polite",
        "aria-busy": String(streaming),
      },
      text || el("span", { class: "muted" }, ended ? "No answer." : "No answer yet."),
    ),
    output ? collapsible("output", "Structured output", json(output)) : null,
  );
}

export function workflowOutputSection(status) {
  if (status.output === undefined) return null;
  const output = el("pre", { dataset: { testid: "workflow-output" } }, json(status.output));
  return section("Output", {}, output);
}

export function errorSection(error) {
  if (!error) return null;
  const pairs = [
    ["Type", error.type],
    ["Message", error.message],
    ["Step", error.step],
    ["Status", error.status ? String(error.status) : ""],
    ["Title", error.title],
    ["Detail", error.detail],
    ["Instance", error.instance],
  ];
  return section("Error", { class: "error", dataset: { testid: "error" } }, facts(pairs));
}

export function messagesSection(messages, status) {
  if (messages.length === 0) return null;
  const items = messages.map((message) => {
    const role = shortEnum(message.role, "MESSAGE_ROLE_").toLowerCase();
    const asksForTools = Boolean(message.toolCalls?.length);
    // The final answer is stored once, as outputText: its message keeps no copy.
    const content =
      message.content || (role === "assistant" && !asksForTools ? status.outputText : "");
    const meta = el(
      "div",
      { class: "meta" },
      el("strong", {}, role),
      message.name ? ` · ${message.name}` : "",
      message.toolCallId ? ` · result of ${message.toolCallId}` : "",
      el("span", { class: "muted" }, ` ${shortTime(message.createTime)}`),
    );
    const calls = (message.toolCalls ?? []).map((call) =>
      el("p", { class: "mono small" }, `→ ${call.name}(${oneLine(call.arguments ?? {}, 120)})`),
    );
    return el(
      "li",
      { class: `message role-${role}`, dataset: { testid: "message", role } },
      meta,
      content ? el("p", { class: "text" }, content) : null,
      calls,
    );
  });
  return section(`Messages (${messages.length})`, {}, el("ol", { class: "messages" }, items));
}

export function toolCallsSection(calls) {
  if (calls.length === 0) return null;
  const rows = calls.map((call) =>
    el(
      "tr",
      { dataset: { testid: "tool-call", name: call.name } },
      el("td", { class: "mono" }, call.name),
      el("td", {}, badge(shortEnum(call.status, "TOOL_CALL_STATUS_"))),
      el("td", {}, el("pre", {}, json(call.arguments ?? {}))),
      el("td", {}, el("pre", { class: call.error ? "bad" : "" }, call.error || call.result || "")),
      el("td", {}, elapsed(call.startTime, call.endTime)),
    ),
  );
  const headings = ["Tool", "Status", "Arguments", "Result", "Duration"];
  return section(`Tool calls (${calls.length})`, {}, table(headings, rows));
}

export function subAgentsSection(runs) {
  if (runs.length === 0) return null;
  const rows = runs.map((run) =>
    el(
      "tr",
      { dataset: { testid: "sub-agent", name: run.name } },
      el("td", { class: "mono" }, run.name),
      el("td", {}, badge(phaseOf({ status: run }))),
      el("td", {}, el("p", { class: "text" }, run.input ?? "")),
      el(
        "td",
        {},
        run.error
          ? el("p", { class: "bad" }, errorText(run.error))
          : el("p", { class: "text" }, run.output ?? ""),
      ),
      el("td", {}, elapsed(run.startTime, run.endTime)),
    ),
  );
  const headings = ["Sub-agent", "Phase", "Input", "Output", "Duration"];
  return section(`Sub-agent runs (${runs.length})`, {}, table(headings, rows));
}

export function tasksSection(tasks) {
  if (tasks.length === 0) {
    return section("Tasks", {}, el("p", { class: "muted" }, "No task has started yet."));
  }
  const roots = taskTree(tasks).map(taskNode);
  const tree = el("ul", { class: "tree", dataset: { testid: "task-tree" } }, roots);
  return section(`Tasks (${tasks.length})`, {}, tree);
}

function taskNode({ task, children }) {
  const phase = shortEnum(task.phase, "TASK_PHASE_");
  const child = task.agentExecutionId || task.workflowExecutionId;
  const line = el(
    "div",
    { class: "task" },
    badge(phase, { dataset: { testid: "task-phase" } }),
    el("strong", { class: "mono" }, task.name || task.id),
    task.type ? el("span", { class: "muted" }, task.type) : null,
    el("span", { class: "muted mono small" }, task.id),
    int(task.attempts) > 1 ? el("span", { class: "muted" }, `· ${task.attempts} attempts`) : null,
    el("span", { class: "muted" }, elapsed(task.startTime, task.endTime)),
    child ? ["·", executionLink(child)] : null,
  );
  const output =
    task.output === undefined
      ? null
      : el(
          "details",
          { class: "task-output", dataset: { key: `task:${task.id}` } },
          el("summary", { class: "mono small" }, oneLine(task.output, 150)),
          el("pre", { dataset: { testid: "task-output" } }, json(task.output)),
        );
  return el(
    "li",
    { dataset: { testid: "task", id: task.id, phase } },
    line,
    output,
    task.error ? el("p", { class: "bad" }, errorText(task.error)) : null,
    children.length ? el("ul", {}, children.map(taskNode)) : null,
  );
}

export function usageSection(usage) {
  if (!usage) return null;
  const cost = Number(usage.cost ?? 0);
  // Costs are small fractions: six decimals, without trailing zeros.
  const costText = cost ? `${Number(cost.toFixed(6))} ${usage.currency ?? ""}`.trim() : "—";
  const pairs = [
    ["Input tokens", String(int(usage.inputTokens))],
    ["Output tokens", String(int(usage.outputTokens))],
    ["Total tokens", String(int(usage.totalTokens))],
    ["Model calls", String(int(usage.modelCalls))],
    ["Cost", costText],
  ];
  const list = facts(pairs, { class: "facts inline", dataset: { testid: "usage" } });
  return section("Usage", {}, list);
}

export function timelineSection(transitions) {
  if (transitions.length === 0) return null;
  const items = transitions.map((transition) => {
    const actor = actorText(transition.actor);
    return el(
      "li",
      { dataset: { testid: "transition" } },
      el("span", { class: "muted mono", title: transition.time ?? "" }, shortTime(transition.time)),
      " ",
      badge(shortEnum(transition.fromPhase, "EXECUTION_PHASE_")),
      " → ",
      badge(shortEnum(transition.toPhase, "EXECUTION_PHASE_")),
      transition.source ? el("span", { class: "muted" }, ` via ${transition.source}`) : null,
      actor ? el("span", {}, ` by ${actor}`) : null,
      transition.reason ? el("span", { class: "muted" }, ` — ${transition.reason}`) : null,
    );
  });
  const list = el("ol", { class: "timeline", dataset: { testid: "timeline" } }, items);
  return section("Phase timeline", {}, list);
}

/** A JSON value on one line, cut at `limit` characters. */
function oneLine(value, limit) {
  const text = JSON.stringify(value);
  return text.length > limit ? `${text.slice(0, limit - 1)}…` : text;
}
