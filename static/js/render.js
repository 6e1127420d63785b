// The DOM for one entry of a log. Received text goes in through text nodes and
// attributes only (createElement, append, setAttribute), never as HTML.

import { el, nickEl, timeEl, button } from "./dom.js";
import { me } from "./identity.js";
import { CHATTY, LOBBY } from "./protocol.js";

export const VIA = { tcp: "terminal", web: "browser" };

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
  if (!me.pattern) return [text];
  const out = [];
  let at = 0;
  for (const m of text.matchAll(me.pattern)) {
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

const roomEl = (room) => el("span", "room-ref", String(room ?? ""));

// Moderation: " from #dev", or, in the lobby, the whole chat.
const from = (ev) => (ev.room === LOBBY ? [" from the chat"] : [" from ", roomEl(ev.room)]);
const within = (ev) => (ev.room === LOBBY ? [" everywhere"] : [" in ", roomEl(ev.room)]);
const reason = (text) => (text ? ` (${text})` : "");

// How long a ban or mute lasts: "for 10m", "until 14:30", "until lifted".
function lasting(ev) {
  if (ev.duration) return ` for ${ev.duration}`;
  const until = ev.until ? new Date(ev.until) : null;
  return until && !Number.isNaN(until.getTime()) ? ` until ${until.toLocaleString()}` : " until lifted";
}

// Someone acted on someone else: "alice kicked bob from #dev (spam)".
function acted(ev, verb, ...rest) {
  return ["mod", [nickEl(ev.nick), ` ${verb} `, nickEl(ev.target), ...rest]];
}

// The body of one entry and the kind it is drawn as; null: nothing to show.
function body(ev) {
  const { type, nick, text } = ev;
  switch (type) {
    case "message":
      return ["message", [nickEl(nick), " ", richText(text ?? "", !me.is(nick))]];
    case "me":
      return ["me", ["* ", nickEl(nick), " ", richText(text ?? "", !me.is(nick))]];
    case "private": {
      const parts = [el("span", "tag", "private"), " ", nickEl(nick), " → ", nickEl(ev.to), " ",
        richText(text ?? "", false)];
      if (!me.is(nick)) {
        const reply = button("reply link", "Reply", `Reply to ${nick} privately`);
        reply.dataset.to = nick;
        parts.push(" ", reply);
      }
      return ["private", parts];
    }
    case "join":
      return ["join", ["→ ", nickEl(nick), ` joined (${VIA[ev.via] ?? "unknown"})`]];
    case "leave":
      return ["leave", ["← ", nickEl(nick), " left", text ? ` (${text})` : ""]];
    case "enter":
      return ["enter", ["→ ", nickEl(nick), " entered ", roomEl(ev.room)]];
    case "exit":
      return ["exit", ["← ", nickEl(nick), " left ", roomEl(ev.room), text ? ` (${text})` : ""]];
    case "presence": // a crowded room's comings and goings, gathered by the server
      return ["presence", [text ?? ""]];
    case "topic":
      return ["topic", text
        ? [nickEl(nick), " set the topic of ", roomEl(ev.room), ": ", richText(text, false)]
        : [nickEl(nick), " cleared the topic of ", roomEl(ev.room)]];
    case "nick":
      return ["nick", [nickEl(nick), " is now known as ", nickEl(ev.new)]];
    case "away":
      return ["away", [nickEl(nick), " is away", text ? `: ${text}` : ""]];
    case "back":
      return ["back", [nickEl(nick), " is back"]];
    case "kick": return acted(ev, "kicked", ...from(ev), reason(text));
    case "ban": return acted(ev, "banned", ...from(ev), lasting(ev), reason(text));
    case "unban": return acted(ev, "lifted the ban on", ...within(ev));
    case "mute": return acted(ev, "muted", ...within(ev), lasting(ev), reason(text));
    case "unmute": return acted(ev, "unmuted", ...within(ev));
    case "op": return acted(ev, "made", " an operator of ", roomEl(ev.room));
    case "deop": return acted(ev, "took operator status from", " in ", roomEl(ev.room));
    case "welcome":
      return ["system", [`Welcome, ${nick}! ${text ?? ""}`]];
    case "error": case "notice":
      return [type, [text ?? type]];
    default: // system, users, rooms, names, and types this page does not know yet
      return text ? ["system", [text]] : null;
  }
}

// One entry of a log; `history` entries are from before we joined (or shown again).
export function entry(ev, history = false) {
  const drawn = body(ev);
  if (!drawn) return null;
  const [kind, parts] = drawn;
  const item = el("li", `ev ev-${kind}`, timeEl(ev.ts), el("span", "body", ...parts));
  if (typeof ev.text === "string" && kind === "system" && ev.text.startsWith("  ")) {
    item.classList.add("pre");
  }
  if (history) item.classList.add("history");
  if (CHATTY.has(ev.type) && me.is(ev.nick)) item.classList.add("mine");
  if (me.mentionedIn(ev)) item.classList.add("mention");
  return item;
}
