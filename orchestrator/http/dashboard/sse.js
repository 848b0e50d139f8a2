// A small Server-Sent Events parser (the text/event-stream format of the HTML standard).
//
// The page reads streams with fetch() rather than EventSource because EventSource cannot
// send an Authorization header; this turns the body's text chunks into messages.

/**
 * Incremental parser: feed() it decoded text as it arrives; it calls onMessage for every
 * complete message ({id, event, data}). Comment lines (": keepalive") are skipped.
 */
export class SseParser {
  /** @param {(message: {id: string, event: string, data: string}) => void} onMessage */
  constructor(onMessage) {
    this.onMessage = onMessage;
    this.buffer = "";
    this.reset();
    // The last id seen in any message: what a reconnect sends as Last-Event-ID.
    this.lastEventId = "";
  }

  reset() {
    this.event = "";
    this.data = [];
    this.id = null;
  }

  /** @param {string} text */
  feed(text) {
    this.buffer += text;
    // A trailing CR may be the first half of a CRLF split across chunks: wait for more.
    const held = this.buffer.endsWith("\r") ? 1 : 0;
    const complete = this.buffer.slice(0, this.buffer.length - held);
    const lines = complete.split(/\r\n|\n|\r/);
    // The last piece is an incomplete line (empty when the text ended with a line end).
    this.buffer = (lines.pop() ?? "") + this.buffer.slice(this.buffer.length - held);
    for (const line of lines) this.line(line);
  }

  /** @param {string} line */
  line(line) {
    if (line === "") {
      this.dispatch();
      return;
    }
    if (line.startsWith(":")) return;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") this.data.push(value);
    else if (field === "event") this.event = value;
    else if (field === "id" && !value.includes("\0")) this.id = value;
  }

  dispatch() {
    if (this.id !== null) this.lastEventId = this.id;
    if (this.data.length > 0) {
      this.onMessage({
        id: this.lastEventId,
        event: this.event || "message",
        data: this.data.join("\n"),
      });
    }
    this.reset();
  }
}
