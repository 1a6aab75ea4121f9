// The writing desk (#23): enhancements of posts/edit.html, which works without this file.
// Toolbar and shortcuts insert through document.execCommand("insertText"), so the
// browser's own undo (Ctrl+Z) takes every insertion back; the preview follows the text;
// autosave keeps the text on the server and in this browser; one recovery banner.
(function () {
  "use strict";
  var form = document.getElementById("post-form");
  var body = document.getElementById("f-body");
  if (!form || !body) { return; }
  var title = document.getElementById("f-title");
  var status = document.getElementById("autosave-status");
  function say(text) { if (status) { status.textContent = text; } }
  function value(name) { return form.elements[name] ? form.elements[name].value : ""; }

  // --- inserting text the browser can undo -----------------------------------------------
  function replaceRange(start, end, text, selectFrom, selectTo) {
    body.focus();
    body.setSelectionRange(start, end);
    var done = false;
    try { done = document.execCommand("insertText", false, text); } catch (e) { done = false; }
    if (!done) {
      // A browser without insertText: still insert (this one cannot be undone by Ctrl+Z).
      body.setRangeText(text, start, end, "end");
      body.dispatchEvent(new Event("input", { bubbles: true }));
    }
    body.setSelectionRange(start + selectFrom, start + selectTo);
  }
  function lineBounds(start, end) {
    var text = body.value;
    var from = text.lastIndexOf("\n", start - 1) + 1;
    var to = text.indexOf("\n", end);
    if (to < 0) { to = text.length; }
    return [from, to];
  }
  function wrap(before, after, placeholder) {
    var start = body.selectionStart, end = body.selectionEnd;
    var selected = body.value.slice(start, end) || placeholder;
    var text = before + selected + after;
    replaceRange(start, end, text, before.length, before.length + selected.length);
  }
  function prefixLines(prefixFor, placeholder) {
    var bounds = lineBounds(body.selectionStart, body.selectionEnd);
    var lines = (body.value.slice(bounds[0], bounds[1]) || placeholder).split("\n");
    var text = lines.map(function (line, i) { return prefixFor(i) + line; }).join("\n");
    replaceRange(bounds[0], bounds[1], text, 0, text.length);
  }
  function blockAround(text) {
    // A block element needs blank lines around it.
    var start = body.selectionStart;
    var before = body.value.slice(0, start);
    var lead = before === "" || /\n\n$/.test(before) ? "" : (/\n$/.test(before) ? "\n" : "\n\n");
    return lead + text;
  }
  var footnotes = 0;
  var actions = {
    bold: function () { wrap("**", "**", "bold text"); },
    italic: function () { wrap("_", "_", "italic text"); },
    heading: function () { prefixLines(function () { return "## "; }, "Heading"); },
    quote: function () { prefixLines(function () { return "> "; }, "Quoted text"); },
    list: function () { prefixLines(function () { return "- "; }, "Item"); },
    numbered: function () { prefixLines(function (i) { return (i + 1) + ". "; }, "Item"); },
    link: function () {
      // With no address yet, the address part is selected: typing replaces it.
      var start = body.selectionStart, end = body.selectionEnd;
      var label = body.value.slice(start, end) || "link text";
      var text = "[" + label + "](https://)";
      var urlAt = label.length + 3;
      replaceRange(start, end, text, urlAt, urlAt + "https://".length);
    },
    code: function () {
      var start = body.selectionStart, end = body.selectionEnd;
      var selected = body.value.slice(start, end);
      if (selected && selected.indexOf("\n") < 0) { wrap("`", "`", "code"); return; }
      var inner = selected || "code";
      var text = blockAround("```\n" + inner + "\n```\n");
      var at = text.indexOf(inner);
      replaceRange(start, end, text, at, at + inner.length);
    },
    table: function () {
      var start = body.selectionStart, end = body.selectionEnd;
      var text = blockAround("| Column | Column |\n| :-- | --: |\n| Text | 1 |\n");
      var at = text.indexOf("Column");
      replaceRange(start, end, text, at, at + "Column".length);
    },
    footnote: function () {
      // The mark at the cursor and its note at the end, as one insertion (one undo).
      var start = body.selectionStart;
      var existing = body.value.match(/\[\^(\d+)\]/g) || [];
      footnotes = 0;
      existing.forEach(function (m) { footnotes = Math.max(footnotes, parseInt(m.slice(2), 10)); });
      footnotes += 1;
      var mark = "[^" + footnotes + "]";
      var rest = body.value.slice(start).replace(/\s+$/, "");
      var note = "Footnote text.";
      var text = mark + rest + "\n\n" + mark + ": " + note + "\n";
      var at = text.length - note.length - 1;
      replaceRange(start, body.value.length, text, at, at + note.length);
    },
    image: function () {
      // Pictures come from the media library: the upload field below the form (media.js
      // puts their Markdown at the cursor).
      var input = document.getElementById("f-upload-file");
      if (input) { input.click(); } else { window.location.href = "/media"; }
    }
  };
  var toolbar = form.querySelector(".md-toolbar");
  if (toolbar) {
    toolbar.hidden = false;
    toolbar.addEventListener("click", function (event) {
      var button = event.target.closest("[data-md]");
      if (!button) { return; }
      actions[button.getAttribute("data-md")]();
    });
  }
  body.addEventListener("keydown", function (event) {
    if (!(event.ctrlKey || event.metaKey) || event.altKey || event.shiftKey) { return; }
    var key = event.key.toLowerCase();
    var action = { b: "bold", i: "italic", k: "link" }[key];
    if (action) { event.preventDefault(); actions[action](); }
  });

  // --- word count, reading time ---------------------------------------------------------
  var words = document.getElementById("word-count");
  var minutes = document.getElementById("reading-time");
  function count() {
    // Words have a letter or digit: Markdown's marks (#, -, >, |) are not words.
    var n = (body.value.match(/\S+/g) || []).filter(function (w) { return /[\p{L}\p{N}]/u.test(w); }).length;
    if (words) { words.textContent = n + (n === 1 ? " word" : " words"); }
    if (minutes) { minutes.textContent = Math.max(1, Math.ceil(n / 230)) + " min read"; }
  }
  body.addEventListener("input", count);

  // --- editor font ----------------------------------------------------------------------
  form.addEventListener("change", function (event) {
    if (event.target.name === "editor_font") {
      form.classList.toggle("desk-font-mono", event.target.value === "mono");
      form.classList.toggle("desk-font-sans", event.target.value !== "mono");
    }
  });

  // --- settings panel: open beside the text on a wide screen ---------------------------
  var wide = window.matchMedia("(min-width: 64rem)");
  var settings = document.getElementById("desk-settings");
  if (settings && !wide.matches && !settings.hasAttribute("data-errors")) { settings.open = false; }

  // --- focus mode -----------------------------------------------------------------------
  var focusButton = document.getElementById("desk-focus");
  function setFocus(on) {
    document.documentElement.classList.toggle("desk-focus", on);
    if (focusButton) { focusButton.setAttribute("aria-pressed", on ? "true" : "false"); }
  }
  if (focusButton) {
    focusButton.addEventListener("click", function () {
      setFocus(!document.documentElement.classList.contains("desk-focus"));
      body.focus();
    });
  }
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && document.documentElement.classList.contains("desk-focus")) { setFocus(false); }
  });

  // --- live preview ---------------------------------------------------------------------
  var section = document.getElementById("preview");
  var target = document.getElementById("preview-body");
  var previewButton = form.querySelector("[data-preview]");
  var previewTimer = null, previewAsked = 0;
  function preview() {
    var asked = ++previewAsked;
    var data = new FormData(form);
    return fetch(form.getAttribute("data-preview-url"), {
      method: "POST", body: data, credentials: "same-origin",
      headers: { "X-Requested-With": "fetch", "X-CSRF-Token": data.get("csrf_token") }
    }).then(function (response) {
      return response.text().then(function (text) { return { ok: response.ok, text: text }; });
    }).then(function (answer) {
      if (asked !== previewAsked) { return; }  // a later preview is on its way
      if (answer.ok) {
        // The server sanitised this HTML with the same pipeline that renders posts.
        target.innerHTML = answer.text;
      } else {
        target.textContent = answer.text || "The preview could not be made. Your text is still in the form.";
      }
      section.hidden = false;
      syncScroll();
    }).catch(function () {
      target.textContent = "The preview could not be loaded. Your text is still in the form.";
      section.hidden = false;
    });
  }
  function livePreview() { return wide.matches || form.classList.contains("desk-previewing"); }
  body.addEventListener("input", function () {
    if (!livePreview()) { return; }
    clearTimeout(previewTimer);
    previewTimer = setTimeout(preview, 500);
  });
  if (previewButton) {
    previewButton.addEventListener("click", function (event) {
      event.preventDefault();
      preview().then(function () { if (!wide.matches) { showTab("preview"); } });
    });
  }
  if (wide.matches && body.value.trim()) { preview(); }
  function syncScroll() {
    var range = body.scrollHeight - body.clientHeight;
    var ratio = range > 0 ? body.scrollTop / range : 0;
    var scroller = wide.matches ? section : document.scrollingElement;
    if (wide.matches) { section.scrollTop = ratio * (section.scrollHeight - section.clientHeight); }
    return scroller;
  }
  body.addEventListener("scroll", syncScroll);

  // Phones: a Write/Preview toggle instead of two columns.
  var tabs = form.querySelector(".desk-tabs");
  var tabWrite = document.getElementById("tab-write");
  var tabPreview = document.getElementById("tab-preview");
  function showTab(which) {
    var previewing = which === "preview";
    form.classList.toggle("desk-previewing", previewing);
    tabWrite.setAttribute("aria-pressed", previewing ? "false" : "true");
    tabPreview.setAttribute("aria-pressed", previewing ? "true" : "false");
    section.hidden = !previewing;
  }
  if (tabs) {
    // Only where text and preview cannot sit side by side.
    tabs.hidden = wide.matches;
    wide.addEventListener("change", function () {
      tabs.hidden = wide.matches;
      if (wide.matches) { form.classList.remove("desk-previewing"); }
    });
    tabWrite.addEventListener("click", function () { showTab("write"); body.focus(); });
    tabPreview.addEventListener("click", function () { preview(); showTab("preview"); });
  }

  // --- leaving with unsaved changes -----------------------------------------------------
  var fields = ["title", "body", "summary", "tags"];
  function snapshotText() { return fields.map(value).join("\u0000"); }
  var savedText = snapshotText();
  var submitting = false;
  form.addEventListener("submit", function (event) {
    if (event.submitter && event.submitter.hasAttribute("data-preview")) { return; }
    submitting = true;
  });
  window.addEventListener("beforeunload", function (event) {
    if (submitting || snapshotText() === savedText) { return; }
    event.preventDefault();
    event.returnValue = "";
  });

  // --- autosave: to the server a few seconds after typing stops (and at least every 30 s
  // while typing), and to this browser's local storage at once ----------------------------
  if (!window.fetch) { return; }
  var key = form.getAttribute("data-local-key");
  var idleTimer = null, lastSent = Date.now(), dirty = false, inFlight = false;
  function snapshot() {
    var data = { savedAt: new Date().toISOString() };
    fields.forEach(function (name) { data[name] = value(name); });
    return data;
  }
  function storeLocal() {
    try { window.localStorage.setItem(key, JSON.stringify(snapshot())); } catch (e) { /* storage full or off */ }
  }
  function readLocal() {
    try { return JSON.parse(window.localStorage.getItem(key) || "null"); } catch (e) { return null; }
  }
  function dropLocal() {
    try { window.localStorage.removeItem(key); } catch (e) { /* ignore */ }
  }
  function send() {
    if (inFlight || !dirty) { return; }
    if (!value("title").trim() && !value("body").trim()) { return; }
    inFlight = true; dirty = false; lastSent = Date.now();
    var sentText = snapshotText();
    var data = new FormData();
    fields.forEach(function (name) { data.append(name, value(name)); });
    var token = value("csrf_token");
    data.append("csrf_token", token);
    fetch(form.getAttribute("data-autosave-url"), {
      method: "POST", body: data, credentials: "same-origin",
      headers: { "X-Requested-With": "fetch", "X-CSRF-Token": token, "Accept": "application/json" }
    }).then(function (response) {
      return response.json().then(function (answer) { return { ok: response.ok, body: answer }; });
    }).then(function (result) {
      if (!result.ok) {
        var message = result.body && result.body.error ? result.body.error.message : "the server refused it";
        throw new Error(message);
      }
      var answer = result.body;
      if (answer.edit_url) {
        // The draft now exists: later saves and autosaves go to it.
        form.setAttribute("action", answer.edit_url);
        form.setAttribute("data-autosave-url", answer.autosave_url);
        form.elements.editing.value = answer.slug;
        form.elements.base_revision.value = answer.revision;
        dropLocal(); key = "pyproject-draft-" + answer.id; storeLocal();
        form.setAttribute("data-local-key", key);
        if (window.history && history.replaceState) { history.replaceState(null, "", answer.edit_url); }
      }
      // Kept on the server: leaving loses nothing (the page offers it back).
      savedText = sentText;
      say("Saved at " + answer.saved_at);
    }).catch(function (error) {
      dirty = true;
      say("Not saved to the server (" + error.message + "). A copy is kept in this browser.");
    }).then(function () { inFlight = false; });
  }
  form.addEventListener("input", function (event) {
    if (event.target.name === "editor_font" || event.target.name === "toc_mode") { return; }
    dirty = true;
    storeLocal();
    clearTimeout(idleTimer);
    idleTimer = setTimeout(send, 3000);
    if (Date.now() - lastSent > 30000) { send(); }
  });
  form.addEventListener("submit", function (event) {
    if (event.submitter && event.submitter.hasAttribute("data-preview")) { return; }
    clearTimeout(idleTimer);
    dropLocal();
  });

  // --- one recovery banner ----------------------------------------------------------------
  // The server's autosave is in the banner already; this browser's copy replaces it there
  // when the copy is newer, so the author is offered one thing: the newest.
  var banner = document.getElementById("recovery");
  var local = readLocal();
  if (!banner || !local || (local.body === value("body") && local.title === value("title"))) { return; }
  var serverAt = banner.getAttribute("data-autosave-at");
  var localAt = new Date(local.savedAt);
  if (serverAt && !(localAt > new Date(serverAt))) { return; }  // the server's is newer
  var serverPart = document.getElementById("recovery-server");
  var serverDiff = document.getElementById("recovery-diff-server");
  var localPart = document.getElementById("local-copy");
  var localDiff = document.getElementById("recovery-diff-local");
  if (serverPart) { serverPart.hidden = true; }
  if (serverDiff) { serverDiff.hidden = true; }
  localPart.hidden = false;
  banner.hidden = false;
  var time = document.getElementById("local-copy-time");
  time.setAttribute("datetime", local.savedAt);
  time.textContent = isNaN(localAt) ? "an unknown time" : localAt.toLocaleString(undefined, { day: "numeric", month: "long", hour: "2-digit", minute: "2-digit" });
  if (serverAt) { document.getElementById("local-copy-newer").hidden = false; }
  var pre = document.getElementById("local-diff");
  showDiff(pre, value("body"), local.body || "");
  localDiff.hidden = false;
  document.getElementById("local-restore").addEventListener("click", function () {
    fields.forEach(function (name) {
      if (form.elements[name] && local[name] !== undefined) { form.elements[name].value = local[name]; }
    });
    banner.hidden = true;
    dirty = true;
    count();
    say("Restored the copy kept in this browser. Save to keep it.");
  });
  document.getElementById("local-discard").addEventListener("click", function () {
    dropLocal();
    banner.hidden = true;
  });

  // The copy's difference from the saved text: what differs between their common start
  // and common end, as deleted and inserted text.
  function showDiff(into, before, after) {
    var start = 0;
    while (start < before.length && start < after.length && before[start] === after[start]) { start++; }
    var endA = before.length, endB = after.length;
    while (endA > start && endB > start && before[endA - 1] === after[endB - 1]) { endA--; endB--; }
    var context = 80;
    into.textContent = "";
    into.appendChild(document.createTextNode((start > context ? "…" : "") + before.slice(Math.max(0, start - context), start)));
    if (endA > start) { var del = document.createElement("del"); del.textContent = before.slice(start, endA); into.appendChild(del); }
    if (endB > start) { var ins = document.createElement("ins"); ins.textContent = after.slice(start, endB); into.appendChild(ins); }
    into.appendChild(document.createTextNode(after.slice(endB, endB + context) + (after.length - endB > context ? "…" : "")));
  }
})();
