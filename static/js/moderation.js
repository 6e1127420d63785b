// Moderation from the people list. An operator of the room in front gets, beside each
// other person's name, a button that shows that person's actions (Kick, Mute 10m, ...).
// Each action is the command the reader could have typed, said in the room in front;
// the server decides, and its event (or its refusal) shows in the log.

import { el, button } from "./dom.js";
import { me } from "./identity.js";

// [label, command, when: undefined = always, true = only for operators, false = only for others]
const ACTIONS = [
  ["Kick", "kick"],
  ["Mute 10m", "mute", " 10m"],
  ["Unmute", "unmute"],
  ["Ban", "ban"],
  ["Make operator", "op", "", false],
  ["Remove operator", "deop", "", true],
];

export class Moderation {
  // people: People (who may moderate what); send(text, room): says it, true when sent
  constructor(list, people, send) {
    this.list = list;
    this.people = people;
    this.send = send;
    this.open = null; // the nick whose actions are shown
    people.decorate = (item, nick, room) => this.decorate(item, nick, room);
    list.addEventListener("click", (e) => this.clicked(e.target.closest("button[data-nick]")));
    list.addEventListener("keydown", (e) => {
      if (e.key !== "Escape" || this.open === null) return;
      e.stopPropagation(); // the menu closes, not the panel around it
      this.toggle(null);
    });
    document.addEventListener("pointerdown", (e) => { // a press elsewhere closes the menu
      if (this.open !== null && !e.composedPath().includes(list)) this.toggle(null, false);
    });
  }

  // The controls for one person's entry in the list of `room`.
  decorate(item, nick, room) {
    if (me.is(nick) || !this.people.canModerate(room)) return;
    const open = this.open === nick;
    const toggle = button("mod-toggle", "⋯", `Moderate ${nick}`);
    toggle.dataset.nick = nick;
    toggle.dataset.key = `moderate ${nick}`;
    toggle.setAttribute("aria-expanded", String(open));
    item.append(toggle);
    if (!open) return;
    const op = this.people.isOp(room, nick);
    const actions = ACTIONS.filter((a) => a[3] === undefined || a[3] === op).map(([label, cmd, extra = ""]) => {
      const action = button("mod-action", label, `${label} ${nick}`);
      action.dataset.nick = nick;
      action.dataset.key = `${cmd} ${nick}`;
      action.dataset.command = `/${cmd} ${nick}${extra}`;
      return action;
    });
    const group = el("div", "mod-actions", ...actions);
    group.setAttribute("role", "group");
    group.setAttribute("aria-label", `Actions for ${nick}`);
    item.append(group);
  }

  clicked(target) {
    if (!target) return;
    const { nick, command } = target.dataset;
    if (!command) {
      this.toggle(this.open === nick ? null : nick);
      return;
    }
    if (this.send(command, this.people.shown)) this.toggle(null);
  }

  // Show one person's actions (null: none), and keep the keyboard on that person's button.
  toggle(nick, refocus = true) {
    const was = this.open;
    this.open = nick;
    this.people.draw();
    const name = nick ?? was;
    if (refocus && name !== null) {
      this.list.querySelector(`[data-key="${CSS.escape(`moderate ${name}`)}"]`)?.focus();
    }
  }
}
