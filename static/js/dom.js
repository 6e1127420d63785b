// Small DOM helpers. Text from the server only ever becomes a text node or an
// attribute value here: nothing is parsed as HTML.

export const $ = (id) => document.getElementById(id);

export const store = {
  get(key) { try { return localStorage.getItem(key); } catch { return null; } },
  set(key, value) { try { localStorage.setItem(key, value); } catch { /* private mode */ } },
};

export function el(tag, className, ...children) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  node.append(...children.filter((c) => c !== null && c !== undefined && c !== ""));
  return node;
}

export function button(className, text, label) {
  const node = el("button", className, text);
  node.type = "button";
  if (label) node.setAttribute("aria-label", label);
  return node;
}

function hue(nick) {
  let h = 0;
  for (const ch of nick.toLowerCase()) h = (h * 31 + ch.codePointAt(0)) % 360;
  return h;
}

export function nickEl(nick) {
  const span = el("span", "nick", String(nick ?? ""));
  span.style.setProperty("--hue", hue(String(nick ?? "")));
  return span;
}

export function timeEl(ts) {
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

// A quiet line across the log ("New").
export function separator(text, className = "") {
  const item = el("li", `sep ${className}`.trim(), el("span", "", text));
  item.setAttribute("role", "separator");
  return item;
}
