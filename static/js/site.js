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

  // Code blocks (#23): their language above them, and a button that copies their text.
  document.querySelectorAll(".post-body [role=region][aria-label^='Code']").forEach(function (region) {
    var bar = document.createElement("div");
    bar.className = "code-bar";
    var label = region.getAttribute("aria-label").replace(/^Code:? ?/, "");
    if (label) {
      var name = document.createElement("span");
      name.textContent = label;
      bar.appendChild(name);
    }
    if (navigator.clipboard) {
      var button = document.createElement("button");
      button.type = "button";
      button.className = "secondary";
      button.textContent = "Copy";
      button.setAttribute("aria-label", "Copy the code" + (label ? " (" + label + ")" : ""));
      button.addEventListener("click", function () {
        var code = region.querySelector("pre") || region;
        navigator.clipboard.writeText(code.innerText).then(function () {
          button.textContent = "Copied";
          setTimeout(function () { button.textContent = "Copy"; }, 2000);
        }, function () { button.textContent = "Copy failed"; });
      });
      bar.appendChild(button);
    }
    if (bar.childNodes.length) { region.parentNode.insertBefore(bar, region); }
  });

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
  // Dates are dates ("3 December 2026"); within a week the relative form is added (#23).
  document.querySelectorAll(".post-meta time[datetime]").forEach(function (el) {
    var date = new Date(el.getAttribute("datetime"));
    if (isNaN(date) || Math.abs(Date.now() - date.getTime()) > 604800000) { return; }
    var shown = el.getAttribute("data-date") || el.textContent;
    el.setAttribute("data-date", shown);
    el.textContent = shown + " (" + relative(date) + ")";
  });
})();
