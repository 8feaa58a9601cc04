/* Keyboard shortcuts on a board, listed in the help overlay that "?" opens
 * (templates/shared/_shortcuts.html, a <dialog>).
 *
 * A shortcut is a single key without Ctrl, Alt or Meta, and never while the focus is in a
 * field, so typing a number or a note is never taken for a command. They act on "your
 * call": the first row in My calls (the supervisor board has no such list; there only "?"
 * and "d" apply). Hang up asks for the key a second time within two seconds, and says so
 * in the status line under the page (#shortcut-status), which screen readers announce; the
 * buttons pressed are the row's own, so the server decides exactly as for a click. */
(function () {
  "use strict";
  var _ = window.DeskI18n.gettext;

  var CONFIRM_MS = 2000;
  var armed = null; // {key, until} while a second press would confirm

  function dialog() { return document.getElementById("shortcuts"); }

  var quiet = null;

  function say(text) {
    var line = document.getElementById("shortcut-status");
    if (!line) return;
    line.textContent = text;
    clearTimeout(quiet);
    if (text) quiet = setTimeout(function () { line.textContent = ""; }, 4000);
  }

  function typing(target) {
    if (!target || !target.closest) return false;
    return Boolean(target.closest("input, textarea, select, [contenteditable=''], [contenteditable='true']"));
  }

  function myCall() {
    return document.querySelector("#calls-mine article.call");
  }

  function describe(row) {
    var from = row.querySelector(".call__from");
    var to = row.querySelector(".call__to");
    return (from ? from.textContent.trim() : "?") + " → " + (to ? to.textContent.trim() : "?");
  }

  // A row's button by the request it makes, not by its label (which is in the page's language).
  function button(row, selectors) {
    var buttons = row.querySelectorAll(selectors.map(function (s) { return ".call__actions " + s; }).join(", "));
    for (var i = 0; i < buttons.length; i++) {
      if (!buttons[i].disabled) return buttons[i];
    }
    return null;
  }

  function press(target, text) {
    if (!target) { say(text); return; }
    target.focus();
    target.click();
  }

  function hangUp() {
    var row = myCall();
    if (!row) { say(_("You are on no call.")); return; }
    var hang = button(row, ["button[hx-post$='/hangup']"]);
    if (!hang) { say(_("This call cannot be hung up from the desk.")); return; }
    var now = Date.now();
    if (armed && armed.key === "h" && armed.until > now) {
      armed = null;
      say(_("Hanging up %(call)s.", {call: describe(row)}));
      press(hang);
      return;
    }
    armed = {key: "h", until: now + CONFIRM_MS};
    row.scrollIntoView({block: "nearest"});
    say(_("Press H again to hang up %(call)s.", {call: describe(row)}));
  }

  function record() {
    var row = myCall();
    if (!row) { say(_("You are on no call.")); return; }
    // Record, Stop recording or Resume recording (never Pause recording).
    press(button(row, ["button[hx-post$='/recording']", "button[hx-delete$='/recording']",
                       "button[hx-post$='/recording/resume']"]),
          _("Recording is not available on this call."));
  }

  function dialField() {
    var field = document.getElementById("dial-callee");
    if (!field) { say(_("There is no dial form on this page.")); return; }
    field.focus();
    field.select();
  }

  function wrapUp() {
    var field = document.querySelector("#calls-ended .wrapup__form select, #calls-ended .wrapup__form input[name=note]");
    if (!field) { say(_("No ended call waits for a wrap-up.")); return; }
    field.focus();
  }

  function help() {
    var box = dialog();
    if (!box || box.open) return;
    say("");
    box.showModal();
  }

  var ACTIONS = {"?": help, "d": dialField, "h": hangUp, "r": record, "w": wrapUp};

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.altKey || event.metaKey || event.defaultPrevented) return;
    if (typing(event.target)) return;
    var box = dialog();
    if (box && box.open && event.key !== "?") {
      // Inside the overlay only Esc (the dialog's own) and the shortcuts themselves count.
      if (!ACTIONS[event.key.toLowerCase()]) return;
      if (event.key.toLowerCase() !== "h") box.close();
    }
    var action = ACTIONS[event.key === "?" ? "?" : event.key.toLowerCase()];
    if (!action) return;
    event.preventDefault();
    action();
  });

  document.addEventListener("click", function (event) {
    var opener = event.target.closest && event.target.closest("[data-shortcuts-open]");
    if (opener) { event.preventDefault(); help(); return; }
    var closer = event.target.closest && event.target.closest("[data-shortcuts-close]");
    if (closer) { var box = dialog(); if (box) box.close(); }
  });
})();
