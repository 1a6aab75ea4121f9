// Enhancements only: every page works without this file.
(function () {
  "use strict";

  // Ask before a form marked data-confirm (delete) is sent.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
    }
  });

  // Preview in place: send the body to /posts/preview and show the HTML it gives back.
  var previewButton = document.querySelector("[data-preview]");
  var form = document.getElementById("post-form");
  if (previewButton && form) {
    previewButton.addEventListener("click", function (event) {
      event.preventDefault();
      var data = new FormData(form);
      var section = document.getElementById("preview");
      var target = document.getElementById("preview-body");
      fetch(previewButton.getAttribute("formaction"), {
        method: "POST",
        body: data,
        credentials: "same-origin",
        headers: { "X-Requested-With": "fetch", "X-CSRF-Token": data.get("csrf_token") }
      }).then(function (response) {
        if (!response.ok) { throw new Error("status " + response.status); }
        return response.text();
      }).then(function (html) {
        // The server sanitised this HTML with the same pipeline that renders posts.
        target.innerHTML = html;
        section.hidden = false;
        section.scrollIntoView({ behavior: "smooth", block: "start" });
      }).catch(function () {
        target.textContent = "The preview could not be loaded. Your text is still in the form.";
        section.hidden = false;
      });
    });
  }

  // A small Markdown toolbar for the editor.
  var toolbar = document.querySelector(".md-toolbar");
  var body = document.getElementById("f-body");
  if (toolbar && body) {
    toolbar.hidden = false;
    var wrap = {
      bold: ["**", "**", "bold text"],
      italic: ["_", "_", "italic text"],
      heading: ["\n## ", "\n", "Heading"],
      link: ["[", "](https://)", "link text"],
      code: ["\n```\n", "\n```\n", "code"],
      list: ["\n- ", "\n", "item"]
    };
    toolbar.addEventListener("click", function (event) {
      var button = event.target.closest("[data-md]");
      if (!button) { return; }
      var parts = wrap[button.getAttribute("data-md")];
      var start = body.selectionStart, end = body.selectionEnd;
      var selected = body.value.slice(start, end) || parts[2];
      body.setRangeText(parts[0] + selected + parts[1], start, end, "select");
      body.focus();
    });
  }

  // Relative dates stay current while the page is open.
  var units = [["year", 31536000], ["month", 2592000], ["week", 604800], ["day", 86400], ["hour", 3600], ["minute", 60]];
  function relative(date) {
    var seconds = Math.round((Date.now() - date.getTime()) / 1000);
    var future = seconds < 0;
    seconds = Math.abs(seconds);
    for (var i = 0; i < units.length; i++) {
      if (seconds >= units[i][1]) {
        var n = Math.floor(seconds / units[i][1]);
        var text = n + " " + units[i][0] + (n === 1 ? "" : "s");
        return future ? "in " + text : text + " ago";
      }
    }
    return future ? "in a moment" : "just now";
  }
  document.querySelectorAll(".post-meta time[datetime]").forEach(function (el) {
    var date = new Date(el.getAttribute("datetime"));
    if (!isNaN(date)) { el.textContent = relative(date); }
  });
})();

// Autosave: to the server a few seconds after typing stops (and at least every 30 s while
// typing), and to this browser's local storage at once, so a lost connection loses nothing.
(function () {
  "use strict";
  var form = document.getElementById("post-form");
  if (!form || !window.fetch) { return; }
  var status = document.getElementById("autosave-status");
  var fields = ["title", "body", "summary", "tags"];
  var key = form.getAttribute("data-local-key");
  var idleTimer = null, lastSent = Date.now(), dirty = false, inFlight = false;

  function value(name) { return form.elements[name] ? form.elements[name].value : ""; }
  function say(text) { if (status) { status.textContent = text; } }
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
    var data = new FormData();
    fields.forEach(function (name) { data.append(name, value(name)); });
    var token = value("csrf_token");
    data.append("csrf_token", token);
    fetch(form.getAttribute("data-autosave-url"), {
      method: "POST", body: data, credentials: "same-origin",
      headers: { "X-Requested-With": "fetch", "X-CSRF-Token": token, "Accept": "application/json" }
    }).then(function (response) {
      return response.json().then(function (body) { return { ok: response.ok, body: body }; });
    }).then(function (result) {
      if (!result.ok) {
        var message = result.body && result.body.error ? result.body.error.message : "the server refused it";
        throw new Error(message);
      }
      var body = result.body;
      if (body.edit_url) {
        // The draft now exists: later saves and autosaves go to it.
        form.setAttribute("action", body.edit_url);
        form.setAttribute("data-autosave-url", body.autosave_url);
        form.elements.editing.value = body.slug;
        form.elements.base_revision.value = body.revision;
        var newKey = "pyproject-draft-" + body.id;
        dropLocal(); key = newKey; storeLocal();
        form.setAttribute("data-local-key", key);
        if (window.history && history.replaceState) { history.replaceState(null, "", body.edit_url); }
      }
      say("Saved at " + body.saved_at);
    }).catch(function (error) {
      dirty = true;
      say("Not saved to the server (" + error.message + "). A copy is kept in this browser.");
    }).then(function () { inFlight = false; });
  }

  form.addEventListener("input", function () {
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

  var local = readLocal();
  var banner = document.getElementById("local-copy");
  if (local && banner && (local.body !== value("body") || local.title !== value("title"))) {
    banner.hidden = false;
    document.getElementById("local-restore").addEventListener("click", function () {
      fields.forEach(function (name) { if (form.elements[name] && local[name] !== undefined) { form.elements[name].value = local[name]; } });
      banner.hidden = true;
      dirty = true;
      say("Restored the copy kept in this browser. Save to keep it.");
    });
    document.getElementById("local-discard").addEventListener("click", function () {
      dropLocal();
      banner.hidden = true;
    });
  }
})();
