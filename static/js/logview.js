// One scrolling log: its entries, which ids it shows, whether it follows new
// entries, the "new messages" button, and scroll-back through /api/history.

import { el, button, separator } from "./dom.js";
import { entry } from "./render.js";
import { hasId } from "./protocol.js";

const MAX_LOG = 1000; // entries kept while following the conversation
const PAGE = 50; // older events fetched per scroll to the top

const OLDER_TEXT = {
  busy: "Loading earlier messages…",
  start: "Beginning of history",
  off: "Earlier messages are not available",
  failed: "Could not load earlier messages",
};

const resize = new ResizeObserver((changes) => {
  for (const change of changes) change.target.view?.followIfPinned();
});

export class LogView {
  // `room`: the room whose history scroll-back pages (null: the server's default).
  constructor(room, label = "Conversation") {
    this.room = room;
    this.seen = new Set(); // ids of the events shown, so none is shown twice
    this.pinned = true; // follow new entries: the reader is at the bottom
    this.lastTop = 0;
    this.below = 0; // messages that arrived while the reader was scrolled up
    this.older = { busy: false, done: false, state: "" };
    this.marker = null; // the "New" line: where the reader stopped reading
    this.jump = null; // the "new messages" button while this log is on screen
    this.olderItem = el("li", "ev older");
    this.olderItem.hidden = true;
    this.list = el("ol", "log", this.olderItem);
    this.list.view = this;
    this.list.setAttribute("role", "log");
    this.list.setAttribute("aria-live", "off");
    this.list.setAttribute("aria-label", label);
    this.list.tabIndex = 0;
    this.list.addEventListener("scroll", () => this.scrolled());
    // A log too short to scroll still asks for more with the wheel.
    this.list.addEventListener("wheel", (e) => {
      if (e.deltaY < 0 && this.list.scrollTop === 0) this.loadOlder();
    }, { passive: true });
  }

  // Put this log on screen in `wrap` (in place of `current`), with the shared jump button.
  mount(wrap, jump, current) {
    this.jump = jump;
    this.list.id = "log";
    this.olderItem.id = "older";
    if (current && current !== this) current.unmount();
    wrap.prepend(this.list);
    resize.observe(this.list);
    if (this.pinned) this.scrollToEnd();
    else this.list.scrollTop = this.lastTop;
    this.setBelow(this.below);
  }

  unmount() {
    this.lastTop = this.list.scrollTop;
    resize.unobserve(this.list);
    this.list.removeAttribute("id");
    this.olderItem.removeAttribute("id");
    this.list.remove();
    this.jump = null;
  }

  scrolled() {
    const log = this.list;
    if (!log.isConnected) return;
    this.pinned = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
    if (this.pinned) this.setBelow(0);
    if (log.scrollTop < 80 && log.scrollTop < this.lastTop) this.loadOlder();
    this.lastTop = log.scrollTop;
  }

  scrollToEnd() { this.list.scrollTop = this.list.scrollHeight; }

  followIfPinned() { if (this.pinned && this.list.isConnected) this.scrollToEnd(); }

  // Back to the newest entry (the reader sent something, or pressed "new messages").
  follow() {
    this.pinned = true;
    this.setBelow(0);
    this.scrollToEnd();
  }

  setBelow(n) {
    this.below = n;
    if (!this.jump) return;
    this.jump.hidden = n === 0;
    this.jump.textContent = n === 1 ? "1 new message ↓" : `${n} new messages ↓`;
  }

  append(item) {
    if (!item) return null;
    this.list.append(item);
    const extra = this.list.childElementCount - 1 - MAX_LOG;
    if (this.pinned && extra > 0) { // drop the oldest; scrolling back fetches them again
      for (let i = 0; i < extra; i++) {
        const gone = this.olderItem.nextElementSibling;
        if (gone === this.marker) this.marker = null;
        this.seen.delete(Number(gone.dataset.id));
        gone.remove();
      }
      this.older.done = false;
      this.updateOlder();
    }
    return item;
  }

  // Show an event; `keep`: it is part of the log's one sequence (not a copy shown on request).
  show(ev, history = false, keep = true) {
    const item = entry(ev, history);
    if (item && keep && hasId(ev)) {
      item.dataset.id = ev.id;
      this.seen.add(ev.id);
    }
    return this.append(item);
  }

  // The log's ids are no longer a guide (a gap, or a server that lost its log).
  forget(done = false) {
    this.seen.clear();
    if (done) this.older.done = true;
  }

  // Nothing came before what the log holds (a room entered with no past).
  noEarlier() { this.older.done = true; }

  // The "New" line goes before the first entry the reader has not seen.
  markUnread(item) {
    if (this.marker || !item) return;
    this.marker = separator("New", "marker");
    item.before(this.marker);
  }

  clearMarker() {
    this.marker?.remove();
    this.marker = null;
  }

  // The oldest id in the log: scroll-back asks for what came before it.
  oldestId() {
    const first = this.list.querySelector("li[data-id]");
    return first ? Number(first.dataset.id) : 0;
  }

  drawOlder(state) {
    const node = this.olderItem;
    if (this.older.state === state && state !== "busy") return;
    this.older.state = state;
    node.hidden = false;
    node.className = `ev older ${state}`;
    if (state === "more") {
      const more = button("link", "Show earlier messages");
      more.addEventListener("click", () => this.loadOlder());
      node.replaceChildren(more);
    } else {
      node.replaceChildren(OLDER_TEXT[state]);
    }
  }

  updateOlder() {
    if (this.older.done || this.oldestId() <= 1) {
      this.older.done = true;
      this.drawOlder("start");
    } else this.drawOlder("more");
  }

  historyUrl(before) {
    const room = this.room ? `room=${encodeURIComponent(this.room)}&` : "";
    return `/api/history?${room}before=${before}&limit=${PAGE}`;
  }

  async loadOlder() {
    const before = this.oldestId();
    const older = this.older;
    if (older.busy || older.done) return;
    if (before <= 1) { this.updateOlder(); return; }
    older.busy = true;
    const refocus = this.olderItem.contains(document.activeElement); // a keyboard user pressed it
    this.drawOlder("busy");
    try {
      const res = await fetch(this.historyUrl(before));
      const data = await res.json().catch(() => ({}));
      if (res.status === 503) {
        older.done = true;
        this.drawOlder("off");
        return;
      }
      if (!res.ok || !Array.isArray(data.events)) throw new Error(data.error ?? res.statusText);
      const items = [];
      for (const ev of data.events) {
        if (!ev || !hasId(ev) || this.seen.has(ev.id) || ev.id >= before) continue;
        this.seen.add(ev.id);
        const item = entry(ev, true);
        if (item) { item.dataset.id = ev.id; items.push(item); }
      }
      // Keep what the reader is looking at in place while the log grows above it.
      const log = this.list;
      const height = log.scrollHeight;
      this.olderItem.after(...items);
      log.scrollTop += log.scrollHeight - height;
      this.lastTop = log.scrollTop;
      older.done = !data.more;
      this.updateOlder();
    } catch {
      this.drawOlder("failed");
      setTimeout(() => this.olderItem.classList.contains("failed") && this.drawOlder("more"), 3000);
    } finally {
      older.busy = false;
      if (refocus) (this.olderItem.querySelector("button") ?? this.list).focus({ preventScroll: true });
    }
  }
}
