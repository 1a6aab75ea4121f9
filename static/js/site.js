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
