// The message box: sending, ↑/↓ through what was sent, Tab completion of nicks,
// rooms and commands.

export const COMMANDS = ["away", "back", "ban", "bans", "deop", "help", "history", "ignore", "join",
  "kick", "me", "msg", "mute", "names", "nick", "op", "part", "password", "query", "quit", "r",
  "register", "reply", "rooms", "tell", "topic", "unban", "unignore", "unmute", "unregister", "who"];

const byName = (a, b) => a.localeCompare(b, undefined, { sensitivity: "base" });

export class Composer {
  // sources: {nicks(): [nick], rooms(): [room], isMe(nick)}
  // submit(text): true when it was sent (then it goes into the input history, if keep(text))
  constructor({ form, input, maxChars, sources, submit, error, keep = () => true }) {
    this.form = form;
    this.input = input;
    this.maxChars = maxChars;
    this.sources = sources;
    this.submit = submit;
    this.error = error;
    this.keep = keep;
    this.sent = []; // what was typed, for Up and Down
    this.recall = 0; // position in `sent`; sent.length means "the draft"
    this.draft = "";
    this.completing = null; // {before, word, after, options, i}: a Tab completion in progress
    input.addEventListener("keydown", (e) => this.key(e));
    input.addEventListener("input", () => { this.completing = null; });
    input.addEventListener("blur", () => { this.completing = null; });
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.send();
    });
  }

  setInput(value, caret = value.length) {
    this.input.value = value;
    this.input.setSelectionRange(caret, caret);
  }

  send() {
    const text = this.input.value;
    if (!text.trim()) return;
    const length = [...text].length;
    if (!text.startsWith("/") && length > this.maxChars) {
      this.error(`Your message is ${length} characters; the limit is ${this.maxChars}. It was not sent.`);
      return;
    }
    if (!this.submit(text)) return;
    if (this.keep(text) && this.sent.at(-1) !== text) this.sent.push(text);
    if (this.sent.length > 100) this.sent.shift();
    this.recall = this.sent.length;
    this.draft = "";
    this.input.value = "";
  }

  browse(step) {
    const next = this.recall + step;
    if (next < 0 || next > this.sent.length) return false;
    if (this.recall === this.sent.length) this.draft = this.input.value;
    this.recall = next;
    this.setInput(this.recall === this.sent.length ? this.draft : this.sent[this.recall]);
    return true;
  }

  candidates(word, atStart) {
    const low = word.toLowerCase();
    if (atStart && word.startsWith("/")) {
      return COMMANDS.filter((c) => `/${c}`.startsWith(low)).map((c) => `/${c} `);
    }
    if (word.startsWith("#")) {
      return this.sources.rooms().filter((r) => r.startsWith(low)).sort().map((r) => `${r} `);
    }
    const prefix = low.replace(/^@/, "");
    const at = word.startsWith("@") ? "@" : "";
    return this.sources.nicks()
      .filter((n) => !this.sources.isMe(n) && n.toLowerCase().startsWith(prefix))
      .sort(byName)
      .map((n) => at + n + (atStart ? ": " : " "));
  }

  // Tab: complete the word under the cursor; again: the next choice. False: let Tab move on.
  complete(back) {
    const input = this.input;
    if (!this.completing) {
      const value = input.value;
      const caret = input.selectionStart ?? value.length;
      const start = value.slice(0, caret).search(/\S*$/);
      const end = caret + value.slice(caret).match(/^\S*/)[0].length;
      const word = value.slice(start, end);
      if (!word) return false;
      const options = this.candidates(word, start === 0);
      if (!options.length) return false;
      this.completing = { before: value.slice(0, start), after: value.slice(end), word, options, i: -1 };
    } else if (this.completing.options.length === 1) {
      this.completing = null;
      return false;
    }
    const c = this.completing;
    c.i = (c.i + (back ? -1 : 1) + c.options.length) % c.options.length;
    let choice = c.options[c.i];
    if (/^\s/.test(c.after)) choice = choice.trimEnd();
    this.setInput(c.before + choice + c.after, c.before.length + choice.length);
    return true;
  }

  key(e) {
    if (e.key === "Tab" && !e.altKey && !e.ctrlKey && !e.metaKey) {
      if ((e.shiftKey && !this.completing) || !this.complete(e.shiftKey)) return;
      e.preventDefault();
      return;
    }
    if (["Shift", "Control", "Alt", "Meta"].includes(e.key)) return;
    const c = this.completing;
    this.completing = null;
    if (e.key === "Escape") {
      if (c) this.setInput(c.before + c.word + c.after, c.before.length + c.word.length);
      else if (this.recall < this.sent.length) {
        this.recall = this.sent.length;
        this.setInput(this.draft);
      } else return;
      e.preventDefault();
      e.stopPropagation();
    } else if (e.key === "ArrowUp" && !e.isComposing) {
      if (this.browse(-1)) e.preventDefault();
    } else if (e.key === "ArrowDown" && !e.isComposing) {
      if (this.browse(1)) e.preventDefault();
    }
  }
}
