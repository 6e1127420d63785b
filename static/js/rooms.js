// Rooms: one log per room, the room list (unread and mention badges), the active
// room's name and topic, "New" markers, and entering and leaving.

import { el, button } from "./dom.js";
import { LOBBY } from "./protocol.js";
import { LogView } from "./logview.js";

class Room {
  constructor(name) {
    this.name = name;
    this.view = new LogView(name, `Conversation in ${name}`);
    this.topic = "";
    this.member = false; // we are in it (false: its past is arriving as we enter it)
    this.replayed = 0; // history entries shown as we entered it
    this.greeting = null; // the server's word on the room, kept until our own enter
    this.unread = 0; // messages from others while it was not in front of the reader
    this.mentions = 0; // of those, the ones that name us
  }
}

export class Rooms {
  // ui: {list, badge, title, topic, leave, wrap, jump}; switched(room): after the active room changed
  constructor(ui, switched) {
    this.ui = ui;
    this.switched = switched;
    this.rooms = new Map(); // name -> Room, in the order entered
    this.known = new Set([LOBBY]); // room names seen anywhere (for Tab completion)
    this.active = this.room(LOBBY);
    this.active.member = true;
    this.active.view.mount(ui.wrap, ui.jump, null);
    ui.list.addEventListener("click", (e) => {
      const pick = e.target.closest("button[data-room]");
      if (pick) this.switchTo(pick.dataset.room, true);
    });
    this.draw();
  }

  get view() { return this.active.view; }

  has(name) { return this.rooms.get(name)?.member === true; }

  // The room of that name, created (not yet entered) when new.
  room(name) {
    let room = this.rooms.get(name);
    if (!room) {
      room = new Room(name);
      this.rooms.set(name, room);
      this.known.add(name);
    }
    return room;
  }

  // The log an event belongs in: its room's, else the one in front of the reader.
  viewFor(ev) {
    return ev.room ? this.room(ev.room).view : this.view;
  }

  members() { return [...this.rooms.values()].filter((r) => r.member).map((r) => r.name); }

  names() { return [...this.known]; }

  learn(list) {
    for (const r of list ?? []) if (r?.room) this.known.add(r.room);
  }

  // The rooms the welcome says we are in; keeps the one in front if we are still in it.
  welcome(list, active) {
    const listed = new Map((list ?? []).filter((r) => r?.room).map((r) => [r.room, r]));
    if (!listed.size) listed.set(LOBBY, { room: LOBBY }); // a server without rooms
    for (const r of listed.values()) {
      const room = this.room(r.room);
      room.member = true;
      room.topic = r.topic ?? "";
    }
    this.learn(list);
    const keep = listed.has(this.active.name) ? this.active.name : active;
    this.switchTo(listed.has(keep) ? keep : listed.keys().next().value);
    for (const room of [...this.rooms.values()]) if (!listed.has(room.name)) this.drop(room);
    this.draw();
  }

  // We entered a room; a new one comes to the front (one we were already in stays put,
  // as when a reconnect enters our rooms again).
  entered(name) {
    const room = this.room(name);
    const fresh = !room.member;
    room.member = true;
    if (fresh) this.switchTo(name, true);
    this.draw();
    return fresh;
  }

  // We left a room: its log goes, and the lobby (or the room entered last) comes to the front.
  exited(name) {
    const room = this.rooms.get(name);
    if (!room) return;
    const rest = this.members().filter((n) => n !== name);
    if (!rest.length) { // keep something on screen; sending there is refused until /join
      room.member = false;
      this.draw();
      return;
    }
    if (room === this.active) this.switchTo(rest.includes(LOBBY) ? LOBBY : rest.at(-1));
    this.drop(room);
    this.draw();
  }

  drop(room) {
    if (room.view.list.isConnected) room.view.unmount();
    this.rooms.delete(room.name);
  }

  setTopic(name, topic) {
    const room = this.rooms.get(name);
    if (!room) return;
    room.topic = topic ?? "";
    this.draw();
  }

  switchTo(name, byReader = false) {
    const room = this.rooms.get(name);
    if (!room) return;
    const old = this.active;
    if (room !== old) {
      old.view.clearMarker(); // the reader has seen what was there
      this.active = room;
      room.view.mount(this.ui.wrap, this.ui.jump, old.view);
    }
    room.unread = 0;
    room.mentions = 0;
    this.draw();
    this.switched(room.name, byReader && room !== old);
  }

  // Someone else's message arrived in `name`'s log: count it unless the reader sees it.
  // `hidden`: the tab is hidden, so even the room in front has not been read.
  unseen(name, item, mention, hidden) {
    const room = this.rooms.get(name) ?? this.active;
    if (room !== this.active) {
      room.unread += 1;
      if (mention) room.mentions += 1;
      this.draw();
    } else if (!hidden) return;
    room.view.markUnread(item);
  }

  // The tab was hidden: what is in front now counts as read.
  hidden() { this.active.view.clearMarker(); }

  draw() {
    const { list, badge, title, topic, leave } = this.ui;
    let unread = 0;
    list.replaceChildren(...[...this.rooms.values()].filter((r) => r.member).map((room) => {
      const current = room === this.active;
      unread += room.unread;
      const parts = [el("span", "room-name", room.name)];
      const label = [room.name];
      if (room.unread) {
        parts.push(el("span", "badge unread", String(room.unread)));
        label.push(`${room.unread} unread`);
      }
      if (room.mentions) {
        parts.push(el("span", "badge mention", `@${room.mentions}`));
        label.push(room.mentions === 1 ? "1 mention" : `${room.mentions} mentions`);
      }
      const pick = button("room", "", label.join(", "));
      pick.append(...parts);
      pick.dataset.room = room.name;
      if (current) pick.setAttribute("aria-current", "true");
      const item = el("li", current ? "active" : "", pick);
      item.dataset.room = room.name;
      return item;
    }));
    badge.hidden = unread === 0;
    badge.textContent = String(unread);
    title.textContent = this.active.name;
    topic.textContent = this.active.topic;
    topic.hidden = !this.active.topic;
    leave.hidden = this.active.name === LOBBY || !this.active.member;
    leave.setAttribute("aria-label", `Leave ${this.active.name}`);
  }
}
