// Passkeys (#20): adds a passkey at /account/security and signs in with one at /login.
// Both pages work without this script (the password form; a note that passkeys need it):
// here the browser is asked (navigator.credentials), and its answer is posted in the
// page's own form, as JSON in a hidden field, with the form's CSRF token.
(function () {
  "use strict";

  function supported() {
    return Boolean(window.PublicKeyCredential && navigator.credentials && window.fetch);
  }

  function toBytes(text) {
    var base64 = text.replace(/-/g, "+").replace(/_/g, "/");
    while (base64.length % 4) base64 += "=";
    var raw = atob(base64);
    var bytes = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
    return bytes.buffer;
  }

  function toText(buffer) {
    if (!buffer) return null;
    var bytes = new Uint8Array(buffer);
    var raw = "";
    for (var i = 0; i < bytes.length; i++) raw += String.fromCharCode(bytes[i]);
    return btoa(raw).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function options(form) {
    var token = form.querySelector('input[name="csrf_token"]').value;
    return fetch(form.getAttribute("data-options-url"), {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRF-Token": token, "Accept": "application/json" }
    }).then(function (response) {
      if (!response.ok) throw new Error("The site did not answer (" + response.status + ").");
      return response.json();
    });
  }

  function say(form, message) {
    var status = form.querySelector("[data-passkey-status]");
    if (status) status.textContent = message;
  }

  function send(form, credential) {
    form.querySelector('input[name="credential"]').value = JSON.stringify(credential);
    form.submit();
  }

  function register(form) {
    var button = form.querySelector("[data-needs-passkeys]");
    button.disabled = false;
    say(form, "");
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      if (!form.querySelector('input[name="name"]').value.trim()) {
        form.submit(); // the server says what is missing, beside the field
        return;
      }
      button.disabled = true;
      say(form, "Follow your browser's steps to make the passkey…");
      options(form).then(function (publicKey) {
        publicKey.challenge = toBytes(publicKey.challenge);
        publicKey.user.id = toBytes(publicKey.user.id);
        (publicKey.excludeCredentials || []).forEach(function (item) { item.id = toBytes(item.id); });
        return navigator.credentials.create({ publicKey: publicKey });
      }).then(function (made) {
        send(form, {
          id: made.id,
          rawId: toText(made.rawId),
          type: made.type,
          response: {
            clientDataJSON: toText(made.response.clientDataJSON),
            attestationObject: toText(made.response.attestationObject),
            transports: made.response.getTransports ? made.response.getTransports() : []
          },
          clientExtensionResults: made.getClientExtensionResults ? made.getClientExtensionResults() : {}
        });
      }).catch(function (error) {
        button.disabled = false;
        say(form, "No passkey was added: " + error.message);
      });
    });
  }

  function signIn(form) {
    form.hidden = false;
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var button = form.querySelector("button");
      button.disabled = true;
      say(form, "Follow your browser's steps to use your passkey…");
      options(form).then(function (publicKey) {
        publicKey.challenge = toBytes(publicKey.challenge);
        (publicKey.allowCredentials || []).forEach(function (item) { item.id = toBytes(item.id); });
        return navigator.credentials.get({ publicKey: publicKey });
      }).then(function (used) {
        send(form, {
          id: used.id,
          rawId: toText(used.rawId),
          type: used.type,
          response: {
            clientDataJSON: toText(used.response.clientDataJSON),
            authenticatorData: toText(used.response.authenticatorData),
            signature: toText(used.response.signature),
            userHandle: toText(used.response.userHandle)
          },
          clientExtensionResults: used.getClientExtensionResults ? used.getClientExtensionResults() : {}
        });
      }).catch(function (error) {
        button.disabled = false;
        say(form, "No passkey was used: " + error.message);
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    if (!supported()) return;
    var adding = document.getElementById("passkey-form");
    if (adding) register(adding);
    var signing = document.getElementById("passkey-sign-in");
    if (signing) signIn(signing);
  });
})();
