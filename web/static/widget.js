/* ChainLens chat widget: one <script src="https://HOST/widget.js" data-title="…"> tag adds a
 * chat bubble to any page. Vanilla JS, no build step. Styles live in a shadow root so the host
 * page and the widget cannot break each other. Answers are rendered from markdown by escaping
 * every character first and only then adding a few safe tags: no HTML from an answer or a
 * headline ever reaches the DOM as markup. */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || window.__chainlensWidget) return;
  window.__chainlensWidget = true;
  var origin = new URL(script.src, location.href).origin;
  var title = script.getAttribute("data-title") || "ChainLens";
  var greeting = script.getAttribute("data-greeting") ||
    "Ask me about any crypto project: \u201cResearch Uniswap\u201d, \u201cis the PEPE team legit?\u201d, \u201cETH tokenomics?\u201d";
  var startOpen = script.getAttribute("data-open") === "true";
  var conversationId = null;
  var busy = false;

  var host = document.createElement("div");
  host.id = "chainlens-widget";
  document.body.appendChild(host);
  var root = host.attachShadow({ mode: "open" });
  root.innerHTML =
    '<link rel="stylesheet" href="' + origin + '/widget.css">' +
    '<button class="cl-bubble" type="button" aria-haspopup="dialog" aria-expanded="false" aria-label="Open ' +
    escapeHtml(title) + ' chat">' +
    '<svg viewBox="0 0 24 24" width="26" height="26" aria-hidden="true" focusable="false">' +
    '<path fill="currentColor" d="M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H8l-4 4V6a2 2 0 0 1 2-2z' +
    'm3 5v2h10V9H7zm0 4v2h7v-2H7z"/></svg></button>' +
    '<section class="cl-panel" role="dialog" aria-label="' + escapeHtml(title) + ' chat" hidden>' +
    '  <header class="cl-head"><h2>' + escapeHtml(title) + '</h2>' +
    '    <span class="cl-quota" aria-live="polite"></span>' +
    '    <button class="cl-close" type="button" aria-label="Close chat">\u00D7</button></header>' +
    '  <div class="cl-log" role="log" aria-live="polite" tabindex="0"></div>' +
    '  <div class="cl-upgrade" hidden><p class="cl-upgrade-text"></p>' +
    '    <button class="cl-upgrade-btn" type="button">Upgrade to Pro</button></div>' +
    '  <form class="cl-form"><label class="cl-sr" for="cl-input">Your question</label>' +
    '    <input id="cl-input" class="cl-input" name="message" maxlength="2000" autocomplete="off" ' +
    '      placeholder="Research Uniswap\u2026" required>' +
    '    <button class="cl-send" type="submit">Ask</button></form>' +
    '</section>';

  var bubble = root.querySelector(".cl-bubble");
  var panel = root.querySelector(".cl-panel");
  var log = root.querySelector(".cl-log");
  var form = root.querySelector(".cl-form");
  var input = root.querySelector(".cl-input");
  var quotaEl = root.querySelector(".cl-quota");
  var upgradeBox = root.querySelector(".cl-upgrade");

  function setOpen(open) {
    panel.hidden = !open;
    bubble.setAttribute("aria-expanded", String(open));
    if (open) { input.focus(); } else { bubble.focus(); }
  }
  bubble.addEventListener("click", function () { setOpen(panel.hidden); });
  root.querySelector(".cl-close").addEventListener("click", function () { setOpen(false); });
  panel.addEventListener("keydown", function (e) { if (e.key === "Escape") setOpen(false); });
  root.querySelector(".cl-upgrade-btn").addEventListener("click", upgrade);

  addMessage("bot", escapeHtml(greeting));
  if (startOpen) setOpen(true);
  refreshQuota();

  form.addEventListener("submit", function (e) {
    e.preventDefault();
    var text = input.value.trim();
    if (!text || busy) return;
    input.value = "";
    ask(text);
  });

  function addMessage(who, html) {
    var el = document.createElement("div");
    el.className = "cl-msg cl-" + who;
    el.innerHTML = html;
    log.appendChild(el);
    log.scrollTop = log.scrollHeight;
    return el;
  }

  function showQuota(q) {
    if (!q || q.remaining === undefined || q.remaining === null) return;
    quotaEl.textContent = q.remaining + " of " + q.limit + " requests left today";
  }

  function refreshQuota() {
    fetch(origin + "/api/chat/quota", { credentials: "include" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(showQuota)
      .catch(function () {});
  }

  function showUpgrade(message) {
    upgradeBox.hidden = false;
    upgradeBox.querySelector(".cl-upgrade-text").textContent = message;
  }

  function upgrade() {
    // Payments answer only their own site: embedded elsewhere, upgrade on our pricing page.
    if (origin !== location.origin) { window.open(origin + "/pricing", "_blank", "noopener"); return; }
    fetch(origin + "/api/payment/checkout", {
      method: "POST", credentials: "include",
      headers: { "Content-Type": "application/json" }, body: JSON.stringify({ tier: "pro" })
    }).then(function (r) { return r.json().then(function (b) { return [r.status, b]; }); })
      .then(function (res) {
        if (res[0] === 200 && res[1].checkout_url) { window.open(res[1].checkout_url, "_blank", "noopener"); }
        else { showUpgrade((res[1].error && res[1].error.message) || "Upgrades are not available right now."); }
      })
      .catch(function () { showUpgrade("Upgrades are not available right now."); });
  }

  function ask(text) {
    busy = true;
    form.querySelector(".cl-send").disabled = true;
    addMessage("user", escapeHtml(text));
    var bot = addMessage("bot", '<div class="cl-tools" aria-live="polite"></div><div class="cl-text"><span class="cl-typing">Thinking\u2026</span></div>');
    var toolsEl = bot.querySelector(".cl-tools");
    var textEl = bot.querySelector(".cl-text");
    var raw = "";
    var finished = false;

    function onEvent(name, data) {
      if (name === "quota") { showQuota(data); }
      else if (name === "plan") {
        if (data.project) { toolsEl.appendChild(chip(data.project.display, "cl-project")); }
        (data.tools || []).forEach(function (t) {
          var c = chip(toolLabel(t) + " \u2026", "cl-running"); c.setAttribute("data-tool", t); toolsEl.appendChild(c);
        });
      } else if (name === "tool") {
        var c = toolsEl.querySelector('[data-tool="' + data.tool + '"]');
        if (!c) { c = chip("", ""); c.setAttribute("data-tool", data.tool); toolsEl.appendChild(c); }
        if (data.status === "started") { c.className = "cl-chip cl-running"; c.textContent = toolLabel(data.tool) + " \u2026"; }
        else { c.className = "cl-chip " + (data.ok ? "cl-done" : "cl-failed"); c.textContent = toolLabel(data.tool) + (data.ok ? " \u2713" : " \u2717"); }
      } else if (name === "text") {
        raw += data.chunk; textEl.innerHTML = renderMarkdown(raw);
      } else if (name === "final") {
        finished = true;
        raw = data.response || raw; textEl.innerHTML = renderMarkdown(raw);
        conversationId = data.conversation_id || conversationId;
        if (data.chart_url) {
          var img = document.createElement("img");
          img.className = "cl-chart"; img.alt = "Price chart" + (data.project ? " of " + data.project.display : "");
          img.src = origin + data.chart_url; bot.appendChild(img);
        }
        if (data.usage) showQuota({ remaining: data.usage.requests_remaining, limit: data.usage.requests_limit });
        // Long answers: show their beginning, not their end.
        log.scrollTop = Math.max(0, bot.offsetTop - log.offsetTop - 8);
        return;
      } else if (name === "error") {
        finished = true;
        if (data.answer) { raw = data.answer; textEl.innerHTML = renderMarkdown(raw); }
        else { textEl.innerHTML = '<p class="cl-error">' + escapeHtml(data.message || "Something went wrong.") + "</p>"; }
        if (data.code === "quota_exceeded") { showUpgrade(data.message); showQuota({ remaining: 0, limit: data.limit }); }
      }
      log.scrollTop = log.scrollHeight;
    }

    fetch(origin + "/api/chat/stream", {
      method: "POST", credentials: "include",
      headers: { "Content-Type": "application/json", "Accept": "text/event-stream" },
      body: JSON.stringify({ message: text, conversation_id: conversationId })
    }).then(function (response) {
      if (!response.ok || !response.body) {
        return response.json().then(function (b) {
          var err = b.error || {};
          onEvent("error", { code: err.code, message: err.message, limit: err.details && err.details.limit });
        });
      }
      return readSse(response.body.getReader(), onEvent);
    }).catch(function () {
      if (!finished) onEvent("error", { message: "Connection lost. Please try again." });
    }).then(function () {
      busy = false; form.querySelector(".cl-send").disabled = false; input.focus();
    });
  }

  function readSse(reader, onEvent) {
    var decoder = new TextDecoder();
    var buffer = "";
    function pump() {
      return reader.read().then(function (step) {
        if (step.done) return;
        buffer += decoder.decode(step.value, { stream: true });
        var parts = buffer.split("\n\n");
        buffer = parts.pop();
        parts.forEach(function (block) {
          var name = "message", data = "";
          block.split("\n").forEach(function (line) {
            if (line.indexOf("event:") === 0) name = line.slice(6).trim();
            else if (line.indexOf("data:") === 0) data += line.slice(5).trim();
          });
          if (data) { try { onEvent(name, JSON.parse(data)); } catch (e) { /* ignore a malformed frame */ } }
        });
        return pump();
      });
    }
    return pump();
  }

  function chip(text, cls) {
    var el = document.createElement("span");
    el.className = "cl-chip " + cls; el.textContent = text; return el;
  }

  function toolLabel(t) {
    return { onchain: "Market & on-chain", sentiment: "Sentiment", tokenomics: "Tokenomics", team: "Team" }[t] || t;
  }

  function escapeHtml(s) {
    return String(s).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }

  /* Markdown subset on already-escaped text: headings, bold, italics, code, lists, links. */
  function renderMarkdown(md) {
    var lines = escapeHtml(md).split("\n");
    var out = [], list = null;
    function closeList() { if (list) { out.push("</" + list + ">"); list = null; } }
    lines.forEach(function (line) {
      var m;
      if ((m = line.match(/^(#{1,4})\s+(.*)$/))) { closeList(); out.push("<h4>" + inline(m[2]) + "</h4>"); }
      else if ((m = line.match(/^\s*[-*\u2022]\s+(.*)$/))) { if (list !== "ul") { closeList(); out.push("<ul>"); list = "ul"; } out.push("<li>" + inline(m[1]) + "</li>"); }
      else if ((m = line.match(/^\s*\d+[.)]\s+(.*)$/))) { if (list !== "ol") { closeList(); out.push("<ol>"); list = "ol"; } out.push("<li>" + inline(m[1]) + "</li>"); }
      else if (line.trim() === "") { closeList(); }
      else { closeList(); out.push("<p>" + inline(line) + "</p>"); }
    });
    closeList();
    return out.join("");
  }

  function inline(s) {
    return s
      .replace(/`([^`]+)`/g, "<code>$1</code>")
      .replace(/\*\*([^*]+)\*\*/g, "<strong>$1</strong>")
      .replace(/(^|[^*])\*([^*]+)\*/g, "$1<em>$2</em>")
      .replace(/(^|\s)_([^_]+)_(?=$|[\s.,;:!?)])/g, "$1<em>$2</em>")
      .replace(/\[([^\]]+)\]\((https?:\/\/[^\s)"]+)\)/g,
        '<a href="$2" target="_blank" rel="noopener noreferrer nofollow">$1</a>');
  }
})();
