// The service worker of the patient's pages (served at /me/sw.js, so its scope is /me/): it
// shows each web-push message as a notification and opens its link when tapped. What
// arrives, once the browser has decrypted it (outcomes/channels/webpush.py):
// {"title": subject, "body": body, "url": link, "sender": the clinic's sender name}.
"use strict";

self.addEventListener("push", function (event) {
  var message = {};
  try {
    message = event.data ? event.data.json() : {};
  } catch (error) {
    message = {};  // not ours: still shown, with the plain wording below
  }
  event.waitUntil(self.registration.showNotification(message.sender || "Outcomes", {
    body: message.body || "Open Outcomes.",
    data: {url: message.url},
  }));
});

// Only a page of this site opens: a link elsewhere would be no message of ours.
function pageToOpen(url) {
  try {
    var target = new URL(url, self.location.origin);
    if (target.origin === self.location.origin) { return target.href; }
  } catch (error) {
    // an unreadable link: the patient's home instead
  }
  return new URL(self.registration.scope).href;
}

self.addEventListener("notificationclick", function (event) {
  event.notification.close();
  var url = pageToOpen((event.notification.data || {}).url);
  event.waitUntil(self.clients.matchAll({type: "window", includeUncontrolled: true})
    .then(function (windows) {
      for (var i = 0; i < windows.length; i++) {
        if (windows[i].url === url && "focus" in windows[i]) { return windows[i].focus(); }
      }
      return self.clients.openWindow(url);
    }));
});
