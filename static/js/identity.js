// Who we are: the accepted nick (or the one being tried), and how to spot it in a text.

const escapeRe = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

export const me = {
  nick: "",
  pattern: null, // RegExp matching our nick as a word

  set(nick) {
    this.nick = nick;
    // A nick is a word of letters, marks, digits, "_", "-" and "."; JS's \b knows only ASCII.
    this.pattern = nick
      ? new RegExp(`(?<![\\p{L}\\p{M}\\p{N}_])${escapeRe(nick)}(?![\\p{L}\\p{M}\\p{N}_])`, "giu")
      : null;
  },

  is(nick) { return nick === this.nick; },

  // Does someone else's message or action name us?
  mentionedIn(ev) {
    if (!this.pattern || this.is(ev.nick)) return false;
    if (ev.type !== "message" && ev.type !== "me") return false;
    this.pattern.lastIndex = 0;
    return this.pattern.test(ev.text ?? "");
  },
};
