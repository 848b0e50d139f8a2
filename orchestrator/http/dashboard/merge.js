// Applying an execution's watch stream (snapshot, then events) to a live copy of it.
//
// This mirrors the orchestrator's own merge of reports into a status (orchestrator/
// status.py): an event's update is a delta; unset fields leave the status unchanged;
// messages, tool calls, sub-agent runs and tasks are upserted by ID; usage is added.
// Token deltas (contentDelta) are not part of the status: they are collected per message
// so the answer can be shown while it is being typed, until the complete message arrives.

import { int, isTerminal, shortEnum } from "./format.js";

/** A fresh live state, before the first snapshot. */
export function newState() {
  return {
    execution: null,
    // Sequence of the last event merged into `execution` (the snapshot's lastSequence first).
    lastSequence: 0,
    // Sequence of the last event whose token delta was collected: a resumed stream replays
    // events the snapshot already holds, and their deltas must not be appended twice.
    deltaSequence: 0,
    // Streamed text per message ID, in the order messages started streaming.
    streamed: new Map(),
  };
}

/** Take a snapshot (the stream's first message) as the execution's state. */
export function applySnapshot(state, snapshot) {
  state.execution = snapshot;
  snapshot.status ??= {};
  state.lastSequence = Math.max(state.lastSequence, int(snapshot.status.lastSequence));
}

/**
 * Apply one ExecutionEvent. Events the snapshot already holds only contribute their token
 * delta (the snapshot does not keep deltas); later ones are merged into the status.
 */
export function applyEvent(state, event) {
  const sequence = int(event.sequence);
  const update = event.update ?? {};
  if (update.contentDelta && sequence > state.deltaSequence) {
    const id = update.deltaMessageId ?? "";
    state.streamed.set(id, (state.streamed.get(id) ?? "") + update.contentDelta);
  }
  state.deltaSequence = Math.max(state.deltaSequence, sequence);
  if (sequence <= state.lastSequence || state.execution === null) return;
  state.lastSequence = sequence;
  mergeUpdate(state.execution, update, event);
}

function mergeUpdate(execution, update, event) {
  const status = execution.status;
  const unset = !update.phase || update.phase === "EXECUTION_PHASE_UNSPECIFIED";
  const requested = unset ? "" : update.phase;
  if (requested && requested !== status.phase) {
    status.transitions ??= [];
    status.transitions.push({
      fromPhase: status.phase,
      toPhase: requested,
      time: event.createTime,
      reason: update.reason || update.error?.message || "",
      source: event.source,
    });
    status.phase = requested;
    if (requested === "EXECUTION_PHASE_RUNNING") status.startTime = event.createTime;
    if (isTerminal(shortEnum(requested, "EXECUTION_PHASE_"))) {
      status.endTime = event.createTime;
      status.queuedBehind = "";
    }
  }
  if (event.phase && event.phase !== "EXECUTION_PHASE_UNSPECIFIED") status.phase = event.phase;
  upsert(status, "messages", update.messages);
  if (update.error) status.error = update.error;
  upsert(status, "toolCalls", update.toolCalls);
  upsert(status, "subAgentExecutions", update.subAgentExecutions);
  upsert(status, "tasks", update.tasks);
  if (update.usage) {
    const usage = (status.usage ??= {});
    for (const field of ["inputTokens", "outputTokens", "totalTokens", "cost", "modelCalls"]) {
      usage[field] = int(usage[field]) + int(update.usage[field]);
    }
    usage.currency = update.usage.currency || usage.currency;
  }
  if (update.outputText) status.outputText = update.outputText;
  if (update.output !== undefined) status.output = update.output;
  if (update.workflowOutput !== undefined) status.output = update.workflowOutput;
  if (event.createTime) execution.updateTime = event.createTime;
}

function upsert(status, field, items) {
  if (!items?.length) return;
  const target = (status[field] ??= []);
  for (const item of items) {
    const at = item.id ? target.findIndex((existing) => existing.id === item.id) : -1;
    if (at < 0) target.push(item);
    else target[at] = item;
  }
}

/**
 * The answer as it stands: the final output text; else the text of the message being
 * streamed (until its complete message arrives); else the last assistant message.
 * Returns {text, streaming}.
 */
export function answerOf(state) {
  const status = state.execution?.status ?? {};
  if (status.outputText) return { text: status.outputText, streaming: false };
  const messages = status.messages ?? [];
  const ids = [...state.streamed.keys()];
  const last = ids[ids.length - 1];
  if (last !== undefined) {
    const complete = messages.find((message) => message.id === last);
    if (!complete?.content) {
      const running = !isTerminal(shortEnum(status.phase, "EXECUTION_PHASE_"));
      return { text: state.streamed.get(last), streaming: running };
    }
  }
  for (const message of [...messages].reverse()) {
    if (message.role === "MESSAGE_ROLE_ASSISTANT" && message.content) {
      return { text: message.content, streaming: false };
    }
  }
  return { text: "", streaming: false };
}
