// A link confirming a new contact address carries its token after "#": browsers never send
// that part to the server, so it stays out of every access log. This takes it out of the
// address bar and the history entry and posts it. Nobody signed in yet: the token waits in
// this tab (sessionStorage, gone when the tab closes) until the patient is back from signing
// in, and is posted then.
(function () {
  var KEY = "outcomes-contact-link";
  var token = window.location.hash.slice(1);
  if (token) { history.replaceState(null, "", window.location.pathname); }
  var form = document.getElementById("confirm-contact");
  if (!form) {
    if (token) { window.sessionStorage.setItem(KEY, token); }
    return;
  }
  token = token || window.sessionStorage.getItem(KEY);
  window.sessionStorage.removeItem(KEY);
  if (!token || form.elements.token.value) { return; }
  form.elements.token.value = token;
  form.submit();
})();
