// webchat page: one WebSocket to /ws, JSON events in, {"type":"say"} frames out.
// Received text only reaches the page through textContent, append and setAttribute:
// it is never parsed as HTML.

const $ = (id) => document.getElementById(id);
const ui = {
  status: $("status"), retry: $("retry"), notify: $("notify"),
  joinView: $("join-view"), joinForm: $("join-form"), nick: $("nick"),
  nickError: $("nick-error"), nickHint: $("nick-hint"),
  chatView: $("chat-view"), log: $("log"), older: $("older"), jump: $("jump"),
  sayForm: $("say-form"), message: $("message"), leftBar: $("left-bar"), rejoin: $("rejoin"),
  people: $("people"), users: $("users"), count: $("user-count"), announce: $("announce"),
};
const MAX_CHARS = Number(ui.sayForm.dataset.maxChars) || 2000;
const MAX_LOG = 1000; // entries kept while following the conversation
const PAGE = 50; // older events fetched per scroll to the top
const NICK_KEY = "webchat.nick";
const NOTIFY_KEY = "webchat.notify";
const TITLE = document.title;
const VIA = { tcp: "terminal", web: "browser" };
const COMMANDS = ["away", "back", "help", "history", "me", "msg", "names", "nick", "query",
  "quit", "r", "reply", "tell", "who"];
const CHATTY = new Set(["message", "me", "private"]);
const narrow = matchMedia("(max-width: 640px)");

let ws = null; // the current socket
let myNick = ""; // the accepted nick, or the one being tried
let joined = false; // the current socket got its welcome
let resume = false; // we were in the chat: rejoin on our own when the socket drops
let quitting = false; // the user typed /quit
let joining = false; // a join frame is (about to be) on its way and unanswered
let lastId = 0; // the highest event id shown (sent as "since" when we join again)
const seen = new Set(); // ids of the events shown, so none is shown twice
let early = []; // what came before the welcome: the history replay
let ownJoinPending = false; // the next join event with our nick is our fresh join
let attempt = 0; // reconnect attempts since the last welcome
let takenRetries = 0; // rejoins refused because our old connection still holds the nick
let timer = 0;
let unread = 0; // messages that arrived while the tab was hidden
let below = 0; // messages that arrived while the reader was scrolled up
let mention = null; // RegExp matching our nick as a word
const people = new Map(); // nick -> {nick, via, away}
const older = { busy: false, done: false, state: "" };

// ----- small helpers --------------------------------------------------------------

const store = {
  get(key) { try { return localStorage.getItem(key); } catch { return null; } },
  set(key, value) { try { localStorage.setItem(key, value); } catch { /* private mode */ } },
};

function el(tag, className, ...children) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  node.append(...children.filter((c) => c !== null && c !== undefined && c !== ""));
  return node;
}

function hue(nick) {
  let h = 0;
  for (const ch of nick.toLowerCase()) h = (h * 31 + ch.codePointAt(0)) % 360;
  return h;
}

function nickEl(nick) {
  const span = el("span", "nick", String(nick ?? ""));
  span.style.setProperty("--hue", hue(String(nick ?? "")));
  return span;
}

function timeEl(ts) {
  const date = ts ? new Date(ts) : new Date();
  if (Number.isNaN(date.getTime())) return el("time", "ts", "");
  const hm = date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  const today = date.toDateString() === new Date().toDateString();
  const day = today ? "" : `${date.toLocaleDateString([], { month: "short", day: "numeric" })} `;
  const node = el("time", "ts", day + hm);
  node.dateTime = date.toISOString();
  node.title = date.toLocaleString([], { dateStyle: "full", timeStyle: "medium" });
  return node;
}

function setStatus(state, text) {
  ui.status.dataset.state = state;
  ui.status.textContent = text;
  ui.retry.hidden = state !== "disconnected";
}

function send(frame) {
  if (!ws || ws.readyState !== WebSocket.OPEN) return false;
  ws.send(JSON.stringify(frame));
  return true;
}

const isHidden = () => document.visibilityState === "hidden";
const mine = (nick) => nick === myNick;
const escapeRe = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

function setNick(nick) {
  myNick = nick;
  // A nick is a word of letters, marks, digits, "_", "-" and "."; JS's \b knows only ASCII.
  mention = nick
    ? new RegExp(`(?<![\\p{L}\\p{M}\\p{N}_])${escapeRe(nick)}(?![\\p{L}\\p{M}\\p{N}_])`, "giu")
    : null;
}

// ----- text: links and mentions -------------------------------------------------------

const URL_RE = /\bhttps?:\/\/[^\s<>"'`]+/gi;

// A checked http(s) URL, or null. Trailing punctuation belongs to the sentence.
function linkTarget(raw) {
  let text = raw;
  const count = (ch) => text.split(ch).length - 1;
  while (/[.,;:!?)\]}*]$/.test(text)) {
    if (text.endsWith(")") && count("(") >= count(")")) break; // wiki/Foo_(bar)
    text = text.slice(0, -1);
  }
  try {
    const url = new URL(text);
    if (url.protocol === "http:" || url.protocol === "https:") return { text, href: url.href };
  } catch { /* not a URL */ }
  return null;
}

function marked(text) {
  if (!mention) return [text];
  const out = [];
  let at = 0;
  for (const m of text.matchAll(mention)) {
    out.push(text.slice(at, m.index), el("mark", "", m[0]));
    at = m.index + m[0].length;
  }
  out.push(text.slice(at));
  return out;
}

// The text as nodes: plain strings, <a> for http(s) links, <mark> for our nick.
function richText(text, marks) {
  const parts = [];
  let at = 0;
  const plain = (s) => parts.push(...(marks ? marked(s) : [s]));
  for (const m of text.matchAll(URL_RE)) {
    const link = linkTarget(m[0]);
    if (!link) continue;
    plain(text.slice(at, m.index));
    const a = el("a", "", link.text);
    a.setAttribute("href", link.href);
    a.setAttribute("target", "_blank");
    a.setAttribute("rel", "noopener noreferrer");
    parts.push(a);
    at = m.index + link.text.length;
  }
  plain(text.slice(at));
  return el("span", "text", ...parts);
}

function mentions(ev) {
  if (!mention || mine(ev.nick)) return false;
  mention.lastIndex = 0;
  return mention.test(ev.text ?? "");
}

// ----- the log ----------------------------------------------------------------------

// Follow new entries only while the reader is at the bottom of the log.
let pinned = true;
let lastTop = 0;
const scrollToEnd = () => { ui.log.scrollTop = ui.log.scrollHeight; };

ui.log.addEventListener("scroll", () => {
  const log = ui.log;
  pinned = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  if (pinned) setBelow(0);
  if (log.scrollTop < 80 && log.scrollTop < lastTop) loadOlder();
  lastTop = log.scrollTop;
});
// A log too short to scroll still asks for more with the wheel.
ui.log.addEventListener("wheel", (e) => { if (e.deltaY < 0 && ui.log.scrollTop === 0) loadOlder(); },
  { passive: true });
new ResizeObserver(() => pinned && scrollToEnd()).observe(ui.log);

function setBelow(n) {
  below = n;
  ui.jump.hidden = n === 0;
  ui.jump.textContent = n === 1 ? "1 new message ↓" : `${n} new messages ↓`;
}

// One entry of the log; `history` entries are from before we joined.
function entry(ev, history) {
  const { type, ts, nick, text } = ev;
  let kind = type;
  let body;
  switch (type) {
    case "message":
      body = [nickEl(nick), " ", richText(text ?? "", !mine(nick))];
      break;
    case "me":
      body = ["* ", nickEl(nick), " ", richText(text ?? "", !mine(nick))];
      break;
    case "private": {
      body = [el("span", "tag", "private"), " ", nickEl(nick), " → ", nickEl(ev.to), " ",
        richText(text ?? "", false)];
      if (!mine(nick)) {
        const reply = el("button", "reply link", "Reply");
        reply.type = "button";
        reply.dataset.to = nick;
        reply.setAttribute("aria-label", `Reply to ${nick} privately`);
        body.push(" ", reply);
      }
      break;
    }
    case "join":
      body = ["→ ", nickEl(nick), ` joined (${VIA[ev.via] ?? "unknown"})`];
      break;
    case "leave":
      body = ["← ", nickEl(nick), " left", text ? ` (${text})` : ""];
      break;
    case "nick":
      body = [nickEl(nick), " is now known as ", nickEl(ev.new)];
      break;
    case "away":
      body = [nickEl(nick), " is away", text ? `: ${text}` : ""];
      break;
    case "back":
      body = [nickEl(nick), " is back"];
      break;
    case "welcome":
      kind = "system";
      body = [`Welcome, ${nick}! ${text ?? ""}`];
      break;
    case "error": case "notice":
      body = [text ?? type];
      break;
    default: // system, users, and types this page does not know yet
      if (!text) return null;
      kind = "system";
      body = [text];
  }
  const item = el("li", `ev ev-${kind}`, timeEl(ts), el("span", "body", ...body));
  if (typeof text === "string" && kind === "system" && text.startsWith("  ")) item.classList.add("pre");
  if (history) item.classList.add("history");
  if (CHATTY.has(type) && mine(nick)) item.classList.add("mine");
  if ((type === "message" || type === "me") && mentions(ev)) item.classList.add("mention");
  return item;
}

function append(item) {
  if (!item) return null;
  ui.log.append(item);
  const extra = ui.log.childElementCount - 1 - MAX_LOG;
  if (pinned && extra > 0) { // drop the oldest; scrolling back fetches them again
    for (let i = 0; i < extra; i++) {
      const gone = ui.older.nextElementSibling;
      seen.delete(Number(gone.dataset.id));
      gone.remove();
    }
    older.done = false;
    updateOlder();
  }
  return item;
}

function notice(text, kind = "notice") {
  append(entry({ type: kind, text }));
  if (kind === "error") speak(text);
  if (pinned) scrollToEnd();
}

function separator(text) {
  const item = el("li", "sep", el("span", "", text));
  item.setAttribute("role", "separator");
  return item;
}

// The oldest id in the log: scroll-back asks for what came before it.
function oldestId() {
  const first = ui.log.querySelector("li[data-id]");
  return first ? Number(first.dataset.id) : 0;
}

function drawOlder(state) {
  const node = ui.older;
  if (older.state === state && state !== "busy") return;
  older.state = state;
  node.hidden = false;
  node.className = `ev older ${state}`;
  if (state === "more") {
    const button = el("button", "link", "Show earlier messages");
    button.type = "button";
    button.addEventListener("click", () => loadOlder());
    node.replaceChildren(button);
  } else {
    node.replaceChildren(({
      busy: "Loading earlier messages…",
      start: "Beginning of history",
      off: "Earlier messages are not available",
      failed: "Could not load earlier messages",
    })[state]);
  }
}

function updateOlder() {
  const first = oldestId();
  if (older.done || first <= 1) {
    older.done = true;
    drawOlder("start");
  } else drawOlder("more");
}

async function loadOlder() {
  const before = oldestId();
  if (older.busy || older.done) return;
  if (before <= 1) return updateOlder();
  older.busy = true;
  const refocus = ui.older.contains(document.activeElement); // a keyboard user pressed the button
  drawOlder("busy");
  try {
    const res = await fetch(`/api/history?before=${before}&limit=${PAGE}`);
    const data = await res.json().catch(() => ({}));
    if (res.status === 503) {
      older.done = true;
      drawOlder("off");
      return;
    }
    if (!res.ok || !Array.isArray(data.events)) throw new Error(data.error ?? res.statusText);
    const items = [];
    for (const ev of data.events) {
      if (!ev || typeof ev.id !== "number" || seen.has(ev.id) || ev.id >= before) continue;
      seen.add(ev.id);
      const item = entry(ev, true);
      if (item) { item.dataset.id = ev.id; items.push(item); }
    }
    // Keep what the reader is looking at in place while the log grows above it.
    const log = ui.log;
    const height = log.scrollHeight;
    ui.older.after(...items);
    log.scrollTop += log.scrollHeight - height;
    lastTop = log.scrollTop;
    older.done = !data.more;
    updateOlder();
  } catch {
    drawOlder("failed");
    setTimeout(() => ui.older.classList.contains("failed") && drawOlder("more"), 3000);
  } finally {
    older.busy = false;
    if (refocus) (ui.older.querySelector("button") ?? ui.log).focus({ preventScroll: true });
  }
}

// ----- announcing, unread count, notifications ----------------------------------------

function speak(text) {
  ui.announce.append(el("p", "", text));
  while (ui.announce.childElementCount > 3) ui.announce.firstElementChild.remove();
}

function spoken(ev) {
  if (ev.type === "me") return `${ev.nick} ${ev.text}`;
  if (ev.type === "private") return `Private message from ${ev.nick}: ${ev.text}`;
  return `${ev.nick}: ${ev.text}`;
}

function setUnread(n) {
  unread = n;
  document.title = n ? `(${n}) ${TITLE}` : TITLE;
}

let notifyOn = false;

const drawNotify = () => ui.notify.setAttribute("aria-pressed", String(notifyOn));

async function toggleNotify() {
  if (notifyOn) {
    notifyOn = false;
  } else {
    let permission = Notification.permission;
    if (permission === "default") permission = await Notification.requestPermission();
    notifyOn = permission === "granted";
    if (!notifyOn) notice("Notifications are blocked for this page; allow them in the browser's site settings.");
  }
  store.set(NOTIFY_KEY, notifyOn ? "1" : "0");
  drawNotify();
}

function desktopNotify(ev) {
  if (!notifyOn || !isHidden() || Notification.permission !== "granted") return;
  const title = ev.type === "private" ? `Private message from ${ev.nick}` : `${ev.nick} mentioned you`;
  try {
    const note = new Notification(title, { body: ev.type === "me" ? `* ${ev.nick} ${ev.text}` : ev.text, tag: `webchat-${ev.id}` });
    note.onclick = () => { window.focus(); note.close(); };
  } catch { /* some phones allow notifications only from a service worker */ }
}

// A message from someone else arrived live (or while we were disconnected).
function arrived(ev, item) {
  if (!CHATTY.has(ev.type) || mine(ev.nick)) return null;
  if (isHidden()) setUnread(unread + 1);
  if (!pinned) setBelow(below + 1);
  if (ev.type === "private" || item?.classList.contains("mention")) desktopNotify(ev);
  return spoken(ev);
}

// ----- who is online ----------------------------------------------------------------

function setPeople(list) {
  people.clear();
  for (const u of list ?? []) people.set(u.nick, { nick: u.nick, via: u.via, away: u.away ?? null });
  drawPeople();
}

function drawPeople() {
  const sorted = [...people.values()].sort((a, b) =>
    a.nick.localeCompare(b.nick, undefined, { sensitivity: "base" }));
  ui.users.replaceChildren(...sorted.map((p) => {
    const away = p.away !== null;
    const item = el("li", away ? "away" : "", nickEl(p.nick),
      el("span", `via via-${p.via}`, VIA[p.via] ?? p.via ?? ""),
      away ? el("span", "away-note", p.away ? `away: ${p.away}` : "away") : null);
    if (mine(p.nick)) item.classList.add("me");
    return item;
  }));
  ui.count.textContent = String(people.size);
}

function trackPeople(ev) {
  const who = people.get(ev.nick);
  switch (ev.type) {
    case "welcome": case "users": setPeople(ev.users); return;
    case "join": people.set(ev.nick, { nick: ev.nick, via: ev.via, away: null }); break;
    case "leave": people.delete(ev.nick); break;
    case "nick":
      people.delete(ev.nick);
      people.set(ev.new, { ...(who ?? { via: "" }), nick: ev.new });
      if (mine(ev.nick)) rememberNick(ev.new);
      break;
    case "away": if (who) who.away = ev.text ?? ""; break;
    case "back": if (who) who.away = null; break;
    default: return;
  }
  drawPeople();
}

// ----- views ------------------------------------------------------------------------

function rememberNick(nick) {
  setNick(nick);
  store.set(NICK_KEY, nick);
  if (joined) setStatus("online", `Connected as ${nick}`);
}

function showJoin(error) {
  resume = false;
  joining = false;
  if (ws) setStatus("connecting", "Connected, not joined yet");
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
  resume = false;
  ui.sayForm.hidden = true;
  ui.leftBar.hidden = false;
  people.clear();
  drawPeople();
  setStatus("offline", "You left the chat");
  ui.rejoin.focus();
}

// ----- the connection ---------------------------------------------------------------

function connect() {
  clearTimeout(timer);
  if (ws) return;
  setStatus("connecting", "Connecting…");
  const url = `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/ws`;
  const sock = new WebSocket(url);
  ws = sock;
  early = [];
  sock.onopen = () => {
    if (ws !== sock) return;
    setStatus("connecting", "Joining…");
    sendJoin();
  };
  sock.onmessage = (e) => ws === sock && receive(e.data);
  sock.onclose = (e) => ws === sock && closed(e);
}

function sendJoin() {
  const frame = { type: "join", nick: myNick };
  if (lastId > 0) frame.since = lastId; // gap-free: everything after what we have shown
  early = [];
  send(frame);
}

function join(nick) {
  setNick(nick);
  quitting = false;
  joining = true;
  ui.joinForm.querySelector("button").disabled = true;
  if (ws && ws.readyState === WebSocket.OPEN) sendJoin();
  else connect();
}

function receive(data) {
  let parsed;
  try { parsed = JSON.parse(data); } catch { return; }
  const news = [];
  for (const ev of Array.isArray(parsed) ? parsed : [parsed]) {
    if (!ev || typeof ev !== "object") continue;
    if (joined) {
      const text = live(ev);
      if (text) news.push(text);
    } else if (ev.type === "welcome") {
      news.push(...welcomed(ev));
    } else if (ev.type === "error") {
      refused(ev);
    } else {
      early.push(ev); // the history replay comes before the welcome
    }
  }
  if (news.length > 3) speak(`${news.length} new messages`);
  else news.forEach(speak);
  if (pinned) scrollToEnd();
}

// Is this sequenced event new to us? Marks it seen.
function fresh(ev) {
  if (typeof ev.id !== "number") return true;
  if (ev.id <= lastId || seen.has(ev.id)) return false;
  lastId = ev.id;
  seen.add(ev.id);
  return true;
}

// Show an event; `keep`: it is part of the log's one sequence (not a copy shown on request).
function show(ev, history, keep = true) {
  const item = entry(ev, history);
  if (item && keep && typeof ev.id === "number") item.dataset.id = ev.id;
  return append(item);
}

// An event after the welcome.
function live(ev) {
  if (ev.history) { // the answer to /history: shown again on request, not new
    if (typeof ev.id === "number") show(ev, true, false);
    return null;
  }
  if (typeof ev.id === "number" && ownJoinPending && ev.type === "join" && mine(ev.nick)) {
    ownJoinPending = false;
    if (ev.id <= lastId) { // ids started again: the server restarted without its log
      seen.clear();
      lastId = ev.id - 1;
      older.done = true;
      notice("The server restarted without its history: what was said while you were away is not available.");
    }
  }
  if (!fresh(ev)) return null;
  trackPeople(ev);
  if (ev.type === "system" && /^History: \d+ events?/.test(ev.text ?? "")) {
    ev = { ...ev, text: ev.text.replace(" (times in UTC)", "") };
  }
  const item = show(ev, false);
  if (ev.type === "error" || ev.type === "users") return ev.text; // answers to what we did
  return arrived(ev, item);
}

// The welcome: first the replay that came before it, then the welcome itself.
function welcomed(ev) {
  const again = lastId > 0; // we had been here: the replay is what we missed
  const wasResuming = resume;
  setNick(ev.nick); // as the server spells it
  const news = [];
  let shown = 0;
  for (const past of early) {
    if (past.type === "system" && past.code === "history_gap") {
      seen.clear(); // the log cannot fill the gap (or was lost): take what it has
      lastId = 0;
      append(entry({ ...past, type: "system" }, false))?.classList.add("gap");
      continue;
    }
    if (past.type === "system" && /^History: \d+ /.test(past.text ?? "")) continue; // we mark it
    if (!fresh(past)) continue;
    const item = show(past, !again);
    shown += 1;
    if (again) {
      const text = arrived(past, item);
      if (text) news.push(text);
    }
  }
  early = [];
  if (shown && !again) append(separator("New"));
  joined = true;
  joining = false;
  quitting = false;
  resume = true;
  attempt = 0;
  takenRetries = 0;
  ownJoinPending = true;
  rememberNick(ev.nick);
  setStatus("online", `Connected as ${ev.nick}`);
  showChat();
  trackPeople(ev);
  if (wasResuming) notice(`Reconnected. ${ev.text ?? ""}`);
  else append(entry(ev, false));
  updateOlder();
  if (!again) { // a new arrival starts at the newest; a returning reader keeps their place
    pinned = true;
    setBelow(0);
  }
  return news;
}

function refused(ev) {
  if (resume && ev.code === "nick_taken" && ++takenRetries <= 10) {
    // Most likely our old connection, not yet noticed as gone by the server: retry soon.
    notice(`${myNick} is still taken, probably by your old connection; trying again…`);
    ws.close();
    return;
  }
  showJoin(ev.text ?? "That nickname was refused; try another.");
}

function closed(e) {
  const wasJoined = joined;
  ws = null;
  joined = false;
  early = [];
  const reason = e.reason ? ` (${e.reason})` : "";
  if (quitting && e.code === 1000) {
    quitting = false;
    showLeft();
  } else if (resume) {
    if (wasJoined) notice(`Disconnected${reason}.`);
    reconnectLater();
  } else {
    setStatus("offline", `Not connected${reason}`);
    if (joining) showJoin(e.reason || "Could not reach the chat server. Try again.");
  }
}

// Exponential backoff with jitter, capped: a restarted server is not stormed by every page.
function reconnectLater() {
  const cap = Math.min(15000, 500 * 2 ** attempt);
  attempt += 1;
  const deadline = Date.now() + cap / 2 + (Math.random() * cap) / 2;
  const tick = () => {
    const left = deadline - Date.now();
    if (left <= 0) return connect();
    setStatus("disconnected", `Disconnected — reconnecting in ${Math.ceil(left / 1000)}s…`);
    timer = setTimeout(tick, left % 1000 || 1000); // wake when the shown second changes
  };
  clearTimeout(timer);
  tick();
}

// ----- the message box: history, completion ------------------------------------------

const sent = []; // what was typed, for Up and Down
let recall = 0; // position in `sent`; sent.length means "the draft"
let draft = "";
let completing = null; // {before, word, after, options, i}: a Tab completion in progress

function setInput(value, caret = value.length) {
  ui.message.value = value;
  ui.message.setSelectionRange(caret, caret);
}

function browse(step) {
  const next = recall + step;
  if (next < 0 || next > sent.length) return false;
  if (recall === sent.length) draft = ui.message.value;
  recall = next;
  setInput(recall === sent.length ? draft : sent[recall]);
  return true;
}

function candidates(word, atStart) {
  const low = word.toLowerCase();
  if (atStart && word.startsWith("/")) {
    return COMMANDS.filter((c) => `/${c}`.startsWith(low)).map((c) => `/${c} `);
  }
  const prefix = low.replace(/^@/, "");
  const at = word.startsWith("@") ? "@" : "";
  return [...people.keys()]
    .filter((n) => !mine(n) && n.toLowerCase().startsWith(prefix))
    .sort((a, b) => a.localeCompare(b, undefined, { sensitivity: "base" }))
    .map((n) => at + n + (atStart ? ": " : " "));
}

// Tab: complete the word under the cursor; again: the next choice. False: let Tab move on.
function complete(back) {
  const input = ui.message;
  if (!completing) {
    const value = input.value;
    const caret = input.selectionStart ?? value.length;
    const start = value.slice(0, caret).search(/\S*$/);
    const end = caret + value.slice(caret).match(/^\S*/)[0].length;
    const word = value.slice(start, end);
    if (!word) return false;
    const options = candidates(word, start === 0);
    if (!options.length) return false;
    completing = { before: value.slice(0, start), after: value.slice(end), word, options, i: -1 };
  } else if (completing.options.length === 1) {
    completing = null;
    return false;
  }
  const c = completing;
  c.i = (c.i + (back ? -1 : 1) + c.options.length) % c.options.length;
  let choice = c.options[c.i];
  if (/^\s/.test(c.after)) choice = choice.trimEnd();
  setInput(c.before + choice + c.after, c.before.length + choice.length);
  return true;
}

ui.message.addEventListener("keydown", (e) => {
  if (e.key === "Tab" && !e.altKey && !e.ctrlKey && !e.metaKey) {
    if ((e.shiftKey && !completing) || !complete(e.shiftKey)) return;
    e.preventDefault();
    return;
  }
  if (["Shift", "Control", "Alt", "Meta"].includes(e.key)) return;
  const c = completing;
  completing = null;
  if (e.key === "Escape") {
    if (c) setInput(c.before + c.word + c.after, c.before.length + c.word.length);
    else if (recall < sent.length) { recall = sent.length; setInput(draft); } else return;
    e.preventDefault();
    e.stopPropagation();
  } else if (e.key === "ArrowUp" && !e.isComposing) {
    if (browse(-1)) e.preventDefault();
  } else if (e.key === "ArrowDown" && !e.isComposing) {
    if (browse(1)) e.preventDefault();
  }
});

ui.message.addEventListener("input", () => { completing = null; });
ui.message.addEventListener("blur", () => { completing = null; });

// ----- wiring -----------------------------------------------------------------------

ui.joinForm.addEventListener("submit", (e) => {
  e.preventDefault();
  const nick = ui.nick.value.trim();
  if (!nick) {
    showJoin("Enter a nickname first.");
    return;
  }
  ui.nickError.textContent = "";
  join(nick);
});

ui.sayForm.addEventListener("submit", (e) => {
  e.preventDefault();
  const text = ui.message.value;
  if (!text.trim()) return;
  if (!text.startsWith("/") && [...text].length > MAX_CHARS) {
    notice(`Your message is ${[...text].length} characters; the limit is ${MAX_CHARS}. It was not sent.`, "error");
    return;
  }
  if (!joined || !send({ type: "say", text })) {
    notice("Not connected: your message was not sent. It is still in the box.", "error");
    return;
  }
  if (/^\/quit(\s|$)/i.test(text)) quitting = true;
  if (sent.at(-1) !== text) sent.push(text);
  if (sent.length > 100) sent.shift();
  recall = sent.length;
  draft = "";
  ui.message.value = "";
  pinned = true;
  setBelow(0);
  scrollToEnd();
});

ui.log.addEventListener("click", (e) => {
  const button = e.target.closest("button.reply");
  if (!button) return;
  setInput(`/msg ${button.dataset.to} `);
  ui.message.focus();
});

ui.jump.addEventListener("click", () => {
  pinned = true;
  setBelow(0);
  scrollToEnd();
  ui.message.focus();
});

ui.rejoin.addEventListener("click", () => {
  ui.rejoin.disabled = true;
  join(myNick);
});

ui.retry.addEventListener("click", () => {
  attempt = 0;
  connect();
});

ui.notify.addEventListener("click", toggleNotify);

document.addEventListener("keydown", (e) => {
  if (e.key !== "Escape" || !narrow.matches || !ui.people.open) return;
  ui.people.open = false;
  ui.people.querySelector("summary").focus();
});

narrow.addEventListener("change", () => { ui.people.open = !narrow.matches; });
ui.people.open = !narrow.matches;

document.addEventListener("visibilitychange", () => {
  if (isHidden()) return;
  setUnread(0);
  if (resume && !ws) connect();
});

window.addEventListener("online", () => {
  if (resume && !ws) connect();
});

if ("Notification" in window) {
  notifyOn = store.get(NOTIFY_KEY) === "1" && Notification.permission === "granted";
  drawNotify();
}

const remembered = store.get(NICK_KEY);
if (remembered) {
  ui.nick.value = remembered;
  ui.nickHint.textContent = `Last time you were ${remembered}. Press Enter to join as ${remembered} again, or type another name.`;
  ui.nickHint.hidden = false;
  ui.nick.select();
}
