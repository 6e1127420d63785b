// webchat page: wires the modules together. One WebSocket to /ws, JSON events in,
// {"type":"say"} frames out. Received text only reaches the page through text nodes
// and attributes (see render.js): it is never parsed as HTML.

import { $, store } from "./dom.js";
import { me } from "./identity.js";
import { CHATTY, hasId, isGapNotice, isHistoryNotice, sayFrame } from "./protocol.js";
import { entry } from "./render.js";
import { separator } from "./dom.js";
import { LogView } from "./logview.js";
import { People } from "./people.js";
import { Composer } from "./composer.js";
import { Connection } from "./connection.js";
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
  people: $("people"), users: $("users"), count: $("user-count"), announce: $("announce"),
};
const narrow = matchMedia("(max-width: 640px)");

const view = new LogView(null);
view.mount(ui.logWrap, ui.jump, null);
const people = new People({ users: ui.users, count: ui.count });

// ----- what the reader sees -------------------------------------------------------

function setStatus(state, text) {
  ui.status.dataset.state = state;
  ui.status.textContent = text;
  ui.retry.hidden = state !== "disconnected";
}

// A line from the page itself (not from the server).
function notice(text, kind = "notice") {
  view.append(entry({ type: kind, text }));
  if (kind === "error") speak(text);
  view.followIfPinned();
}

function rememberNick(nick) {
  me.set(nick);
  store.set(NICK_KEY, nick);
  if (conn.joined) setStatus("online", `Connected as ${nick}`);
}

function showJoin(error) {
  conn.stop();
  if (conn.ws) setStatus("connecting", "Connected, not joined yet");
  ui.joinView.hidden = false;
  ui.chatView.hidden = true;
  ui.rejoin.disabled = false;
  ui.joinForm.querySelector("button").disabled = false;
  ui.nickError.textContent = error ?? "";
  ui.nick.setAttribute("aria-invalid", error ? "true" : "false");
  ui.nick.focus();
  if (error) ui.nick.select();
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

function showLeft() {
  ui.sayForm.hidden = true;
  ui.leftBar.hidden = false;
  people.clear();
  setStatus("offline", "You left the chat");
  ui.rejoin.focus();
}

// A message from someone else arrived live (or while we were disconnected).
function arrived(ev, item) {
  if (!CHATTY.has(ev.type) || me.is(ev.nick)) return null;
  if (isHidden()) countUnread();
  if (!view.pinned) view.setBelow(view.below + 1);
  if (ev.type === "private" || item?.classList.contains("mention")) desktopNotify(ev);
  return spoken(ev);
}

// ----- events from the server -------------------------------------------------------

const conn = new Connection({
  status: setStatus,
  notice: (text) => notice(text),
  rooms: () => [],
  refused: showJoin,
  failed: showJoin,
  left: showLeft,

  // The welcome: first the replay that came before it, then the welcome itself.
  welcome(ev, early, { again, resuming }) {
    const news = [];
    let shown = 0;
    for (const past of early) {
      if (isGapNotice(past)) {
        view.forget();
        conn.resetSince(0);
        view.append(entry({ ...past, type: "system" }))?.classList.add("gap");
        continue;
      }
      if (isHistoryNotice(past)) continue; // the page marks the replay itself
      if (!conn.advance(past)) continue;
      const item = view.show(past, !again);
      shown += 1;
      if (again) {
        const text = arrived(past, item);
        if (text) news.push(text);
      }
    }
    if (shown && !again) view.append(separator("New"));
    rememberNick(ev.nick);
    setStatus("online", `Connected as ${ev.nick}`);
    showChat();
    people.track(ev);
    if (resuming) notice(`Reconnected. ${ev.text ?? ""}`);
    else view.append(entry(ev));
    view.updateOlder();
    if (!again) { // a new arrival starts at the newest; a returning reader keeps their place
      view.pinned = true;
      view.setBelow(0);
    }
    return news;
  },

  // A new event after the welcome; returns what to announce.
  event(ev) {
    if (ev.type === "nick" && me.is(ev.nick)) rememberNick(ev.new);
    people.track(ev);
    let shown = ev;
    if (isHistoryNotice(ev)) shown = { ...ev, text: ev.text.replace(" (times in UTC)", "") };
    const item = view.show(shown);
    if (ev.type === "error" || ev.type === "users") return ev.text; // answers to what we did
    return arrived(ev, item);
  },

  // The answer to /history: past events shown again on request.
  replayed(ev) {
    if (hasId(ev)) view.show(ev, true, false);
  },

  received(news) {
    speakAll(news);
    view.followIfPinned();
  },

  restarted() {
    view.forget(true);
    notice("The server restarted without its history: what was said while you were away is not available.");
  },
});

// ----- the message box ----------------------------------------------------------------

const composer = new Composer({
  form: ui.sayForm,
  input: ui.message,
  maxChars: Number(ui.sayForm.dataset.maxChars) || 2000,
  sources: { nicks: () => people.nicks(), rooms: () => [], isMe: (n) => me.is(n) },
  error: (text) => notice(text, "error"),
  submit(text) {
    if (!conn.joined || !conn.send(sayFrame(text))) {
      notice("Not connected: your message was not sent. It is still in the box.", "error");
      return false;
    }
    if (/^\/quit(\s|$)/i.test(text)) conn.quitting = true;
    view.follow();
    return true;
  },
});

// ----- wiring -----------------------------------------------------------------------

ui.joinForm.addEventListener("submit", (e) => {
  e.preventDefault();
  const nick = ui.nick.value.trim();
  if (!nick) {
    showJoin("Enter a nickname first.");
    return;
  }
  ui.nickError.textContent = "";
  ui.joinForm.querySelector("button").disabled = true;
  conn.join(nick);
});

ui.logWrap.addEventListener("click", (e) => {
  const reply = e.target.closest("button.reply");
  if (!reply) return;
  composer.setInput(`/msg ${reply.dataset.to} `);
  ui.message.focus();
});

ui.jump.addEventListener("click", () => {
  view.follow();
  ui.message.focus();
});

ui.rejoin.addEventListener("click", () => {
  ui.rejoin.disabled = true;
  conn.join(me.nick);
});

ui.retry.addEventListener("click", () => conn.retryNow());

setupNotifications({ announce: ui.announce, toggle: ui.notify, blocked: (text) => notice(text) });

document.addEventListener("keydown", (e) => {
  if (e.key !== "Escape" || !narrow.matches || !ui.people.open) return;
  ui.people.open = false;
  ui.people.querySelector("summary").focus();
});

narrow.addEventListener("change", () => { ui.people.open = !narrow.matches; });
ui.people.open = !narrow.matches;

document.addEventListener("visibilitychange", () => {
  if (isHidden()) return;
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
