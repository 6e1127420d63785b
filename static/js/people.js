// Who is online (server-wide), who is in each room, and the list shown beside the log.

import { el, nickEl } from "./dom.js";
import { me } from "./identity.js";
import { VIA } from "./render.js";
import { LOBBY } from "./protocol.js";

const byName = (a, b) => a.localeCompare(b, undefined, { sensitivity: "base" });

export class People {
  constructor(ui) {
    this.ui = ui; // {users, count, title}
    this.online = new Map(); // nick -> {nick, via, away}
    this.members = new Map(); // room -> Set of nicks, once known
    this.shown = null; // the room whose members are listed (null: everyone online)
  }

  nicks() { return [...this.online.keys()].sort(byName); }

  knows(room) { return this.members.has(room); }

  // `list`: [{nick, via, away}]; with a room, that room's members (they are online too).
  set(list, room = null) {
    if (room === null) this.online.clear();
    const nicks = new Set();
    for (const u of list ?? []) {
      const old = this.online.get(u.nick);
      this.online.set(u.nick, { nick: u.nick, via: u.via ?? old?.via, away: u.away ?? null });
      nicks.add(u.nick);
    }
    if (room !== null) this.members.set(room, nicks);
    this.draw();
  }

  show(room) {
    this.shown = room;
    this.draw();
  }

  forgetRoom(room) { this.members.delete(room); }

  forgetRooms() { this.members.clear(); }

  clear() {
    this.online.clear();
    this.members.clear();
    this.draw();
  }

  // Keep the lists current from events; true when the event changed them.
  track(ev) {
    const who = this.online.get(ev.nick);
    switch (ev.type) {
      case "welcome": case "users": this.set(ev.users); return true;
      case "names": this.set(ev.users, ev.room ?? null); return true;
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
      case "nick":
        this.online.delete(ev.nick);
        this.online.set(ev.new, { ...(who ?? { via: "" }), nick: ev.new, away: who?.away ?? null });
        for (const nicks of this.members.values()) {
          if (nicks.delete(ev.nick)) nicks.add(ev.new);
        }
        break;
      case "away": if (who) who.away = ev.text ?? ""; break;
      case "back": if (who) who.away = null; break;
      default: return false;
    }
    this.draw();
    return true;
  }

  draw() {
    const room = this.shown;
    // Until a room's members are known, the lobby shows everyone online and another room no one.
    let nicks = this.nicks();
    if (room !== null && this.members.has(room)) nicks = [...this.members.get(room)];
    else if (room !== null && room !== LOBBY) nicks = [];
    const list = nicks.map((n) => this.online.get(n) ?? { nick: n, via: "", away: null });
    list.sort((a, b) => byName(a.nick, b.nick));
    this.ui.users.replaceChildren(...list.map((p) => {
      const away = p.away !== null && p.away !== undefined;
      const item = el("li", away ? "away" : "", nickEl(p.nick),
        p.via ? el("span", `via via-${p.via}`, VIA[p.via] ?? p.via) : null,
        away ? el("span", "away-note", p.away ? `away: ${p.away}` : "away") : null);
      if (me.is(p.nick)) item.classList.add("me");
      return item;
    }));
    this.ui.count.textContent = String(list.length);
    if (room !== null) this.ui.title.textContent = `In ${room}`;
  }
}
