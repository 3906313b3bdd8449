// A one-time link (an invitation, a password reset, a staff invitation, a new contact
// address's confirmation, a reminder) carries its token after "#": browsers never send that
// part to the server, so it stays out of every access log and Referer. Every link page loads
// this script, which takes the token out of the address bar and the history entry and puts it
// in the page's form. What differs by page is said by the <script> element's data attributes:
//   data-form        the id of the form whose "token" field takes the token;
//   data-post        posts the form at once, where posting only checks the token and the
//                    person's next step uses it. Without it the person's tap posts the form:
//                    a reminder's link must not be used by opening it (mail scanners open
//                    links, some with scripts);
//   data-sign-in     the form is on the page only once the person is signed in: until then
//                    the token waits in this tab (sessionStorage, gone when the tab closes)
//                    and is put in the form on their way back from signing in.
(function () {
  var options = document.currentScript.dataset;
  var KEY = "outcomes-link-" + options.form;
  var token = window.location.hash.slice(1);
  if (token) { history.replaceState(null, "", window.location.pathname); }
  var form = document.getElementById(options.form);
  if (!form) {
    if (token && "signIn" in options) { window.sessionStorage.setItem(KEY, token); }
    return;
  }
  if ("signIn" in options) {
    token = token || window.sessionStorage.getItem(KEY);
    window.sessionStorage.removeItem(KEY);
  }
  // A token already in the form is the one just posted, shown again with its error.
  if (!token || form.elements.token.value) { return; }
  form.elements.token.value = token;
  if ("post" in options) { form.submit(); }
})();
