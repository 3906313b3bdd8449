// A reminder's link carries its token after "#": browsers never send that part to the server,
// so it stays out of every access log and Referer. This puts it in the form, after taking it
// out of the address bar and the history entry. It does not post the form: opening a link
// must not use it (mail scanners open links, some with scripts); the patient's tap does.
(function () {
  var form = document.getElementById("questionnaire-link");
  var token = window.location.hash.slice(1);
  if (!form || !token) { return; }
  history.replaceState(null, "", window.location.pathname);
  form.elements.token.value = token;
})();
