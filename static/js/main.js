// webchat page: wires the modules together. One WebSocket to /ws, JSON events in,
// {"type":"say"} frames out. Received text only reaches the page through text nodes
// and attributes (see render.js): it is never parsed as HTML.

import { $, store, separator } from "./dom.js";
import { me } from "./identity.js";
import { CHATTY, LOBBY, hasId, isGapNotice, isHistoryNotice, roomName, sayFrame } from "./protocol.js";
import { entry } from "./render.js";
import { People } from "./people.js";
import { Rooms } from "./rooms.js";
import { Composer } from "./composer.js";
import { Connection } from "./connection.js";
import { Moderation } from "./moderation.js";
import { answered, ask, isSecret, joined, secretsFor, take, typed } from "./accounts.js";
import {
  clearUnread, countUnread, desktopNotify, isHidden, setupNotifications, speak, speakAll, spoken,
} from "./notifications.js";

const NICK_KEY = "webchat.nick";

const ui = {
  status: $("status"), retry: $("retry"), notify: $("notify"),
  joinView: $("join-view"), joinForm: $("join-form"), nick: $("nick"),
  nickError: $("nick-error"), nickHint: $("nick-hint"),
  chatView: $("chat-view"), logWrap: $("log-wrap"), jump: $("jump"),
  sayForm: $("say-form"), message: $("message"), leftBar: $("left-bar"), rejoin: $("rejoin"),
  people: $("people"), users: $("users"), count: $("user-count"), peopleTitle: $("people-title"),
  roomsPanel: $("rooms-panel"), roomList: $("room-list"), roomsBadge: $("rooms-badge"),
  roomForm: $("room-form"), roomInput: $("room-input"), roomError: $("room-error"),
  roomTitle: $("room-title"), roomTopic: $("room-topic"), leave: $("leave-room"),
  announce: $("announce"), leftText: $("left-text"),
};
const narrow = matchMedia("(max-width: 640px)");
const panels = [ui.roomsPanel, ui.people];

const people = new People({ users: ui.users, count: ui.count, title: ui.peopleTitle });
const moderation = new Moderation(ui.users, people, (text, room) => say(text, room));
const asked = new Set(); // rooms whose member list the page asked for (answers not shown)
const paging = new Map(); // room -> the page of its member list asked for, one at a time

const rooms = new Rooms({
  list: ui.roomList, badge: ui.roomsBadge, title: ui.roomTitle, topic: ui.roomTopic,
  leave: ui.leave, wrap: ui.logWrap, jump: ui.jump,
}, (name, byReader) => {
  moderation.open = null;
  people.show(name);
  askNames(name);
  ui.message.placeholder = `Message ${name}`;
  if (byReader && narrow.matches) ui.roomsPanel.open = false;
});

// ----- what the reader sees -----

function setStatus(state, text) {
  ui.status.dataset.state = state;
  ui.status.textContent = text;
  ui.retry.hidden = state !== "disconnected";
}

// A line from the page itself (not from the server), in the room in front.
function notice(text, kind = "notice") {
  rooms.view.append(entry({ type: kind, text }));
  if (kind === "error") speak(text);
  rooms.view.followIfPinned();
}

function rememberNick(nick) {
  me.set(nick);
  store.set(NICK_KEY, nick);
  if (conn.joined) setStatus("online", `Connected as ${nick}`);
}

// `field`: the field the refusal is about (a password), when not the nickname.
function showJoin(error, field = null) {
  conn.stop();
  if (conn.ws) setStatus("connecting", "Connected, not joined yet");
  ui.joinView.hidden = false;
  ui.chatView.hidden = true;
  ui.rejoin.disabled = false;
  ui.joinForm.querySelector("button").disabled = false;
  ui.nickError.textContent = field ? "" : error ?? "";
  ui.nick.setAttribute("aria-invalid", error && !field ? "true" : "false");
  const focus = field ?? ui.nick;
  focus.focus();
  if (error || field) focus.select();
}

function showChat() {
  const fromElsewhere = ui.chatView.hidden || !ui.leftBar.hidden;
  ui.joinView.hidden = true;
  ui.chatView.hidden = false;
  ui.leftBar.hidden = true;
  ui.rejoin.disabled = false;
  ui.sayForm.hidden = false;
  ui.nickError.textContent = "";
  ui.nick.setAttribute("aria-invalid", "false");
  ui.notify.hidden = !("Notification" in window);
  if (fromElsewhere) ui.message.focus();
}

function showLeft(text) {
  ui.sayForm.hidden = true;
  ui.leftBar.hidden = false;
  ui.leftText.textContent = text;
  people.clear();
  setStatus("offline", text === "You left the chat." ? "You left the chat" : "Removed from the chat");
  ui.rejoin.focus();
}

// The members of a room we are in, asked for once per connection (then kept from events).
function askNames(name) {
  if (!conn.joined || !rooms.has(name) || people.knows(name) || asked.has(name)) return;
  if (conn.send(sayFrame(`/names ${name}`, name))) asked.add(name);
}

// A crowded room's member list comes in pages.
function askPage(room, after) {
  if (conn.send(sayFrame(`/names ${room} ${after}`, room))) paging.set(room, after);
}

// A message from someone else arrived live (or while we were disconnected); what to announce.
function arrived(ev, item) {
  if (!CHATTY.has(ev.type) || me.is(ev.nick)) return null;
  const hidden = isHidden();
  const mention = item?.classList.contains("mention") ?? false;
  const here = !ev.room || ev.room === rooms.active.name;
  if (hidden) countUnread();
  rooms.unseen(ev.room ?? rooms.active.name, item, mention, hidden);
  if (here && !rooms.view.pinned) rooms.view.setBelow(rooms.view.below + 1);
  if (ev.type === "private" || mention) desktopNotify(ev);
  if (here) return spoken(ev);
  return mention ? `${spoken(ev)} (in ${ev.room})` : null;
}

// The log an event goes to: a room's event to its room, anything else to the room in front.
const ROOMLESS = new Set(["names", "rooms", "users", "bans", "error", "private"]);
const viewFor = (ev) => (ROOMLESS.has(ev.type) ? rooms.view : rooms.viewFor(ev));

// The page words a replay's notice itself ("times in UTC" does not hold here: it shows local times).
function historyNotice(ev) {
  const n = ev.count;
  return { ...ev, text: typeof n === "number" ? `History: ${n} ${n === 1 ? "event" : "events"}` : ev.text };
}

// We are out of a room (we left it, or were kicked or banned from it); returns the log to tell it in.
function leftRoom(name) {
  rooms.exited(name);
  people.forgetRoom(name);
  asked.delete(name);
  paging.delete(name);
  people.show(rooms.active.name);
  return rooms.view; // the room that comes to the front
}

// We entered a room: after its past (arrived just before), our own enter.
function enteredOwn(ev) {
  const room = rooms.room(ev.room);
  const fresh = !room.member;
  if (fresh && room.replayed) room.view.append(separator("New"));
  if (fresh && !room.replayed) room.view.noEarlier();
  room.replayed = 0;
  room.view.show(ev);
  if (room.greeting) room.view.show(room.greeting);
  room.greeting = null;
  room.view.updateOlder();
  rooms.entered(ev.room);
}

// ----- events from the server -----

const conn = new Connection({
  status: setStatus,
  notice: (text) => notice(text),
  rooms: () => rooms.members().filter((name) => name !== LOBBY),
  secrets: secretsFor,
  refused: (ev) => showJoin(ev.text ?? "That nickname was refused; try another.", ask(ev, me.nick)),
  failed: showJoin,
  left: showLeft,

  // The welcome: first the replay that came before it, then the welcome itself.
  welcome(ev, early, { again, resuming }) {
    asked.clear();
    paging.clear();
    joined();
    people.operator = ev.operator === true;
    people.forgetRooms(); // known again from /names, as each room comes to the front
    rooms.welcome(ev.rooms, ev.active ?? LOBBY);
    const news = [];
    const replayed = new Set();
    for (const past of early) {
      if (isGapNotice(past)) {
        for (const name of rooms.members()) rooms.room(name).view.forget();
        conn.resetSince(0);
        rooms.view.append(entry({ ...past, type: "system" }))?.classList.add("gap");
        continue;
      }
      if (isHistoryNotice(past) || past.code === "history_empty") continue; // the page marks it
      if (!conn.advance(past)) continue;
      const view = viewFor(past);
      const item = view.show(past, !again);
      replayed.add(view);
      if (again) {
        const text = arrived(past, item);
        if (text) news.push(text);
      }
    }
    if (!again) for (const view of replayed) view.append(separator("New"));
    rememberNick(ev.nick);
    setStatus("online", `Connected as ${ev.nick}`);
    showChat();
    people.track(ev);
    people.show(rooms.active.name);
    if (resuming) notice(`Reconnected. ${ev.text ?? ""}`);
    else rooms.view.append(entry(ev));
    for (const name of rooms.members()) rooms.room(name).view.updateOlder();
    if (!again) { // a new arrival starts at the newest; a returning reader keeps their place
      rooms.view.pinned = true;
      rooms.view.setBelow(0);
    }
    askNames(rooms.active.name);
    return news;
  },

  // A new event after the welcome; returns what to announce.
  event(ev) {
    if (ev.type === "nick" && me.is(ev.nick)) rememberNick(ev.new);
    answered(ev);
    if (ev.type === "names" && (paging.has(ev.room) || (asked.has(ev.room) && !people.knows(ev.room)))) {
      people.track(ev); // the answer to our own question: nothing to show
      paging.delete(ev.room);
      if (ev.next != null) askPage(ev.room, ev.next);
      return null;
    }
    if (ev.type === "error" && ev.code === "rate_limited") { // perhaps a page: ask again later
      const waiting = [...paging];
      setTimeout(() => { for (const [r, a] of waiting) if (paging.get(r) === a) askPage(r, a); }, 1000);
    }
    people.track(ev);
    let shown = ev;
    let view = null;
    switch (ev.type) {
      case "enter":
        if (me.is(ev.nick)) return void enteredOwn(ev);
        break;
      case "exit":
        if (me.is(ev.nick)) view = leftRoom(ev.room);
        break;
      case "kick": case "ban":
        if (!me.is(ev.target)) break;
        if (ev.room !== LOBBY) view = leftRoom(ev.room);
        break;
      case "topic": rooms.setTopic(ev.room, ev.text); break;
      case "rooms": rooms.learn(ev.rooms); break;
      case "system":
        if (ev.code === "room" || ev.code === "topic") rooms.setTopic(ev.room, ev.topic);
        if (ev.code === "room" && !rooms.has(ev.room)) { // shown after our own enter
          rooms.room(ev.room).greeting = ev;
          return null;
        }
        if (ev.code === "active") { rooms.switchTo(ev.room, true); return null; }
        if (ev.code === "parted") return null; // the exit event said it
        if (isHistoryNotice(ev)) {
          if (ev.room && !rooms.has(ev.room)) return null; // a room's past, as we enter it
          shown = historyNotice(ev);
        }
        break;
      default:
    }
    view ??= viewFor(shown);
    const item = view.show(shown);
    view.followIfPinned();
    if (ROOMLESS.has(ev.type) && ev.type !== "private") return ev.text; // answers
    if (!me.is(ev.target)) return arrived(ev, item);
    // Moderation of us: said aloud, and out of the lobby means out of the chat.
    const told = item?.querySelector(".body").textContent ?? "";
    if (ev.room === LOBBY && (ev.type === "kick" || ev.type === "ban")) conn.remove(`${told}.`);
    return told;
  },

  // Past events: the answer to /history (shown again), or a room's past as we enter it.
  replayed(ev) {
    if (!hasId(ev)) return;
    const room = ev.room ? rooms.room(ev.room) : rooms.active;
    if (room.member) {
      room.view.show(ev, true, false);
    } else if (!room.view.seen.has(ev.id)) {
      room.view.show(ev, true);
      room.replayed += 1;
    }
  },

  received(news) {
    speakAll(news);
    rooms.view.followIfPinned();
  },

  restarted() {
    for (const name of rooms.members()) rooms.room(name).view.forget(true);
    notice("The server restarted without its history: what was said while you were away is not available.");
  },
});

// ----- the message box and the room controls -----

function say(text, room = rooms.active.member ? rooms.active.name : null) {
  if (!conn.joined || !conn.send(sayFrame(text, room))) {
    notice("Not connected: your message was not sent. It is still in the box.", "error");
    return false;
  }
  return true;
}

const composer = new Composer({
  form: ui.sayForm,
  input: ui.message,
  maxChars: Number(ui.sayForm.dataset.maxChars) || 2000,
  sources: { nicks: () => people.nicks(), rooms: () => rooms.names(), isMe: (n) => me.is(n) },
  error: (text) => notice(text, "error"),
  keep: (text) => !isSecret(text),
  submit(text) {
    if (!say(text)) return false;
    typed(text, me.nick);
    if (/^\/quit(\s|$)/i.test(text)) conn.quitting = true;
    rooms.view.follow();
    return true;
  },
});

ui.roomForm.addEventListener("submit", (e) => {
  e.preventDefault();
  const name = roomName(ui.roomInput.value);
  ui.roomInput.setAttribute("aria-invalid", name ? "false" : "true");
  if (!name) {
    ui.roomError.textContent = "A room's name is # and 1 to 32 of a-z, 0-9, _ and -.";
    ui.roomInput.focus();
    return;
  }
  ui.roomError.textContent = "";
  if (rooms.has(name)) rooms.switchTo(name, true);
  else if (!say(`/join ${name}`)) return;
  ui.roomInput.value = "";
  ui.message.focus();
});

ui.leave.addEventListener("click", () => {
  const name = rooms.active.name;
  if (name !== LOBBY && rooms.has(name)) say(`/part ${name}`, name);
});

// ----- wiring -----

ui.joinForm.addEventListener("submit", (e) => {
  e.preventDefault();
  const nick = ui.nick.value.trim();
  if (!nick) {
    showJoin("Enter a nickname first.");
    return;
  }
  ui.nickError.textContent = "";
  ui.joinForm.querySelector("button").disabled = true;
  take(nick);
  conn.join(nick);
});

ui.logWrap.addEventListener("click", (e) => {
  const reply = e.target.closest("button.reply");
  if (!reply) return;
  composer.setInput(`/msg ${reply.dataset.to} `);
  ui.message.focus();
});

ui.jump.addEventListener("click", () => {
  rooms.view.follow();
  ui.message.focus();
});

ui.rejoin.addEventListener("click", () => {
  ui.rejoin.disabled = true;
  conn.join(me.nick);
});

ui.retry.addEventListener("click", () => conn.retryNow());

setupNotifications({ announce: ui.announce, toggle: ui.notify, blocked: (text) => notice(text) });

// On a phone the panels fold away: one open at a time, Escape closes it.
document.addEventListener("keydown", (e) => {
  const open = panels.find((p) => p.open);
  if (e.key !== "Escape" || !narrow.matches || !open) return;
  open.open = false;
  open.querySelector("summary").focus();
});
for (const panel of panels) {
  panel.addEventListener("toggle", () => {
    if (!narrow.matches || !panel.open) return;
    for (const other of panels) if (other !== panel) other.open = false;
  });
}
const unfold = () => { for (const panel of panels) panel.open = !narrow.matches; };
narrow.addEventListener("change", unfold);
unfold();

document.addEventListener("visibilitychange", () => {
  if (isHidden()) {
    rooms.hidden();
    return;
  }
  clearUnread();
  conn.wake();
});

window.addEventListener("online", () => conn.wake());

const remembered = store.get(NICK_KEY);
if (remembered) {
  ui.nick.value = remembered;
  ui.nickHint.textContent = `Last time you were ${remembered}. Press Enter to join as ${remembered} again, or type another name.`;
  ui.nickHint.hidden = false;
  ui.nick.select();
}
