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
