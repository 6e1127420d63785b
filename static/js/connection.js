// The connection: one WebSocket to /ws and its state machine.
//
//   offline --connect--> connecting --open: join frame--> joining --welcome--> joined
//   joined --socket drops--> disconnected --backoff--> connecting (join with "since")
//   joined --/quit, or removed from the chat--> offline (no reconnect)
//   joining --refused--> offline (the same socket may carry another join, e.g. with a password)
//
// Events before the welcome are the history replay; they are handed over with it.

import { me } from "./identity.js";
import { parseFrame, joinFrame, hasId } from "./protocol.js";

export class Connection {
  // handlers: status(state, text), welcome(ev, early, {again, resuming}) -> [spoken],
  //   event(ev) -> spoken text or null, replayed(ev), received(spoken list),
  //   refused(ev), notice(text), left(text), failed(text), restarted(), rooms() -> [room],
  //   secrets(nick) -> the password fields of a join frame
  constructor(handlers) {
    this.on = handlers;
    this.ws = null; // the current socket
    this.joined = false; // the current socket got its welcome
    this.resume = false; // we were in the chat: rejoin on our own when the socket drops
    this.quitting = false; // the user typed /quit
    this.removed = null; // why the server removed us from the chat (a kick or ban): no rejoining
    this.joining = false; // a join frame is (about to be) on its way and unanswered
    this.lastId = 0; // the highest event id shown (sent as "since" when we join again)
    this.early = []; // what came before the welcome: the history replay
    this.ownJoinPending = false; // the next join event with our nick is our fresh join
    this.attempt = 0; // reconnect attempts since the last welcome
    this.takenRetries = 0; // rejoins refused because our old connection still holds the nick
    this.timer = 0;
  }

  get open() { return this.ws !== null && this.ws.readyState === WebSocket.OPEN; }

  send(frame) {
    if (!this.open) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  connect() {
    clearTimeout(this.timer);
    if (this.ws) return;
    this.on.status("connecting", "Connecting…");
    const url = `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/ws`;
    const sock = new WebSocket(url);
    this.ws = sock;
    this.early = [];
    sock.onopen = () => {
      if (this.ws !== sock) return;
      this.on.status("connecting", "Joining…");
      this.sendJoin();
    };
    sock.onmessage = (e) => this.ws === sock && this.receive(e.data);
    sock.onclose = (e) => this.ws === sock && this.closed(e);
  }

  sendJoin() {
    this.early = [];
    this.send(joinFrame(me.nick, this.lastId, this.on.rooms(), this.on.secrets(me.nick)));
  }

  join(nick) {
    me.set(nick);
    this.quitting = false;
    this.removed = null;
    this.joining = true;
    if (this.open) this.sendJoin();
    else this.connect();
  }

  // Reconnect at once (the reader pressed "Reconnect now", or came back online).
  retryNow() {
    this.attempt = 0;
    this.connect();
  }

  wake() {
    if (this.resume && !this.ws) this.connect();
  }

  // The join was refused or abandoned: do not rejoin on our own.
  stop() {
    this.resume = false;
    this.joining = false;
  }

  // We were kicked or banned from the chat: close, and do not come back on our own.
  remove(why) {
    this.removed = why;
    this.ws?.close(1000);
  }

  // Is this sequenced event new to us? Then it moves "since" on.
  advance(ev) {
    if (!hasId(ev)) return true;
    if (ev.id <= this.lastId) return false;
    this.lastId = ev.id;
    return true;
  }

  // The log cannot fill the gap (or was lost): take what the server has from here.
  resetSince(id = 0) { this.lastId = id; }

  receive(data) {
    const news = [];
    for (const ev of parseFrame(data)) {
      if (this.joined) {
        const text = this.live(ev);
        if (text) news.push(text);
      } else if (ev.type === "welcome") {
        news.push(...this.welcomed(ev));
      } else if (ev.type === "error") {
        this.refused(ev);
      } else {
        this.early.push(ev); // the history replay comes before the welcome
      }
    }
    this.on.received(news);
  }

  // An event after the welcome.
  live(ev) {
    if (ev.history) { // shown again on request, or a room's past as we enter it: not new
      this.on.replayed(ev);
      return null;
    }
    if (hasId(ev) && this.ownJoinPending && ev.type === "join" && me.is(ev.nick)) {
      this.ownJoinPending = false;
      if (ev.id <= this.lastId) { // ids started again: the server restarted without its log
        this.lastId = ev.id - 1;
        this.on.restarted();
      }
    }
    if (!this.advance(ev)) return null;
    return this.on.event(ev);
  }

  welcomed(ev) {
    const again = this.lastId > 0; // we had been here: the replay is what we missed
    const resuming = this.resume;
    const early = this.early;
    this.early = [];
    me.set(ev.nick); // as the server spells it
    this.joined = true;
    this.joining = false;
    this.quitting = false;
    this.resume = true;
    this.attempt = 0;
    this.takenRetries = 0;
    this.ownJoinPending = true;
    return this.on.welcome(ev, early, { again, resuming });
  }

  refused(ev) {
    if (this.resume && ev.code === "nick_taken" && ++this.takenRetries <= 10) {
      // Most likely our old connection, not yet noticed as gone by the server: retry soon.
      this.on.notice(`${me.nick} is still taken, probably by your old connection; trying again…`);
      this.ws.close();
      return;
    }
    this.stop();
    this.on.refused(ev);
  }

  closed(e) {
    const wasJoined = this.joined;
    this.ws = null;
    this.joined = false;
    this.early = [];
    const reason = e.reason ? ` (${e.reason})` : "";
    if ((this.quitting && e.code === 1000) || this.removed !== null) {
      this.quitting = false;
      this.resume = false;
      this.on.left(this.removed ?? "You left the chat.");
      this.removed = null;
    } else if (this.resume) {
      if (wasJoined) this.on.notice(`Disconnected${reason}.`);
      this.reconnectLater();
    } else {
      this.on.status("offline", `Not connected${reason}`);
      if (this.joining) {
        this.stop();
        this.on.failed(e.reason || "Could not reach the chat server. Try again.");
      }
    }
  }

  // Exponential backoff with jitter, capped: a restarted server is not stormed by every page.
  reconnectLater() {
    const cap = Math.min(15000, 500 * 2 ** this.attempt);
    this.attempt += 1;
    const deadline = Date.now() + cap / 2 + (Math.random() * cap) / 2;
    const tick = () => {
      const left = deadline - Date.now();
      if (left <= 0) { this.connect(); return; }
      this.on.status("disconnected", `Disconnected — reconnecting in ${Math.ceil(left / 1000)}s…`);
      this.timer = setTimeout(tick, left % 1000 || 1000); // wake when the shown second changes
    };
    clearTimeout(this.timer);
    tick();
  }
}
