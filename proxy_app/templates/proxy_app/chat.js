// The chat page's client: one WebSocket to /ws/chat/ (authenticated by the login session cookie);
// protocol in proxy_app/dialects/sessions/websocket.py. Answers render as Markdown with the vendored
// markdown-it (raw HTML off: tags show as text) and DOMPurify over its output (a second guard);
// the user's own messages stay plain text. Nothing is ever put in the page as HTML unsanitised.
(() => {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const transcript = $("transcript"), input = $("input"), sendButton = $("send"), stopButton = $("stop");
  let socket = null, ready = false, chatId = null, current = null;
  // Without both libraries (static files not collected) answers show as plain text: never unsanitised HTML.
  const markdown = window.markdownit && window.DOMPurify ? window.markdownit({ html: false, linkify: true, breaks: true }) : null;
  if (markdown) {
    DOMPurify.addHook("afterSanitizeAttributes", (node) => {
      if (node.tagName === "A") { node.setAttribute("target", "_blank"); node.setAttribute("rel", "noopener noreferrer nofollow"); }
    });
  }

  function setStatus(text) { $("status").textContent = text; }

  function renderMarkdown(div) {
    if (!markdown) { div.body.textContent = div.text; return; }
    div.body.innerHTML = DOMPurify.sanitize(markdown.render(div.text), { USE_PROFILES: { html: true } });
  }

  function bubble(kind, text) {
    const div = document.createElement("div");
    div.className = "msg " + kind;
    div.body = document.createElement("div");
    div.body.className = "body";
    div.text = text;
    div.appendChild(div.body);
    if (kind.startsWith("model")) renderMarkdown(div); else div.body.textContent = text;
    transcript.appendChild(div);
    transcript.scrollTop = transcript.scrollHeight;
    return div;
  }

  let pending = false;  // one render per animation frame, however many deltas arrive
  function appendAnswer(div, text) {
    div.text += text;
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; renderMarkdown(div); transcript.scrollTop = transcript.scrollHeight; });
  }

  function chatEntry(id) { return $("recent").querySelector(`button[data-chat-id="${CSS.escape(id)}"]`); }

  function listChat(id, model, turns) {
    $("recent-none")?.remove();
    let button = chatEntry(id);
    if (!button) {
      const li = document.createElement("li");
      button = document.createElement("button");
      button.type = "button";
      button.dataset.chatId = id;
      li.appendChild(button);
      $("recent").prepend(li);
    }
    const when = new Date().toISOString().slice(0, 16).replace("T", " ");
    button.replaceChildren(`${model} · ${turns} turns`, document.createElement("br"), Object.assign(document.createElement("small"), { textContent: when }));
    button.dataset.turns = turns;
    button.dataset.model = model;
  }

  async function refreshQuota() {
    try {
      const answer = await fetch($("quota").dataset.url, { headers: { Accept: "application/json" } });
      if (!answer.ok) return;
      const quotas = (await answer.json()).quotas;
      const rows = quotas.map((q) => {
        const li = document.createElement("li");
        li.dataset.kind = q.kind;
        li.textContent = `${q.label}: ${q.remaining_text} left of ${q.limit_text}`;
        return li;
      });
      if (!rows.length) rows.push(Object.assign(document.createElement("li"), { textContent: "no limits apply" }));
      $("quota-list").replaceChildren(...rows);
    } catch (err) { /* the next answer tries again */ }
  }

  // The usage row is written a moment after the answer (in batches, every ~0.25 s): ask a few times.
  function refreshQuotaSoon() { for (const ms of [500, 1500, 4000]) setTimeout(refreshQuota, ms); }

  function note(div, text) {
    const meta = document.createElement("div");
    meta.className = "meta";
    meta.textContent = text;
    div.appendChild(meta);
  }

  function setAnswering(on) {
    stopButton.hidden = !on;
    sendButton.disabled = on || !ready;
  }

  function setChat(id) {
    chatId = id;
    $("chat-id").textContent = id || "—";
  }

  function finish(text) {
    if (current) {
      current.classList.remove("streaming");
      if (text) note(current, text);
    }
    current = null;
    setAnswering(false);
  }

  const handlers = {
    ready(ev) { ready = true; setStatus("connected as " + ev.user); setAnswering(false); },
    started(ev) { setChat(ev.chat_id); listChat(ev.chat_id, ev.model, 0); },
    resumed(ev) {
      setChat(ev.chat_id);
      transcript.replaceChildren();
      for (const entry of ev.history) {
        const div = bubble(entry.role === "user" ? "user" : "model", entry.text);
        if (entry.partial) note(div, "(answer was stopped)");
      }
      const select = $("model");
      if ([...select.options].some((o) => o.value === ev.model)) select.value = ev.model;
    },
    delta(ev) {
      if (!current) current = bubble("model streaming", "");
      appendAnswer(current, ev.text);
    },
    done(ev) {
      if (current) { current.text = ev.text ?? current.text; renderMarkdown(current); }
      const entry = chatEntry(ev.chat_id);
      if (entry) listChat(ev.chat_id, entry.dataset.model, Number(entry.dataset.turns) + 2);
      finish(`${ev.usage.prompt_tokens} prompt + ${ev.usage.completion_tokens} completion tokens`);
      refreshQuotaSoon();
    },
    cancelled() { if (current) renderMarkdown(current); finish("(stopped)"); refreshQuotaSoon(); },
    ended(ev) { chatEntry(ev.chat_id)?.parentElement.remove(); setChat(null); },
    error(ev) {
      if (current && !current.text) { current.remove(); current = null; }
      bubble("error", `${ev.code}: ${ev.message}`);
      finish("");
    },
  };

  function connect() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + location.host + "/ws/chat/");
    socket.onmessage = (message) => {
      const ev = JSON.parse(message.data);
      (handlers[ev.type] || (() => {}))(ev);
    };
    socket.onclose = () => { ready = false; setStatus("disconnected — reload the page"); setAnswering(false); };
  }

  function send(obj) { socket.send(JSON.stringify(obj)); }

  function startChat() {
    const start = { type: "start", model: $("model").value };
    const system = $("system").value.trim();
    if (system) start.system_instruction = system;
    send(start);
  }

  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text || !ready || current) return;
    if (!chatId) startChat();
    send({ type: "message", text });
    bubble("user", text);
    current = bubble("model streaming", "");
    input.value = "";
    setAnswering(true);
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); $("composer").requestSubmit(); }
  });
  stopButton.addEventListener("click", () => send({ type: "cancel" }));
  $("new-chat").addEventListener("click", () => {
    if (current) return;
    transcript.replaceChildren();
    setChat(null);
  });
  $("recent").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-chat-id]");
    if (button && ready && !current) send({ type: "resume", chat_id: button.dataset.chatId });
  });
  connect();
})();
