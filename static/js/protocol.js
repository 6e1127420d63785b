// The wire: JSON events in (one object or an array of them), JSON frames out.
// Decisions are taken on "type" and "code", never on the server's prose.

export const LOBBY = "#lobby";

// Events that are someone talking (counted as unread, announced, notified).
export const CHATTY = new Set(["message", "me", "private"]);

// The events of one frame, as a list of objects (junk is dropped).
export function parseFrame(data) {
  let parsed;
  try { parsed = JSON.parse(data); } catch { return []; }
  return (Array.isArray(parsed) ? parsed : [parsed]).filter((ev) => ev && typeof ev === "object");
}

export const hasId = (ev) => typeof ev.id === "number";

// `secrets`: {password, server_password} for this nick, when the server asked for them.
export function joinFrame(nick, since, rooms, secrets = {}) {
  const frame = { type: "join", nick, ...secrets };
  if (since > 0) frame.since = since; // gap-free: everything after what we have shown
  if (rooms?.length) frame.rooms = rooms;
  return frame;
}

export function sayFrame(text, room) {
  return room ? { type: "say", room, text } : { type: "say", text };
}

// Notices by code.
export const isHistoryNotice = (ev) => ev.type === "system" && ev.code === "history";
export const isGapNotice = (ev) => ev.type === "system" && ev.code === "history_gap";

// Room names: "#" and 1 to 32 of a-z 0-9 _ -, compared and shown in lower case.
const ROOM_RE = /^#[a-z0-9_-]{1,32}$/;

// The room named by what someone typed ("dev", "#Dev"), or null when it is no room name.
export function roomName(raw) {
  let name = String(raw ?? "").trim().toLowerCase();
  if (!name.startsWith("#")) name = `#${name}`;
  return ROOM_RE.test(name) ? name : null;
}
