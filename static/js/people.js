// Who is online (server-wide), who is in each room and may moderate it, and the list
// shown beside the log.

import { el, nickEl } from "./dom.js";
import { me } from "./identity.js";
import { VIA } from "./render.js";
import { LOBBY } from "./protocol.js";

const byName = (a, b) => a.localeCompare(b, undefined, { sensitivity: "base" });
const key = (nick) => String(nick ?? "").toLowerCase();

// "@" before an operator's name; a screen reader hears "operator".
function opMark() {
  const mark = el("span", "op-mark", el("span", "sr-only", "operator"));
  mark.append(el("span", "", "@"));
  mark.lastChild.setAttribute("aria-hidden", "true");
  mark.title = "operator of this room";
  return mark;
}

export class People {
  constructor(ui) {
    this.ui = ui; // {users, count, title}
    this.online = new Map(); // nick -> {nick, via, away}
    this.members = new Map(); // room -> Set of nicks, once known
    this.shown = null; // the room whose members are listed (null: everyone online)
    this.ops = new Map(); // room -> Set of nick keys who may moderate it (/names, op, deop)
    this.serverOps = new Set(); // nick keys of server operators (/who, the welcome)
    this.operator = false; // we are a server operator (the welcome says so)
    this.decorate = null; // (item, nick, room): extra controls for one person's entry
  }

  isOp(room, nick) { return this.serverOps.has(key(nick)) || !!this.ops.get(room)?.has(key(nick)); }

  // May we moderate `room`? (then the list offers actions)
  canModerate(room) { return room !== null && (this.operator || this.isOp(room, me.nick)); }

  opRoom(room) {
    if (!this.ops.has(room)) this.ops.set(room, new Set());
    return this.ops.get(room);
  }

  nicks() { return [...this.online.keys()].sort(byName); }

  knows(room) { return this.members.has(room); }

  // `list`: [{nick, via, away}], with a room its members (online too); `whole` false: page 2+.
  set(list, room = null, whole = true) {
    if (room === null && whole) this.online.clear();
    const nicks = whole ? new Set() : (this.members.get(room) ?? new Set());
    const ops = room === null ? this.serverOps : (whole ? new Set() : this.opRoom(room));
    for (const u of list ?? []) {
      if (u.op === true) ops.add(key(u.nick));
      else if (u.op === false) ops.delete(key(u.nick));
      const old = this.online.get(u.nick);
      this.online.set(u.nick, { nick: u.nick, via: u.via ?? old?.via, away: u.away ?? null });
      nicks.add(u.nick);
    }
    if (room !== null) {
      this.members.set(room, nicks);
      this.ops.set(room, ops);
    }
    this.draw();
  }

  show(room) {
    this.shown = room;
    this.draw();
  }

  forgetRoom(room) {
    this.members.delete(room);
    this.ops.delete(room);
  }

  forgetRooms() {
    this.members.clear();
    this.ops.clear();
  }

  clear() {
    this.online.clear();
    this.forgetRooms();
    this.draw();
  }

  // Keep the lists current from events; true when the event changed them.
  track(ev) {
    const who = this.online.get(ev.nick);
    switch (ev.type) {
      case "welcome": this.set(ev.users); return true;
      case "users": this.set(ev.users, null, ev.after == null && ev.next == null); return true;
      case "names": this.set(ev.users, ev.room ?? null, ev.after == null); return true;
      case "presence": this.gathered(ev); break;
      case "join": // connecting puts one in the lobby
        this.online.set(ev.nick, { nick: ev.nick, via: ev.via, away: null });
        this.members.get(LOBBY)?.add(ev.nick);
        break;
      case "leave":
        this.online.delete(ev.nick);
        for (const nicks of this.members.values()) nicks.delete(ev.nick);
        break;
      case "enter": this.members.get(ev.room)?.add(ev.nick); break;
      case "exit": this.members.get(ev.room)?.delete(ev.nick); break;
      case "kick": case "ban": this.members.get(ev.room)?.delete(ev.target); break;
      case "op": this.opRoom(ev.room).add(key(ev.target)); break;
      case "deop": this.ops.get(ev.room)?.delete(key(ev.target)); break;
      case "nick":
        this.online.delete(ev.nick);
        this.online.set(ev.new, { ...(who ?? { via: "" }), nick: ev.new, away: who?.away ?? null });
        for (const nicks of this.members.values()) {
          if (nicks.delete(ev.nick)) nicks.add(ev.new);
        }
        this.members.get(LOBBY)?.add(ev.new); // even if not paged in yet
        for (const ops of [this.serverOps, ...this.ops.values()]) {
          if (ops.delete(key(ev.nick))) ops.add(key(ev.new));
        }
        break;
      case "away": if (who) who.away = ev.text ?? ""; break;
      case "back": if (who) who.away = null; break;
      default: return false;
    }
    this.draw();
    return true;
  }

  // A crowded room's comings and goings.
  gathered({ room, joined, left }) {
    const lobby = room === LOBBY;
    for (const u of joined) {
      if (lobby) this.online.set(u.nick, { ...u, away: u.away ?? null });
      this.members.get(room)?.add(u.nick);
    }
    for (const nick of left) {
      if (lobby) this.online.delete(nick);
      for (const nicks of lobby ? this.members.values() : [this.members.get(room)]) nicks?.delete(nick);
    }
  }

  draw() {
    const room = this.shown;
    // Until a room's members are known, the lobby shows everyone online and another room no one.
    let nicks = this.nicks();
    if (room !== null && this.members.has(room)) nicks = [...this.members.get(room)];
    else if (room !== null && room !== LOBBY) nicks = [];
    const list = nicks.map((n) => this.online.get(n) ?? { nick: n, via: "", away: null });
    list.sort((a, b) => byName(a.nick, b.nick));
    // Redrawing replaces the buttons: keep the keyboard where it was.
    const users = this.ui.users;
    const focused = users.contains(document.activeElement) ? document.activeElement.dataset.key : null;
    users.replaceChildren(...list.map((p) => {
      const away = p.away !== null && p.away !== undefined;
      const op = this.isOp(room, p.nick) ? opMark() : null;
      const item = el("li", away ? "away" : "", op, nickEl(p.nick),
        p.via ? el("span", `via via-${p.via}`, VIA[p.via] ?? p.via) : null,
        away ? el("span", "away-note", p.away ? `away: ${p.away}` : "away") : null);
      if (op) item.classList.add("op");
      if (me.is(p.nick)) item.classList.add("me");
      item.dataset.nick = p.nick;
      this.decorate?.(item, p.nick, room);
      return item;
    }));
    if (focused) users.querySelector(`[data-key="${CSS.escape(focused)}"]`)?.focus();
    this.ui.count.textContent = String(list.length);
    if (room !== null) this.ui.title.textContent = `In ${room}`;
  }
}
