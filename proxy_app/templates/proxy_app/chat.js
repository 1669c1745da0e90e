// The chat page's client: one WebSocket to /ws/chat/ (authenticated by the login session cookie);
// protocol in proxy_app/consumers.py. Plain DOM, no libraries.
(() => {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const transcript = $("transcript"), input = $("input"), sendButton = $("send"), stopButton = $("stop");
  let socket = null, ready = false, chatId = null, current = null;

  function setStatus(text) { $("status").textContent = text; }

  function bubble(kind, text) {
    const div = document.createElement("div");
    div.className = "msg " + kind;
    div.textContent = text;
    transcript.appendChild(div);
    transcript.scrollTop = transcript.scrollHeight;
    return div;
  }

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
    started(ev) { setChat(ev.chat_id); },
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
      current.firstChild ? current.firstChild.appendData(ev.text) : current.appendChild(document.createTextNode(ev.text));
      transcript.scrollTop = transcript.scrollHeight;
    },
    done(ev) { finish(`${ev.usage.prompt_tokens} prompt + ${ev.usage.completion_tokens} completion tokens`); },
    cancelled() { finish("(stopped)"); },
    ended() { setChat(null); },
    error(ev) {
      if (current && !current.textContent) { current.remove(); current = null; }
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
