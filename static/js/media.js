// Pictures in the editor (#15): upload with a progress bar per file, by the form, by dropping
// files onto the body or pasting them, and put their Markdown where the cursor is.
// Without this script the upload form still works: it opens the media library in a new tab.
(function () {
  "use strict";
  var form = document.getElementById("editor-upload");
  if (!form || !window.FormData || !window.XMLHttpRequest) return;
  var body = document.getElementById(form.getAttribute("data-body"));
  var list = document.getElementById("upload-progress");
  var fileInput = form.querySelector('input[type="file"]');
  var altInput = form.querySelector('input[name="alt"]');
  var token = form.querySelector('input[name="csrf_token"]').value;

  function insertAtCursor(text) {
    if (!body) return;
    var start = body.selectionStart, end = body.selectionEnd;
    var before = body.value.slice(0, start);
    var gap = before && !/\n\n$/.test(before) ? (/\n$/.test(before) ? "\n" : "\n\n") : "";
    body.setRangeText(gap + text + "\n\n", start, end, "end");
    body.dispatchEvent(new Event("input", { bubbles: true }));
    body.focus();
  }

  function row(name) {
    var item = document.createElement("li");
    var label = document.createElement("span");
    label.textContent = name + " ";
    var bar = document.createElement("progress");
    bar.max = 100;
    bar.value = 0;
    bar.setAttribute("aria-label", "Uploading " + name);
    var note = document.createElement("span");
    note.className = "upload-note";
    item.appendChild(label);
    item.appendChild(bar);
    item.appendChild(note);
    list.appendChild(item);
    return { item: item, bar: bar, note: note };
  }

  function upload(file) {
    var shown = row(file.name || "pasted picture");
    var data = new FormData();
    data.append("csrf_token", token);
    data.append("alt", altInput ? altInput.value : "");
    data.append("file", file, file.name || "pasted.png");
    var request = new XMLHttpRequest();
    request.open("POST", form.getAttribute("action"));
    request.setRequestHeader("Accept", "application/json");
    request.setRequestHeader("X-CSRF-Token", token);
    request.upload.addEventListener("progress", function (event) {
      if (event.lengthComputable) shown.bar.value = Math.round((100 * event.loaded) / event.total);
    });
    request.addEventListener("load", function () {
      var answer = null;
      try { answer = JSON.parse(request.responseText); } catch (e) { answer = null; }
      if (request.status === 200 && answer && answer.files) {
        shown.bar.value = 100;
        answer.files.forEach(function (picture) {
          insertAtCursor(picture.markdown);
          if (!picture.alt) {
            shown.note.className = "upload-note warning";
            shown.note.textContent = "Inserted without alt text: describe the picture between the brackets.";
          } else {
            shown.note.textContent = "Inserted.";
          }
        });
      } else {
        shown.item.className = "error";
        shown.note.textContent = answer && answer.error ? answer.error.message : "The upload failed (" + request.status + ").";
      }
    });
    request.addEventListener("error", function () {
      shown.item.className = "error";
      shown.note.textContent = "The upload failed: the connection was lost.";
    });
    request.send(data);
  }

  function uploadAll(files) {
    for (var i = 0; i < files.length; i++) {
      if (/^image\//.test(files[i].type) || !files[i].type) upload(files[i]);
    }
  }

  // A picture without alt text, ![](url), is pointed out while the author writes.
  var missingAlt = document.getElementById("missing-alt");
  function checkAlt() {
    if (missingAlt && body) missingAlt.hidden = !/!\[\s*\]\(/.test(body.value);
  }
  if (body) body.addEventListener("input", checkAlt);
  checkAlt();

  form.removeAttribute("target");
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (fileInput.files.length) uploadAll(fileInput.files);
    fileInput.value = "";
  });
  if (!body) return;
  body.addEventListener("dragover", function (event) {
    if (event.dataTransfer && Array.prototype.indexOf.call(event.dataTransfer.types, "Files") >= 0) {
      event.preventDefault();
      body.classList.add("dropping");
    }
  });
  body.addEventListener("dragleave", function () { body.classList.remove("dropping"); });
  body.addEventListener("drop", function (event) {
    body.classList.remove("dropping");
    if (event.dataTransfer && event.dataTransfer.files.length) {
      event.preventDefault();
      uploadAll(event.dataTransfer.files);
    }
  });
  body.addEventListener("paste", function (event) {
    var files = event.clipboardData && event.clipboardData.files;
    if (files && files.length) {
      event.preventDefault();
      uploadAll(files);
    }
  });
})();
