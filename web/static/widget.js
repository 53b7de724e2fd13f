/* ChainLens chat widget: one <script src="https://HOST/widget.js" data-title="…"> tag adds a
 * chat bubble to any page. Vanilla JS, no build step. Styles live in a shadow root so the host
 * page and the widget cannot break each other. Answers are rendered from markdown by escaping
 * every character first and only then adding a few safe tags: no HTML from an answer or a
 * headline ever reaches the DOM as markup, and only the answer's own sources become links.
 * The conversation is kept by the server (GET /api/chat/history), so it survives a reload;
 * "New chat" starts another. The host page can call window.ChainLens.ask(text). */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || window.__chainlensWidget) return;
  window.__chainlensWidget = true;
  var origin = new URL(script.src, location.href).origin;
  var title = script.getAttribute("data-title") || "ChainLens";
  var startOpen = script.getAttribute("data-open") === "true";
  var conversationId = null;
  var tier = null;
  var busy = false;
  // Every string people read comes from the server's message catalogue (GET /api/i18n/<lang>).
  var strings = {};
  var languages = {};
  var language = null;
  var examples = [];
  var greeting = "";

  function t(key, vars) {
    var text = Object.prototype.hasOwnProperty.call(strings, key) ? strings[key] : key;
    return text.replace(/\{(\w+)\}/g, function (whole, name) {
      return vars && Object.prototype.hasOwnProperty.call(vars, name) ? String(vars[name]) : whole;
    });
  }

  var host = document.createElement("div");
  host.id = "chainlens-widget";
  document.body.appendChild(host);
  var root = host.attachShadow({ mode: "open" });
  root.innerHTML =
    '<link rel="stylesheet" href="' + escapeHtml(origin) + '/widget.css">' +
    '<button class="cl-bubble" type="button" aria-haspopup="dialog" aria-expanded="false">' +
    '<svg viewBox="0 0 24 24" width="26" height="26" aria-hidden="true" focusable="false">' +
    '<path fill="currentColor" d="M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H8l-4 4V6a2 2 0 0 1 2-2z' +
    'm3 5v2h10V9H7zm0 4v2h7v-2H7z"/></svg></button>' +
    '<section class="cl-panel" role="dialog" hidden>' +
    '  <header class="cl-head"><h2>' + escapeHtml(title) + '</h2>' +
    '    <span class="cl-quota" aria-live="polite"></span>' +
    '    <select class="cl-lang"></select>' +
    '    <button class="cl-new" type="button"></button>' +
    '    <button class="cl-close" type="button">\u00D7</button></header>' +
    '  <div class="cl-log" role="log" aria-live="polite" tabindex="0"></div>' +
    '  <div class="cl-upgrade" hidden><p class="cl-upgrade-text"></p>' +
    '    <button class="cl-upgrade-btn" type="button"></button></div>' +
    '  <form class="cl-form"><label class="cl-sr" for="cl-input"></label>' +
    '    <input id="cl-input" class="cl-input" name="message" maxlength="2000" autocomplete="off" required>' +
    '    <button class="cl-send" type="submit"></button></form>' +
    '  <div class="cl-account" hidden><span class="cl-account-text"></span>' +
    '    <button class="cl-signout" type="button"></button></div>' +
    '</section>';

  var bubble = root.querySelector(".cl-bubble");
  var panel = root.querySelector(".cl-panel");
  var log = root.querySelector(".cl-log");
  var form = root.querySelector(".cl-form");
  var input = root.querySelector(".cl-input");
  var quotaEl = root.querySelector(".cl-quota");
  var upgradeBox = root.querySelector(".cl-upgrade");
  var accountBox = root.querySelector(".cl-account");
  var langSelect = root.querySelector(".cl-lang");
  var signedInAs = null;
  var lastQuota = null;

  /* Labels of the widget itself in the current language (the conversation stays as it was). */
  function applyStrings() {
    host.setAttribute("lang", language);
    panel.setAttribute("lang", language);
    bubble.setAttribute("aria-label", t("open_chat", { title: title }));
    panel.setAttribute("aria-label", t("chat_label", { title: title }));
    var newButton = root.querySelector(".cl-new");
    newButton.textContent = t("new_chat"); newButton.title = t("new_chat_title");
    root.querySelector(".cl-close").setAttribute("aria-label", t("close"));
    root.querySelector(".cl-upgrade-btn").textContent = t("upgrade_pro");
    root.querySelector(".cl-sr").textContent = t("your_question");
    input.placeholder = t("placeholder");
    root.querySelector(".cl-send").textContent = t("ask");
    root.querySelector(".cl-signout").textContent = t("sign_out");
    langSelect.setAttribute("aria-label", t("language"));
    langSelect.textContent = "";
    Object.keys(languages).forEach(function (code) {
      var option = document.createElement("option");
      option.value = code; option.textContent = languages[code]; option.lang = code;
      langSelect.appendChild(option);
    });
    langSelect.value = language;
    greeting = script.getAttribute("data-greeting") || t("greeting");
    examples = (script.getAttribute("data-examples") || t("examples")).split("|").filter(Boolean);
    showAccount(signedInAs);
    showQuota(lastQuota);
  }

  function supported(code) {
    code = String(code || "").toLowerCase().split(/[-_]/)[0];
    return code === "en" || code === "vi" ? code : null;
  }

  function browserLanguage() {
    var list = navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language];
    for (var i = 0; i < list.length; i++) { var code = supported(list[i]); if (code) return code; }
    return null;
  }

  /* The strings of `code` (public JSON, cached by the browser; no credentials needed). */
  function loadStrings(code) {
    return fetch(origin + "/api/i18n/" + code, { credentials: "omit" })
      .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
      .then(function (body) {
        strings = body.strings || {}; languages = body.languages || {}; language = body.language;
        applyStrings();
      });
  }

  function setOpen(open) {
    panel.hidden = !open;
    bubble.setAttribute("aria-expanded", String(open));
    if (open) { input.focus(); } else { bubble.focus(); }
  }
  bubble.addEventListener("click", function () { setOpen(panel.hidden); });
  root.querySelector(".cl-close").addEventListener("click", function () { setOpen(false); });
  panel.addEventListener("keydown", function (e) { if (e.key === "Escape") setOpen(false); });
  root.querySelector(".cl-upgrade-btn").addEventListener("click", upgrade);
  root.querySelector(".cl-new").addEventListener("click", newChat);
  root.querySelector(".cl-signout").addEventListener("click", signOut);
  langSelect.addEventListener("change", function () { switchLanguage(langSelect.value); });

  // The language: the page's data-lang, else the server's choice for this visitor (saved on
  // the account, the switch's cookie, Accept-Language), else the browser's; then the
  // conversation so far, which comes from the server so it survives a reload on any page.
  var ready = start();
  if (startOpen) setOpen(true);

  // The host page may ask questions too (the demo page's examples do).
  window.ChainLens = {
    open: function () { setOpen(true); },
    ask: function (text) { setOpen(true); ready.then(function () { if (!busy && text) ask(String(text)); }); }
  };

  function start() {
    var history = api("GET", "/api/chat/history").then(null, function () { return null; });
    return history.then(function (h) {
      var code = supported(script.getAttribute("data-lang")) || (h && supported(h.language)) ||
        browserLanguage() || "en";
      return loadStrings(code).then(null, function (e) {
        if (window.console) console.error("ChainLens: strings", e);
        return code === "en" ? null : loadStrings("en");
      }).then(function () { return h; });
    }).then(function (h) { return showConversation(h); });
  }

  /* The widget's switch: new labels at once; the choice is kept for this browser (a cookie)
   * and on the account when signed in. Answers follow each question's own language first. */
  function switchLanguage(code) {
    if (!supported(code) || code === language) return;
    loadStrings(code).then(function () {
      api("PUT", "/api/language", { language: code }).catch(function () {});
      if (!log.querySelector(".cl-user")) { resetLog(); showGreeting(); }
    }).catch(function () { langSelect.value = language; });
  }

  form.addEventListener("submit", function (e) {
    e.preventDefault();
    var text = input.value.trim();
    if (!text || busy) return;
    input.value = "";
    ask(text);
  });

  function api(method, path, body) {
    return fetch(origin + path, {
      method: method, credentials: "include",
      headers: body ? { "Content-Type": "application/json" } : {},
      body: body ? JSON.stringify(body) : undefined
    }).then(function (r) {
      if (!r.ok) return Promise.reject(r.status);
      return r.status === 204 ? null : r.json();
    });
  }

  function showConversation(h) {
    if (!h) { showGreeting(); return refreshQuota(); }
    conversationId = h.conversation_id;
    showGreeting();
    (h.turns || []).forEach(showTurn);
    signedInAs = h.signed_in_as || null;
    showAccount(signedInAs);
    // Back where the reader was: the beginning of the last answer.
    var last = log.querySelector(".cl-bot:last-child");
    log.scrollTop = last ? Math.max(0, last.offsetTop - log.offsetTop - 8) : 0;
    return refreshQuota();
  }

  function loadConversation() {
    return api("GET", "/api/chat/history")
      .then(showConversation, function () { showGreeting(); return refreshQuota(); })
      .catch(function (e) { if (window.console) console.error("ChainLens: earlier messages", e); });
  }

  function resetLog() {
    log.textContent = "";
    upgradeBox.hidden = true;
  }

  function newChat() {
    if (busy) return;
    ready = api("POST", "/api/chat/conversations")
      .then(function (c) { conversationId = c.conversation_id; resetLog(); showGreeting(); input.focus(); })
      .catch(function () { addMessage("bot").appendChild(errorText(t("new_chat_failed"))); });
  }

  function signOut() {
    if (busy) return;
    ready = api("POST", "/api/auth/logout")
      .then(function () {
        conversationId = null; tier = null; lastQuota = null; quotaEl.textContent = "";
        signedInAs = null; showAccount(null); resetLog();
        return loadConversation();
      })
      .catch(function () { addMessage("bot").appendChild(errorText(t("sign_out_failed"))); });
  }

  function showAccount(email) {
    accountBox.hidden = !email;
    root.querySelector(".cl-account-text").textContent = email ? t("signed_in_as", { email: email }) : "";
  }

  function showGreeting() {
    var el = addMessage("bot");
    var p = document.createElement("p"); p.textContent = greeting; el.appendChild(p);
    var box = document.createElement("div"); box.className = "cl-examples";
    examples.forEach(function (text) {
      var b = document.createElement("button");
      b.type = "button"; b.className = "cl-example"; b.textContent = text;
      b.addEventListener("click", function () { if (!busy) ask(text); });
      box.appendChild(b);
    });
    el.appendChild(box);
  }

  function showTurn(t) {
    addMessage("user").textContent = t.question;
    var bot = addMessage("bot");
    if (t.project && t.project.display) {
      var tools = document.createElement("div"); tools.className = "cl-tools";
      tools.appendChild(chip(t.project.display, "cl-project")); bot.appendChild(tools);
    }
    var text = document.createElement("div"); text.className = "cl-text"; bot.appendChild(text);
    renderAnswer(text, t.answer, t.sources);
    addChart(bot, t.chart_url, t.project);
  }

  function addMessage(who) {
    var el = document.createElement("div");
    el.className = "cl-msg cl-" + who;
    log.appendChild(el);
    log.scrollTop = log.scrollHeight;
    return el;
  }

  function errorText(message) {
    var p = document.createElement("p"); p.className = "cl-error"; p.textContent = message; return p;
  }

  function addChart(bot, url, project) {
    // a project's chart, or a comparison's (its projects' prices overlaid)
    if (typeof url !== "string" || !(/^\/api\/chart\/[a-z0-9-]+\.png$/.test(url) ||
        /^\/api\/chart\/compare\.png\?ids=[a-z0-9-]+(,[a-z0-9-]+){1,2}(&lang=[a-z]{2})?$/.test(url))) return;
    var img = document.createElement("img");
    img.className = "cl-chart";
    img.alt = project && project.display && url.indexOf("?") < 0
      ? t("chart_alt_of", { project: project.display }) : t("chart_alt");
    img.src = origin + url; bot.appendChild(img);
  }

  function showQuota(q) {
    if (!q) return;
    if (q.tier) tier = q.tier;
    if (q.remaining === undefined || q.remaining === null || !q.limit) return;
    lastQuota = { remaining: q.remaining, limit: q.limit };
    quotaEl.textContent = t("quota_left", { remaining: q.remaining, limit: q.limit });
  }

  function refreshQuota() {
    return fetch(origin + "/api/chat/quota", { credentials: "include" })
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
        else { showUpgrade((res[1].error && res[1].error.message) || t("upgrades_unavailable")); }
      })
      .catch(function () { showUpgrade(t("upgrades_unavailable")); });
  }

  function onRefused(data) {
    if (data.tier) tier = data.tier;
    if (data.day_limit) { showQuota({ remaining: data.day_remaining, limit: data.day_limit }); }
    else if (data.window !== "minute") { showQuota({ remaining: 0, limit: data.limit }); }
    // Waiting a minute is the answer to a per-minute refusal; more daily requests need Pro.
    // The refusal itself is already in the chat: the box only offers the upgrade.
    if (data.window !== "minute" && (tier === null || tier === "free")) {
      showUpgrade(t("pro_more"));
    }
  }

  function ask(text) {
    busy = true;
    form.querySelector(".cl-send").disabled = true;
    addMessage("user").textContent = text;
    var bot = addMessage("bot");
    var toolsEl = document.createElement("div"); toolsEl.className = "cl-tools"; toolsEl.setAttribute("aria-live", "polite");
    var textEl = document.createElement("div"); textEl.className = "cl-text";
    var typing = document.createElement("span"); typing.className = "cl-typing"; typing.textContent = t("thinking");
    textEl.appendChild(typing); bot.appendChild(toolsEl); bot.appendChild(textEl);
    var raw = "";
    var finished = false;
    var runs = {};  // tool -> project id -> state

    function onEvent(name, data) {
      if (name === "quota") { showQuota(data); }
      else if (name === "plan") {
        // a comparison names each of its projects
        var named = data.projects && data.projects.length ? data.projects : (data.project ? [data.project] : []);
        named.forEach(function (p) { toolsEl.appendChild(chip(p.display, "cl-project")); });
        (data.tools || []).forEach(function (t) {
          var c = chip(toolLabel(t) + " \u2026", "cl-running"); c.setAttribute("data-tool", t); toolsEl.appendChild(c);
        });
      } else if (name === "tool") {
        var c = null;
        Array.prototype.forEach.call(toolsEl.querySelectorAll("[data-tool]"), function (el) {
          if (el.getAttribute("data-tool") === data.tool) c = el;
        });
        if (!c) { c = chip("", ""); c.setAttribute("data-tool", data.tool); toolsEl.appendChild(c); }
        // In a comparison a tool runs once per project; its chip shows them all together.
        var mine = runs[data.tool] = runs[data.tool] || {};
        mine[data.project_id || ""] = data.status === "started" ? "running" : !data.ok ? "failed" : (data.partial ? "partial" : "done");
        var states = Object.keys(mine).map(function (k) { return mine[k]; });
        var some = function (x) { return states.indexOf(x) >= 0; };
        if (some("running")) { c.className = "cl-chip cl-running"; c.textContent = toolLabel(data.tool) + " \u2026"; }
        else {
          var state = states.every(function (x) { return x === "failed"; }) ? "failed" : (some("failed") || some("partial") ? "partial" : "done");
          c.className = "cl-chip cl-" + state;
          c.textContent = toolLabel(data.tool) + (state === "done" ? " \u2713" : state === "partial" ? " " + t("partial") : " \u2717");
          if (state === "partial") c.title = t("partial_title");
        }
      } else if (name === "text") {
        raw += data.chunk; textEl.innerHTML = renderMarkdown(raw);
      } else if (name === "final") {
        finished = true;
        raw = data.response || raw; renderAnswer(textEl, raw, data.sources);
        conversationId = data.conversation_id || conversationId;
        addChart(bot, data.chart_url, data.project);
        if (data.usage) showQuota({ remaining: data.usage.requests_remaining, limit: data.usage.requests_limit });
        // Long answers: show their beginning, not their end.
        log.scrollTop = Math.max(0, bot.offsetTop - log.offsetTop - 8);
        return;
      } else if (name === "error") {
        finished = true;
        if (data.answer) { raw = data.answer; renderAnswer(textEl, raw, []); }
        else { textEl.textContent = ""; textEl.appendChild(errorText(data.message || t("went_wrong"))); }
        if (data.code === "quota_exceeded") onRefused(data);
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
          var d = err.details || {};
          onEvent("error", { code: err.code, message: err.message, limit: d.limit, window: d.window,
                             tier: d.tier, day_limit: d.day_limit, day_remaining: d.day_remaining });
        });
      }
      return readSse(response.body.getReader(), onEvent);
    }).catch(function () {
      if (!finished) onEvent("error", { message: t("connection_lost") });
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
    return Object.prototype.hasOwnProperty.call(strings, "tool_" + t) ? strings["tool_" + t] : t;
  }

  function escapeHtml(s) {
    return String(s).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }

  /* Markdown subset on already-escaped text: headings, bold, italics, code, lists. */
  function renderMarkdown(md) {
    var lines = escapeHtml(md).split("\n");
    var out = [], list = null, table = null;
    function closeList() { if (list) { out.push("</" + list + ">"); list = null; } }
    function closeTable() { if (table) { out.push(tableHtml(table)); table = null; } }
    lines.forEach(function (line) {
      var m;
      if (/^\s*\|.*\|\s*$/.test(line)) { closeList(); (table = table || []).push(line); return; }
      closeTable();
      if ((m = line.match(/^(#{1,4})\s+(.*)$/))) { closeList(); out.push("<h4>" + inline(m[2]) + "</h4>"); }
      else if ((m = line.match(/^\s*[-*\u2022]\s+(.*)$/))) { if (list !== "ul") { closeList(); out.push("<ul>"); list = "ul"; } out.push("<li>" + inline(m[1]) + "</li>"); }
      else if ((m = line.match(/^\s*\d+[.)]\s+(.*)$/))) { if (list !== "ol") { closeList(); out.push("<ol>"); list = "ol"; } out.push("<li>" + inline(m[1]) + "</li>"); }
      else if (line.trim() === "") { closeList(); }
      else { closeList(); out.push("<p>" + inline(line) + "</p>"); }
    });
    closeList();
    closeTable();
    return out.join("");
  }

  /* A markdown table (a comparison's side-by-side figures) as an HTML table. */
  function tableHtml(rows) {
    var html = ['<div class="cl-table-wrap"><table class="cl-table">'];
    var header = true;
    rows.forEach(function (row) {
      var cells = row.trim().replace(/^\|/, "").replace(/\|$/, "").replace(/\\\|/g, "\u0000")
        .split("|").map(function (c) { return c.replace(/\u0000/g, "|").trim(); });
      if (cells.every(function (c) { return /^:?-{3,}:?$/.test(c); })) { return; }
      var tag = header ? "th" : "td";
      html.push("<tr>" + cells.map(function (c) {
        return "<" + tag + ">" + inline(c) + "</" + tag + ">";
      }).join("") + "</tr>");
      header = false;
    });
    html.push("</table></div>");
    return html.join("");
  }

  function inline(s) {
    return s
      .replace(/`([^`]+)`/g, "<code>$1</code>")
      .replace(/\*\*([^*]+)\*\*/g, "<strong>$1</strong>")
      .replace(/(^|[^*])\*([^*]+)\*/g, "$1<em>$2</em>")
      .replace(/(^|\s)_([^_]+)_(?=$|[\s.,;:!?)])/g, "$1<em>$2</em>")
      // A markdown link shows its address as text; only a source's address becomes a link.
      .replace(/\[([^\]]+)\]\((https?:\/\/[^\s)"]+)\)/g, "$1 ($2)");
  }

  /* The answer as HTML built from escaped text, then each address of one of the answer's own
   * sources (http and https only) turned into a link with DOM calls. Addresses found only in
   * the text (a headline, a model's words) stay text. */
  function renderAnswer(el, md, sources) {
    el.innerHTML = renderMarkdown(md);
    var urls = [], names = {};
    (sources || []).forEach(function (s) {
      if (s && typeof s.url === "string" && safeUrl(s.url) && urls.indexOf(s.url) === -1) {
        urls.push(s.url); names[s.url] = String(s.source || s.url);
      }
    });
    if (!urls.length) return;
    var found = {};
    var walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
    var nodes = [];
    while (walker.nextNode()) nodes.push(walker.currentNode);
    nodes.forEach(function (node) {
      var text = node.nodeValue, pos = 0, frag = null;
      for (;;) {
        var at = -1, url = null;
        urls.forEach(function (u) {
          var i = indexOfWhole(text, u, pos);
          if (i !== -1 && (at === -1 || i < at || (i === at && u.length > url.length))) { at = i; url = u; }
        });
        if (at === -1) break;
        frag = frag || document.createDocumentFragment();
        frag.appendChild(document.createTextNode(text.slice(pos, at)));
        frag.appendChild(sourceLink(url, url));
        found[url] = true;
        pos = at + url.length;
      }
      if (frag) { frag.appendChild(document.createTextNode(text.slice(pos))); node.parentNode.replaceChild(frag, node); }
    });
    var missing = urls.filter(function (u) { return !found[u]; });
    if (missing.length) {
      var list = document.createElement("ul"); list.className = "cl-sources";
      missing.forEach(function (u) {
        var li = document.createElement("li"); li.appendChild(sourceLink(u, names[u])); list.appendChild(li);
      });
      el.appendChild(list);
    }
  }

  /* Where `url` stands alone in `text` from `pos` on: not the start of a longer address. */
  function indexOfWhole(text, url, pos) {
    for (var i = text.indexOf(url, pos); i !== -1; i = text.indexOf(url, i + 1)) {
      var after = text.charAt(i + url.length);
      if (after === "" || /[\s)\],;]/.test(after) || (/[.!?]/.test(after) && /^($|\s)/.test(text.charAt(i + url.length + 1)))) return i;
    }
    return -1;
  }

  function safeUrl(url) {
    try {
      var parsed = new URL(url);
      return parsed.protocol === "https:" || parsed.protocol === "http:" ? parsed.href : null;
    } catch (e) { return null; }
  }

  function sourceLink(url, text) {
    var a = document.createElement("a");
    a.href = safeUrl(url); a.textContent = text; a.className = "cl-source";
    a.target = "_blank"; a.rel = "noopener noreferrer nofollow";
    return a;
  }
})();
