// An invitation link carries its token after "#": browsers never send that part to the
// server, so it stays out of every access log. This posts it, after taking it out of the
// address bar and the history entry.
(function () {
  var form = document.getElementById("open-invitation");
  var token = window.location.hash.slice(1);
  if (!form || !token) { return; }
  history.replaceState(null, "", window.location.pathname);
  form.elements.token.value = token;
  form.submit();
})();
