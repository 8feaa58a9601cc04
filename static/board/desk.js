/* Agent Desk in the browser: live indicator, row placement, ticking timers, error toasts.
 *
 * Rows arrive over the websocket as out-of-band swaps carrying data-section (the list
 * they belong in). htmx replaces a row that exists in place; this file moves a replaced
 * row to its new list when its section changed, and addresses a new row to the top of its
 * list before htmx sees the frame (the "desk-live" extension on the page's ws-connect). */
(function () {
  "use strict";

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
  document.addEventListener("htmx:oobAfterSwap", function (event) {
    place(event.target);
    trim();
    tick();
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
    status("reconnecting", "offline — reconnecting…");
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
    status("live", "live");
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
      ? xhr.responseText : "That did not work (" + (xhr ? xhr.status : "network") + "). Try again.";
    delete toast.dataset.kind;
    toast.hidden = false;
    clearTimeout(toast._timer);
    toast._timer = setTimeout(function () { toast.hidden = true; }, 6000);
  });
  document.addEventListener("htmx:sendError", function () {
    var toast = document.getElementById("toast");
    if (!toast) return;
    toast.textContent = "The desk cannot be reached. Check the connection and try again.";
    toast.dataset.kind = "offline";  // hidden again when the websocket is back (online)
    clearTimeout(toast._timer);
    toast.hidden = false;
  });
})();

/* Click-to-dial: form answers with an error status still replace the form (they carry the
 * messages under the fields); tel: links open the dial form filled in. */
(function () {
  "use strict";

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
      button.textContent = "This browser does not allow it here (HTTPS is needed).";
    }
  });
})();
