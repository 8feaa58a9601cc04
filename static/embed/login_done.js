/* The popup login's last page (templates/embed/login_done.html): hand the one-time code to
 * the desk iframe that opened this window, addressed to the desk's own origin only. */
(function () {
  "use strict";
  var card = document.getElementById("handoff");
  var status = document.getElementById("handoff-status");
  if (!window.opener) {
    status.textContent = "You are logged in. Close this window and go back to the CRM.";
    return;
  }
  // targetOrigin is this very origin: only the desk's own iframe can receive the code.
  window.opener.postMessage(
    { v: card.dataset.protocol, type: "login_code", code: card.dataset.code }, window.location.origin);
  status.textContent = "Done: this window closes by itself.";
  window.close();
})();
