/* Agent Desk in the browser: live indicator, row placement, ticking timers, error toasts.
 *
 * Rows arrive over the websocket as out-of-band swaps carrying data-section (the list
 * they belong in). htmx replaces a row that exists in place; this file moves a replaced
 * row to its new list when its section changed, and addresses a new row to the top of its
 * list before htmx sees the frame (the "desk-live" extension on the page's ws-connect). */
(function () {
  "use strict";
  var _ = window.DeskI18n.gettext;

  function place(row) {
    if (!row || !row.dataset || !row.dataset.section) return;
    var list = document.getElementById(row.dataset.section);
    if (!list) return;
    if (row.parentElement !== list) list.prepend(row);
  }

  // "Recently ended" shows its newest data-shown rows (DESK_ENDED_CALLS_SHOWN); older ones
  // stay in the page, hidden, so a late update to one of them still finds its row.
  function trim() {
    var lists = document.querySelectorAll(".calls[data-shown]");
    for (var i = 0; i < lists.length; i++) {
      var shown = parseInt(lists[i].dataset.shown, 10);
      var rows = lists[i].querySelectorAll(":scope > .call");
      for (var j = 0; j < rows.length; j++) rows[j].classList.toggle("call--overflow", j >= shown);
    }
  }

  // Every element of a /ws frame is an out-of-band swap, by its id unless hx-swap-oob names
  // a target. A frame may name what this page lacks: a new call's row, a list or panel of
  // another page (the call page and the wallboard get the board's snapshot), a row to delete
  // that was never here. htmx would log each as htmx:oobErrorNoTarget and drop it; instead,
  // a new row is wrapped to go to the top of its data-section list, and the rest is left out.
  // `here` follows the frame's own effect, so a row the frame adds and then updates is
  // inserted once.
  function swapTarget(el) {
    var spec = el.getAttribute("hx-swap-oob") || "true";
    var colon = spec.indexOf(":");
    return colon > 0 ? spec.slice(colon + 1) : "#" + CSS.escape(el.id);
  }
  function exists(selector) {
    try { return !!document.querySelector(selector); } catch (err) { return false; }
  }
  function addressFrame(text) {
    var template = document.createElement("template");
    template.innerHTML = text;
    var here = {};
    var changed = false;
    var items = Array.prototype.slice.call(template.content.children);
    for (var i = 0; i < items.length; i++) {
      var el = items[i];
      var spec = el.getAttribute("hx-swap-oob") || "true";
      var selector = swapTarget(el);
      var present = Object.prototype.hasOwnProperty.call(here, selector) ? here[selector] : exists(selector);
      if (present) {
        if (spec === "delete") here[selector] = false;
        continue;
      }
      changed = true;
      var list = el.dataset.section;
      if (spec !== "delete" && el.id && list && document.getElementById(list)) {
        var wrapper = document.createElement("div");
        wrapper.setAttribute("hx-swap-oob", "afterbegin:#" + CSS.escape(list));
        el.removeAttribute("hx-swap-oob");
        el.replaceWith(wrapper);
        wrapper.appendChild(el);
        here[selector] = true;
      } else {
        el.remove();
      }
    }
    return changed ? template.innerHTML : text;
  }
  if (window.htmx) {
    window.htmx.defineExtension("desk-live", {
      transformResponse: function (text, xhr) {
        return xhr ? text : addressFrame(text);  // no xhr: a websocket frame
      }
    });
  }
  // A pushed row replaces the one on the page, also while its agent fills in the wrap-up
  // form (the call's recording or provider facts change after it ended): the new row's form
  // takes what was typed, and the field keeps the focus, instead of starting empty.
  var WRAP_FIELDS = ["disposition", "note"];
  var refocus = null;
  document.addEventListener("htmx:oobBeforeSwap", function (event) {
    var old = event.detail.target;
    var fragment = event.detail.fragment;
    var form = old && old.querySelector ? old.querySelector(".wrapup__form") : null;
    var fresh = form && fragment && fragment.querySelector ? fragment.querySelector(".wrapup__form") : null;
    if (!fresh) return;
    var active = document.activeElement;
    refocus = active && form.contains(active) && active.name ? {row: old.id, name: active.name} : null;
    WRAP_FIELDS.forEach(function (name) {
      var was = form.querySelector("[name='" + name + "']");
      var now = fresh.querySelector("[name='" + name + "']");
      if (!was || !now || !was.value) return;
      if (now.tagName === "SELECT") {
        for (var i = 0; i < now.options.length; i++) {
          var match = now.options[i].value === was.value;
          now.options[i].selected = match;
          if (match) now.options[i].setAttribute("selected", ""); else now.options[i].removeAttribute("selected");
        }
      } else {
        now.value = was.value;
        now.setAttribute("value", was.value);
      }
    });
  });
  document.addEventListener("htmx:oobAfterSwap", function (event) {
    place(event.target);
    trim();
    tick();
    if (refocus) {
      var row = document.getElementById(refocus.row);
      var field = row && row.querySelector(".wrapup__form [name='" + refocus.name + "']");
      if (field) field.focus();
      refocus = null;
    }
  });
  document.addEventListener("DOMContentLoaded", trim);

  // Live / reconnecting indicator, from the htmx ws extension's events.
  function status(state, text) {
    var el = document.getElementById("live-status");
    if (!el) return;
    el.className = "live-status live-status--" + state;
    el.textContent = text;
    document.body.dataset.live = state;
  }
  // While the websocket is down the board is not live: say so, disable every control that
  // needs the server (they are re-enabled, not re-rendered, when it is back), and freeze the
  // timers, which would otherwise keep claiming calls are still ringing or talking.
  var CONTROLS = ".live-root button, .live-root input, .live-root select, #presence select, " +
    "#presence button";
  function offline() {
    status("reconnecting", _("offline — reconnecting…"));
    var controls = document.querySelectorAll(CONTROLS);
    for (var i = 0; i < controls.length; i++) {
      if (!controls[i].disabled) {
        controls[i].disabled = true;
        controls[i].dataset.offlineDisabled = "1";
      }
    }
    var banner = document.getElementById("offline-banner");
    if (banner) banner.hidden = false;
  }
  function online() {
    status("live", _("live"));
    var controls = document.querySelectorAll("[data-offline-disabled]");
    for (var i = 0; i < controls.length; i++) {
      controls[i].disabled = false;
      delete controls[i].dataset.offlineDisabled;
    }
    var banner = document.getElementById("offline-banner");
    if (banner) banner.hidden = true;
    // A request that failed for want of a connection said so; the connection is back.
    var toast = document.getElementById("toast");
    if (toast && toast.dataset.kind === "offline") {
      toast.hidden = true;
      delete toast.dataset.kind;
    }
  }
  document.addEventListener("htmx:wsOpen", online);
  document.addEventListener("htmx:wsClose", offline);
  document.addEventListener("htmx:wsError", offline);
  // A row swapped in while offline (there are none: nothing arrives) or the snapshot after
  // reconnecting brings fresh controls; they are enabled as rendered.

  // Reconnect within a few seconds, not the extension's default backoff (up to a minute):
  // 0.5 s, 1 s, 2 s, then every 3 s, with a little jitter so boards do not all come at once.
  function configureReconnect() {
    if (!window.htmx) return;
    window.htmx.config.wsReconnectDelay = function (retryCount) {
      var base = Math.min(500 * Math.pow(2, Math.max(0, retryCount - 1)), 3000);
      return base + Math.floor(Math.random() * 250);
    };
  }
  document.addEventListener("DOMContentLoaded", configureReconnect);
  document.addEventListener("htmx:wsAfterMessage", function () { tick(); });

  // Timers tick in the browser: every <time data-since> shows the time since it.
  function format(seconds) {
    seconds = Math.max(0, Math.floor(seconds));
    var h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
    var ss = (s < 10 ? "0" : "") + s;
    if (h > 0) return h + ":" + (m < 10 ? "0" : "") + m + ":" + ss;
    return m + ":" + ss;
  }
  function tick() {
    if (document.body && document.body.dataset.live === "reconnecting") return;
    var now = Date.now();
    var nodes = document.querySelectorAll("time[data-since]");
    for (var i = 0; i < nodes.length; i++) {
      var since = Date.parse(nodes[i].dataset.since);
      if (!isNaN(since)) nodes[i].textContent = format((now - since) / 1000);
    }
  }
  setInterval(tick, 1000);
  document.addEventListener("DOMContentLoaded", tick);

  // A failed htmx request shows the server's message instead of doing nothing.
  document.addEventListener("htmx:responseError", function (event) {
    var toast = document.getElementById("toast");
    if (!toast) return;
    var xhr = event.detail.xhr;
    toast.textContent = (xhr && xhr.responseText && xhr.responseText.length < 300)
      ? xhr.responseText
      : xhr ? _("That did not work (%(status)s). Try again.", {status: xhr.status})
      : _("That did not work (network). Try again.");
    delete toast.dataset.kind;
    toast.hidden = false;
    clearTimeout(toast._timer);
    toast._timer = setTimeout(function () { toast.hidden = true; }, 6000);
  });
  document.addEventListener("htmx:sendError", function () {
    var toast = document.getElementById("toast");
    if (!toast) return;
    toast.textContent = _("The desk cannot be reached. Check the connection and try again.");
    toast.dataset.kind = "offline";  // hidden again when the websocket is back (online)
    clearTimeout(toast._timer);
    toast.hidden = false;
  });
})();

/* Click-to-dial: form answers with an error status still replace the form (they carry the
 * messages under the fields); tel: links open the dial form filled in. */
(function () {
  "use strict";
  var _ = window.DeskI18n.gettext;

  document.addEventListener("htmx:beforeSwap", function (event) {
    var xhr = event.detail.xhr;
    if (xhr && xhr.getResponseHeader("X-Desk-Swap")) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });

  // A tel: link on a desk page fills the board's dial form when there is one, else opens it.
  document.addEventListener("click", function (event) {
    var link = event.target && event.target.closest ? event.target.closest('a[href^="tel:"]') : null;
    if (!link || event.defaultPrevented || event.button !== 0) return;
    event.preventDefault();
    var number = decodeURIComponent(link.getAttribute("href").slice(4).split(/[;?]/)[0]);
    var input = document.getElementById("dial-callee");
    if (!input) {
      window.location.href = "/dial?number=" + encodeURIComponent(number);
      return;
    }
    input.value = number;
    input.dispatchEvent(new Event("input", { bubbles: true }));
    input.focus();
  });

  // Offer to open tel: links everywhere (e-mail, CRM) in this desk; browsers ask first.
  document.addEventListener("click", function (event) {
    var button = event.target && event.target.closest ? event.target.closest("[data-register-tel]") : null;
    if (!button || !navigator.registerProtocolHandler) return;
    try {
      navigator.registerProtocolHandler("tel", window.location.origin + "/dial?number=%s");
    } catch (err) {
      button.textContent = _("This browser does not allow it here (HTTPS is needed).");
    }
  });
})();

/* Ringing for you: a call that rings this agent (its row is marked data-for-you by the server,
 * desk/live/render.py) is listed at the top of the board and counted in the tab's title
 * until it is answered or gone. A browser notification and a ring tone (made with Web Audio,
 * no sound file) only after the agent asked for them with the buttons above the lists; the
 * choices are kept in this browser. */
(function () {
  "use strict";
  var _ = window.DeskI18n.gettext;
  var count = new Intl.NumberFormat(document.documentElement.lang || "en");

  var PREFS = "desk.alerts.";
  var banner, list, say, baseTitle;
  var announced = {};      // call id -> true once announced on this page
  var shown = {};          // call id -> the Notification showing it
  var audio = null, ringTimer = null, pending = false;

  function pref(name) {
    try { return window.localStorage.getItem(PREFS + name) === "on"; } catch (err) { return false; }
  }
  function setPref(name, on) {
    try {
      if (on) window.localStorage.setItem(PREFS + name, "on");
      else window.localStorage.removeItem(PREFS + name);
    } catch (err) { /* storage refused: the choice lasts for this page only */ }
  }
  function notifications() { return "Notification" in window; }

  // -- sound: two short tones every three seconds while something rings for you --------------
  function audioContext(create) {
    var Context = window.AudioContext || window.webkitAudioContext;
    if (!Context) return null;
    if (!audio && create) audio = new Context();  // only from a click: browsers want a gesture
    if (audio && audio.state === "suspended") audio.resume();
    return audio;
  }
  function beep() {
    var context = audioContext(false);
    if (!context || context.state !== "running") return;
    var start = context.currentTime + 0.02;
    [[880, 0], [660, 0.2]].forEach(function (tone) {
      var osc = context.createOscillator(), gain = context.createGain(), at = start + tone[1];
      osc.type = "sine";
      osc.frequency.value = tone[0];
      gain.gain.setValueAtTime(0.0001, at);
      gain.gain.exponentialRampToValueAtTime(0.2, at + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, at + 0.17);
      osc.connect(gain);
      gain.connect(context.destination);
      osc.start(at);
      osc.stop(at + 0.18);
    });
  }
  function ring(on) {
    if (on && pref("sound")) {
      if (!ringTimer) { beep(); ringTimer = setInterval(beep, 3000); }
    } else if (ringTimer) {
      clearInterval(ringTimer);
      ringTimer = null;
    }
  }

  // -- the rows marked for you -----------------------------------------------------------------
  function parties(row) {
    return (row.dataset.from || _("unknown")) + " → " + (row.dataset.to || _("unknown"));
  }
  function notify(row, id) {
    if (!pref("notify") || !notifications() || window.Notification.permission !== "granted") return;
    try {
      var note = new window.Notification(_("Call ringing for you"), { body: parties(row), tag: "desk-call-" + id });
      note.onclick = function () { window.focus(); note.close(); };
      shown[id] = note;
    } catch (err) { /* this browser shows notifications from a service worker only */ }
  }

  function update() {
    pending = false;
    var rows = document.querySelectorAll(".live-root .call[data-for-you]:not([data-state='ended'])");
    var now = {};
    list.textContent = "";
    for (var i = 0; i < rows.length; i++) {
      var row = rows[i], id = row.id.slice(5);
      now[id] = true;
      var item = document.createElement("li");
      var link = document.createElement("a");
      var parts = row.querySelector(".call__parties");
      link.href = parts ? parts.getAttribute("href") : "#" + row.id;
      link.textContent = parties(row);
      item.appendChild(link);
      var timer = row.querySelector("time[data-since]");
      if (timer) { item.appendChild(document.createTextNode(" ")); item.appendChild(timer.cloneNode(true)); }
      list.appendChild(item);
      if (!announced[id]) {
        announced[id] = true;
        say.textContent = row.dataset.from
          ? _("Call ringing for you from %(number)s.", {number: row.dataset.from})
          : _("Call ringing for you from an unknown number.");
        notify(row, id);
      }
    }
    for (var gone in shown) {
      if (!now[gone]) { shown[gone].close(); delete shown[gone]; }
    }
    banner.hidden = rows.length === 0;
    document.title = rows.length
      ? _("(%(count)s) Ringing for you · %(title)s", {count: count.format(rows.length), title: baseTitle})
      : baseTitle;
    document.body.dataset.ringingForYou = String(rows.length);
    ring(rows.length > 0);
  }
  // One live frame swaps several rows (another agent's copy of a call, then yours): look once
  // they are all in.
  function schedule() {
    if (pending || !banner) return;
    pending = true;
    setTimeout(update, 0);
  }

  // -- the opt-in buttons --------------------------------------------------------------------
  function setUp() {
    banner = document.getElementById("ringing");
    if (!banner) return;  // not an agent's board
    list = document.getElementById("ringing-list");
    say = document.getElementById("ringing-say");
    baseTitle = document.title;
    var box = document.getElementById("call-alerts");
    var notifyButton = box.querySelector("[data-alert='notify']");
    var soundButton = box.querySelector("[data-alert='sound']");
    var status = box.querySelector(".call-alerts__status");
    box.hidden = false;
    notifyButton.hidden = !notifications();

    function show() {
      var granted = notifications() && window.Notification.permission === "granted";
      notifyButton.setAttribute("aria-pressed", String(pref("notify") && granted));
      soundButton.setAttribute("aria-pressed", String(pref("sound")));
    }
    notifyButton.addEventListener("click", function () {
      status.textContent = "";
      if (notifyButton.getAttribute("aria-pressed") === "true") { setPref("notify", false); show(); return; }
      var ask = window.Notification.permission === "granted" ? Promise.resolve("granted")
        : window.Notification.permission === "denied" ? Promise.resolve("denied")
        : Promise.resolve(window.Notification.requestPermission());
      ask.then(function (answer) {
        setPref("notify", answer === "granted");
        if (answer !== "granted") {
          status.textContent = window.parent !== window
            ? _("The browser allows no notifications inside another site's page: use Pop out.")
            : _("Notifications are blocked for this site: allow them in the browser's site settings.");
        }
        show();
      });
    });
    soundButton.addEventListener("click", function () {
      var on = soundButton.getAttribute("aria-pressed") !== "true";
      setPref("sound", on);
      if (on) { audioContext(true); beep(); } else ring(false);
      show();
      schedule();
    });
    // A ring tone chosen earlier starts with the first click or key on the page.
    function wake() {
      if (pref("sound")) audioContext(true);
      document.removeEventListener("pointerdown", wake);
      document.removeEventListener("keydown", wake);
    }
    document.addEventListener("pointerdown", wake);
    document.addEventListener("keydown", wake);
    show();
    update();
  }

  document.addEventListener("DOMContentLoaded", setUp);
  document.addEventListener("htmx:oobAfterSwap", schedule);
  document.addEventListener("htmx:afterSwap", schedule);
  document.addEventListener("htmx:wsAfterMessage", schedule);
})();
