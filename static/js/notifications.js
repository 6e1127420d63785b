// Getting the reader's attention: the live region for screen readers, the unread
// count in the tab's title, and desktop notifications for mentions and private messages.

import { el, store } from "./dom.js";
import { LOBBY } from "./protocol.js";

const NOTIFY_KEY = "webchat.notify";
const TITLE = document.title;

export const isHidden = () => document.visibilityState === "hidden";

const state = {
  unread: 0, // messages that arrived while the tab was hidden
  notifyOn: false, // the reader asked for desktop notifications (and the browser allows them)
  announce: null, // the live region
  toggle: null, // the "Notify me" button
};

export function speak(text) {
  const region = state.announce;
  region.append(el("p", "", text));
  while (region.childElementCount > 3) region.firstElementChild.remove();
}

// Several at once are summed up rather than read out one by one.
export function speakAll(texts) {
  if (texts.length > 3) speak(`${texts.length} new messages`);
  else texts.forEach(speak);
}

export function spoken(ev) {
  if (ev.type === "me") return `${ev.nick} ${ev.text}`;
  if (ev.type === "private") return `Private message from ${ev.nick}: ${ev.text}`;
  return `${ev.nick}: ${ev.text}`;
}

function setUnread(n) {
  state.unread = n;
  document.title = n ? `(${n}) ${TITLE}` : TITLE;
}

export const countUnread = () => setUnread(state.unread + 1);
export const clearUnread = () => setUnread(0);

const drawNotify = () => state.toggle.setAttribute("aria-pressed", String(state.notifyOn));

// `blocked(text)`: tells the reader the browser refused.
async function toggleNotify(blocked) {
  if (state.notifyOn) {
    state.notifyOn = false;
  } else {
    let permission = Notification.permission;
    if (permission === "default") permission = await Notification.requestPermission();
    state.notifyOn = permission === "granted";
    if (!state.notifyOn) blocked("Notifications are blocked for this page; allow them in the browser's site settings.");
  }
  store.set(NOTIFY_KEY, state.notifyOn ? "1" : "0");
  drawNotify();
}

export function desktopNotify(ev) {
  if (!state.notifyOn || !isHidden() || Notification.permission !== "granted") return;
  const where = ev.room && ev.room !== LOBBY ? ` in ${ev.room}` : "";
  const title = ev.type === "private" ? `Private message from ${ev.nick}` : `${ev.nick} mentioned you${where}`;
  try {
    const note = new Notification(title, { body: ev.type === "me" ? `* ${ev.nick} ${ev.text}` : ev.text, tag: `webchat-${ev.id}` });
    note.onclick = () => { window.focus(); note.close(); };
  } catch { /* some phones allow notifications only from a service worker */ }
}

export function setupNotifications({ announce, toggle, blocked }) {
  state.announce = announce;
  state.toggle = toggle;
  toggle.addEventListener("click", () => toggleNotify(blocked));
  if ("Notification" in window) {
    state.notifyOn = store.get(NOTIFY_KEY) === "1" && Notification.permission === "granted";
    drawNotify();
  }
}
