// Passwords: the join form's two password fields (shown only when the server asks),
// and the passwords this tab holds so that a reconnect can give them again. They are
// kept in this module's memory only: never in localStorage or sessionStorage, and
// lines that carry one are kept out of the message box's ↑ history.

import { $ } from "./dom.js";

const held = { nick: "", password: "", server: "" }; // `password` is for `nick` only
let before = null; // what a /register or /password replaced, until the server answers it
let askedFor = ""; // the nick the password field is for

const same = (a, b) => a.toLowerCase() === b.toLowerCase();

const fields = {
  nick: { box: $("password-field"), input: $("password"), error: $("password-error") },
  server: { box: $("server-password-field"), input: $("server-password"), error: $("server-password-error") },
};

// What the server's refusal asks for: [field, what to tell the reader].
const ASKS = {
  password_required: ["nick", (nick) => `${nick} is a registered nickname: enter its password, or choose another nickname.`],
  wrong_password: ["nick", () => "That password is wrong. Try again, or choose another nickname."],
  server_password_required: ["server", () => "This chat needs a server password."],
  wrong_server_password: ["server", () => "That server password is wrong. Try again."],
};

// Lines whose words are passwords.
export const isSecret = (text) => /^\/(register|password|unregister)(\s|$)/i.test(text);

// The password fields of a join frame as `nick`.
export function secretsFor(nick) {
  const out = {};
  if (held.password && same(held.nick, nick)) out.password = held.password;
  if (held.server) out.server_password = held.server;
  return out;
}

// A join was refused. If for a password, show its field and return it (to focus); else null.
export function ask(ev, nick) {
  const found = ASKS[ev.code];
  if (!found) return null;
  const [which, text] = found;
  const { box, input, error } = fields[which];
  if (which === "nick") askedFor = nick;
  box.hidden = false;
  error.textContent = text(nick);
  input.setAttribute("aria-invalid", String(ev.code.startsWith("wrong")));
  return input;
}

// The join form was sent: hold what its shown fields say.
export function take(nick) {
  const { nick: pw, server } = fields;
  if (!server.box.hidden && server.input.value) held.server = server.input.value;
  if (!pw.box.hidden && pw.input.value) Object.assign(held, { nick, password: pw.input.value });
  for (const f of [pw, server]) f.error.textContent = "";
}

// We are in: the fields go (what they said is held).
export function joined() {
  for (const f of Object.values(fields)) {
    f.box.hidden = true;
    f.input.value = "";
    f.error.textContent = "";
    f.input.setAttribute("aria-invalid", "false");
  }
  askedFor = "";
}

// The reader typed a command that sets the password of `nick`: hold the new one.
export function typed(text, nick) {
  const m = /^\/(register|password|unregister)\s+(\S+)(?:\s+(\S+))?/i.exec(text);
  if (!m) return;
  before = { ...held };
  const command = m[1].toLowerCase();
  if (command === "unregister") held.password = "";
  else Object.assign(held, { nick, password: command === "register" ? m[2] : m[3] ?? held.password });
}

const REFUSED = new Set([
  "password_too_short", "password_too_long", "already_registered", "not_registered", "wrong_password",
]);

// The server's answer after such a command: a refusal puts back what we held before.
export function answered(ev) {
  if (!before || (ev.type !== "error" && ev.type !== "system")) return;
  if (ev.type === "error" && REFUSED.has(ev.code)) Object.assign(held, before);
  before = null;
}

// Typing another nick hides the password field asked for the one before.
$("nick").addEventListener("input", (e) => {
  fields.nick.box.hidden = !askedFor || !same(e.target.value.trim(), askedFor);
});
