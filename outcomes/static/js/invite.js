// An invitation or password-reset link carries its token after "#": browsers never send that
// part to the server, so it stays out of every access log. This posts it, after taking it out
// of the address bar and the history entry. Posting it only checks it: the person's next form
// (their new password) is what uses it.
(function () {
  var form = document.getElementById("open-invitation") ||
    document.getElementById("open-password-reset");
  var token = window.location.hash.slice(1);
  if (!form || !token) { return; }
  history.replaceState(null, "", window.location.pathname);
  form.elements.token.value = token;
  form.submit();
})();
