// Passkeys (WebAuthn): adding one on the "Add a passkey" page, and signing in with one at the
// second step, beside the code (outcomes/auth/passkeys.py). The server's options come as JSON
// with binary values in base64url; the browser wants ArrayBuffers, and its answer goes back
// as JSON text in a form field, with the page's CSRF token.
//
// Progressive: everything passkey-related is hidden in the page ([data-passkey-supported])
// and shown here only where the browser has WebAuthn; without script, or without WebAuthn,
// codes work as before.
(function () {
  "use strict";

  var supported = Boolean(window.PublicKeyCredential && navigator.credentials &&
                          window.fetch && window.URLSearchParams);
  document.querySelectorAll("[data-passkey-supported]").forEach(function (element) {
    element.hidden = !supported;
  });
  document.querySelectorAll("[data-passkey-unsupported]").forEach(function (element) {
    element.hidden = supported;
  });
  if (!supported) { return; }

  var CANCELLED = "The passkey was not used: it was cancelled, or took too long. Try again.";
  var FAILED = "Something went wrong. Reload the page and try again.";

  function toBuffer(base64url) {
    var base64 = base64url.replace(/-/g, "+").replace(/_/g, "/");
    var binary = window.atob(base64 + "===".slice((base64.length + 3) % 4));
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i += 1) { bytes[i] = binary.charCodeAt(i); }
    return bytes.buffer;
  }

  function toBase64url(buffer) {
    var bytes = new Uint8Array(buffer);
    var binary = "";
    for (var i = 0; i < bytes.length; i += 1) { binary += String.fromCharCode(bytes[i]); }
    return window.btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function withBuffers(descriptors) {
    return (descriptors || []).map(function (descriptor) {
      return Object.assign({}, descriptor, {id: toBuffer(descriptor.id)});
    });
  }

  // An answer for the script is JSON; a redirect (to confirm it is you, or to sign in again
  // when the wait ran out) is followed by the whole page.
  function post(url, fields) {
    return window.fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: {"Accept": "application/json"},
      body: new URLSearchParams(fields)
    }).then(function (response) {
      if (response.redirected) {
        window.location.assign(response.url);
        return new Promise(function () {});  // the page is going away
      }
      return response.json().catch(function () { return {error: FAILED}; })
        .then(function (body) {
          if (!response.ok) { throw new Error(body.error || FAILED); }
          return body;
        });
    });
  }

  function credentialJSON(credential) {
    var response = credential.response;
    var json = {
      id: credential.id,
      rawId: toBase64url(credential.rawId),
      type: credential.type,
      authenticatorAttachment: credential.authenticatorAttachment || undefined,
      clientExtensionResults: credential.getClientExtensionResults(),
      response: {clientDataJSON: toBase64url(response.clientDataJSON)}
    };
    if (response.attestationObject) {
      json.response.attestationObject = toBase64url(response.attestationObject);
      json.response.transports = response.getTransports ? response.getTransports() : [];
    } else {
      json.response.authenticatorData = toBase64url(response.authenticatorData);
      json.response.signature = toBase64url(response.signature);
      if (response.userHandle) { json.response.userHandle = toBase64url(response.userHandle); }
    }
    return JSON.stringify(json);
  }

  function explain(error) {
    if (error && error.name === "NotAllowedError") { return CANCELLED; }
    if (error && error.name === "InvalidStateError") {
      return "This device or key already holds a passkey for your account.";
    }
    return (error && error.message) || FAILED;
  }

  // Runs ``ceremony`` when ``form`` is sent, showing what went wrong in its error line.
  function handle(form, ceremony) {
    var message = form.querySelector("[data-passkey-error]");
    var button = form.querySelector("button[type=submit]");
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      message.hidden = true;
      button.disabled = true;
      ceremony(form, form.elements.csrf_token.value).then(function (body) {
        window.location.assign(body.redirect);
      }).catch(function (error) {
        message.textContent = explain(error);
        message.hidden = false;
        button.disabled = false;
      });
    });
  }

  document.querySelectorAll("form[data-passkey-sign-in]").forEach(function (form) {
    handle(form, function (form, csrf) {
      return post(form.action, {csrf_token: csrf}).then(function (options) {
        options.challenge = toBuffer(options.challenge);
        options.allowCredentials = withBuffers(options.allowCredentials);
        return navigator.credentials.get({publicKey: options});
      }).then(function (credential) {
        return post(form.dataset.verify, {csrf_token: csrf,
                                          credential: credentialJSON(credential)});
      });
    });
  });

  document.querySelectorAll("form[data-passkey-register]").forEach(function (form) {
    handle(form, function (form, csrf) {
      return post(form.action, {csrf_token: csrf, name: form.elements.name.value})
        .then(function (options) {
          options.challenge = toBuffer(options.challenge);
          options.user.id = toBuffer(options.user.id);
          options.excludeCredentials = withBuffers(options.excludeCredentials);
          return navigator.credentials.create({publicKey: options});
        }).then(function (credential) {
          return post(form.dataset.add, {csrf_token: csrf,
                                         credential: credentialJSON(credential)});
        });
    });
  });
})();
