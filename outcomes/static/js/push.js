// Notifications on this phone (web push): where the browser can show them, the settings
// page's two forms subscribe this browser with the clinic's public key and send the
// subscription to the server, or unsubscribe it and tell the server. The forms carry the
// CSRF token; the server answers in JSON and leaves a message for the page reloaded after.
(function () {
  "use strict";
  var subscribeForm = document.getElementById("push-subscribe");
  var removeForm = document.getElementById("push-remove");
  var controls = document.getElementById("push-controls");
  var unavailable = document.getElementById("push-unavailable");
  var state = document.getElementById("push-state");
  var status = document.getElementById("push-status");
  if (!subscribeForm || !removeForm) { return; }
  if (!("serviceWorker" in navigator) || !("PushManager" in window) ||
      !("Notification" in window) || !window.isSecureContext) {
    return;  // the page's sentence stays: not available here, the other channels still work
  }

  var scope = subscribeForm.dataset.scope;

  // The VAPID public key comes as base64url; the browser takes its bytes.
  function keyBytes(base64url) {
    var base64 = base64url.replace(/-/g, "+").replace(/_/g, "/");
    var raw = window.atob(base64 + "=".repeat((4 - base64.length % 4) % 4));
    var bytes = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) { bytes[i] = raw.charCodeAt(i); }
    return bytes;
  }

  function say(message) { status.textContent = message; }

  function show(subscribed) {
    state.textContent = subscribed
      ? "Notifications are on for this phone."
      : "Let this phone show a notification when a questionnaire is ready.";
    subscribeForm.hidden = subscribed;
    removeForm.hidden = !subscribed;
  }

  function busy(form, on) {
    form.querySelector("button").disabled = on;
  }

  // Sends a form to the server; on success the page is reloaded to show the saved settings.
  function send(form) {
    return fetch(form.action, {method: "POST", body: new FormData(form),
                               credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (response) {
        var json = (response.headers.get("Content-Type") || "").indexOf("application/json") === 0;
        if (!json) {
          throw new Error("Your session has ended: reload the page and sign in again.");
        }
        return response.json().then(function (answer) {
          if (!response.ok) { throw new Error(answer.error); }
          window.location.reload();
        });
      });
  }

  function registration() {
    return navigator.serviceWorker.register(subscribeForm.dataset.worker, {scope: scope})
      .then(function () { return navigator.serviceWorker.ready; });
  }

  subscribeForm.addEventListener("submit", function (event) {
    event.preventDefault();
    busy(subscribeForm, true);
    say("Turning on notifications…");
    Notification.requestPermission().then(function (permission) {
      if (permission !== "granted") {
        throw new Error("This phone's browser does not allow notifications from Outcomes. " +
                        "Allow them in the browser's settings, or choose email or text messages.");
      }
      return registration();
    }).then(function (ready) {
      return ready.pushManager.subscribe({
        userVisibleOnly: true, applicationServerKey: keyBytes(subscribeForm.dataset.key)});
    }).then(function (subscription) {
      subscribeForm.elements.subscription.value = JSON.stringify(subscription.toJSON());
      return send(subscribeForm);
    }).catch(function (error) {
      say(error.message || "Notifications could not be turned on. Try again later.");
      busy(subscribeForm, false);
    });
  });

  removeForm.addEventListener("submit", function (event) {
    event.preventDefault();
    busy(removeForm, true);
    navigator.serviceWorker.getRegistration(scope).then(function (found) {
      return found ? found.pushManager.getSubscription() : null;
    }).then(function (subscription) {
      if (!subscription) {
        show(false);
        throw new Error("Notifications were already off for this phone.");
      }
      removeForm.elements.endpoint.value = subscription.endpoint;
      return subscription.unsubscribe().then(function () { return send(removeForm); });
    }).catch(function (error) {
      say(error.message || "Notifications could not be turned off. Try again later.");
      busy(removeForm, false);
    });
  });

  navigator.serviceWorker.getRegistration(scope).then(function (found) {
    return found ? found.pushManager.getSubscription() : null;
  }).then(function (subscription) {
    show(Boolean(subscription));
    unavailable.hidden = true;
    controls.hidden = false;
  });
})();
