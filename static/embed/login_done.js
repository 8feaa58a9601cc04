/* The popup login's last page (templates/embed/login_done.html): hand the one-time code to
 * the desk iframe that opened this window, addressed to the desk's own origin only. */
(function () {
  "use strict";
  function handOff() {
    // The page's words (static/board/i18n.js, which may be deferred: hence after parsing),
    // or English where the page has none.
    var _ = (window.DeskI18n && window.DeskI18n.gettext) || function (text) { return text; };
    var card = document.getElementById("handoff");
    var status = document.getElementById("handoff-status");
    if (!window.opener) {
      status.textContent = _("You are logged in. Close this window and go back to the CRM.");
      return;
    }
    // targetOrigin is this very origin: only the desk's own iframe can receive the code.
    window.opener.postMessage(
      { v: card.dataset.protocol, type: "login_code", code: card.dataset.code }, window.location.origin);
    status.textContent = _("Done: this window closes by itself.");
    window.close();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", handOff);
  else handOff();
})();
