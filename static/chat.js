// webchat page: one WebSocket to /ws, JSON events in, {"type":"say"} frames out.
// Everything received is shown with textContent/append only, never parsed as HTML.

const $ = (id) => document.getElementById(id);
const ui = {
  status: $("status"), retry: $("retry"),
  joinView: $("join-view"), joinForm: $("join-form"), nick: $("nick"), nickError: $("nick-error"),
  chatView: $("chat-view"), log: $("log"), sayForm: $("say-form"), message: $("message"),
  leftBar: $("left-bar"), rejoin: $("rejoin"), users: $("users"), count: $("user-count"),
};
const MAX_CHARS = Number(ui.sayForm.dataset.maxChars) || 2000;
const MAX_LOG = 1000; // entries kept in the page
const NICK_KEY = "webchat.nick";
const VIA = { tcp: "terminal", web: "browser" };

let ws = null; // the current socket
let myNick = ""; // the accepted nick, or the one being tried
let joined = false; // the current socket got its welcome
let resume = false; // we were in the chat: rejoin on our own when the socket drops
let quitting = false; // the user typed /quit
let joining = false; // a join frame is (about to be) on its way and unanswered
let lastId = 0; // the highest event id rendered
let ownJoinPending = false; // the next join event with our nick is our fresh join
let attempt = 0; // reconnect attempts since the last welcome
let takenRetries = 0; // rejoins refused because our old connection still holds the nick
let timer = 0;
const people = new Map(); // nick -> {nick, via, away}

// ----- small helpers --------------------------------------------------------------

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
  const node = el("time", "ts", date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }));
  node.dateTime = date.toISOString();
  node.title = date.toLocaleString();
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

// ----- the log ----------------------------------------------------------------------

// Follow new entries only while the reader is at the bottom of the log.
let pinned = true;
const scrollToEnd = () => { ui.log.scrollTop = ui.log.scrollHeight; };
ui.log.addEventListener("scroll", () => {
  const log = ui.log;
  pinned = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
});
new ResizeObserver(() => pinned && scrollToEnd()).observe(ui.log);

function addEntry(kind, ts, ...parts) {
  const item = el("li", `ev ev-${kind}`, timeEl(ts), el("span", "body", ...parts));
  ui.log.append(item);
  while (ui.log.childElementCount > MAX_LOG) ui.log.firstElementChild.remove();
  return item;
}

function notice(text, kind = "notice") {
  addEntry(kind, null, text);
  if (pinned) scrollToEnd();
}

function render(ev) {
  const { type, ts, nick, text } = ev;
  switch (type) {
    case "message": {
      const item = addEntry("message", ts, nickEl(nick), " ", el("span", "text", text ?? ""));
      if (nick === myNick) item.classList.add("mine");
      break;
    }
    case "me":
      addEntry("me", ts, "* ", nickEl(nick), " ", el("span", "text", text ?? ""));
      break;
    case "private": {
      addEntry("private", ts, el("span", "tag", "private"), " ", nickEl(nick), " → ",
        nickEl(ev.to), " ", el("span", "text", text ?? ""));
      break;
    }
    case "join":
      addEntry("join", ts, "→ ", nickEl(nick), ` joined (${VIA[ev.via] ?? "unknown"})`);
      break;
    case "leave":
      addEntry("leave", ts, "← ", nickEl(nick), text ? ` left (${text})` : " left");
      break;
    case "nick":
      addEntry("nick", ts, nickEl(nick), " is now known as ", nickEl(ev.new));
      break;
    case "away":
      addEntry("away", ts, nickEl(nick), text ? ` is away: ${text}` : " is away");
      break;
    case "back":
      addEntry("back", ts, nickEl(nick), " is back");
      break;
    case "welcome":
      addEntry("system", ts, `Welcome, ${nick}! ${text ?? ""}`);
      break;
    case "error":
      addEntry("error", ts, text ?? "error");
      break;
    default: // system, users, and types this page does not know yet
      if (text) addEntry("system", ts, text).classList.toggle("pre", text.startsWith("  "));
  }
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
    const item = el("li", p.away !== null ? "away" : "", nickEl(p.nick),
      el("span", "via", VIA[p.via] ?? p.via ?? ""),
      p.away !== null ? el("span", "away-note", p.away ? `away: ${p.away}` : "away") : null);
    if (p.nick === myNick) item.classList.add("me");
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
      if (ev.nick === myNick) rememberNick(ev.new);
      break;
    case "away": if (who) who.away = ev.text ?? ""; break;
    case "back": if (who) who.away = null; break;
    default: return;
  }
  drawPeople();
}

// ----- views ------------------------------------------------------------------------

function rememberNick(nick) {
  myNick = nick;
  try { localStorage.setItem(NICK_KEY, nick); } catch { /* private mode */ }
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
  if (resume && lastId > 0) frame.since = lastId;
  send(frame);
}

function join(nick) {
  myNick = nick;
  quitting = false;
  joining = true;
  ui.joinForm.querySelector("button").disabled = true;
  if (ws && ws.readyState === WebSocket.OPEN) sendJoin();
  else connect();
}

function receive(data) {
  let parsed;
  try { parsed = JSON.parse(data); } catch { return; }
  for (const ev of Array.isArray(parsed) ? parsed : [parsed]) {
    if (ev && typeof ev === "object") handle(ev);
  }
  if (pinned) scrollToEnd();
}

function handle(ev) {
  if (!joined) {
    if (ev.type === "welcome") welcomed(ev);
    else if (ev.type === "error") refused(ev);
    return;
  }
  if (typeof ev.id === "number") {
    if (ownJoinPending && ev.type === "join" && ev.nick === myNick) {
      ownJoinPending = false;
      if (ev.id <= lastId) lastId = ev.id - 1; // ids started again: the server restarted
    }
    if (ev.id <= lastId) return; // already shown
    lastId = ev.id;
  }
  trackPeople(ev);
  render(ev);
}

function welcomed(ev) {
  const again = resume;
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
  if (again) notice(`Reconnected. ${ev.text ?? ""}`);
  else render(ev);
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
  ui.message.value = "";
  pinned = true;
  scrollToEnd();
});

ui.rejoin.addEventListener("click", () => {
  ui.rejoin.disabled = true;
  join(myNick);
});

ui.retry.addEventListener("click", () => {
  attempt = 0;
  connect();
});

window.addEventListener("online", () => {
  if (resume && !ws) connect();
});

try { ui.nick.value = localStorage.getItem(NICK_KEY) ?? ""; } catch { /* private mode */ }
