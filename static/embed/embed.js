/* Agent Desk inside a CRM: the desk/1 postMessage protocol, the popup login, pop-out, and
 * the cookie-less "token mode" (see desk/embed.py for why and README for the protocol).
 *
 * Security rules, all enforced here:
 *  - a message is accepted only from window.parent, only from an origin in
 *    DESK_EMBED_ORIGINS (or the desk's own origin), and after the first one only from the
 *    origin that was pinned;
 *  - messages to the CRM go to the pinned origin only, never "*";
 *  - message data is checked and only ever used as text or form values, never as HTML. */
(function () {
  "use strict";
  var _ = window.DeskI18n.gettext;

  var PROTOCOL = "desk/1";
  var TOKEN_KEY = "desk.embed.token";
  var body = document.body;
  var self = window.location.origin;
  var framed = window.parent !== window;
  var allowed = (body.dataset.embedOrigins || "").split(/\s+/).filter(Boolean).concat([self]);
  var auth = body.dataset.embedAuth || "";  // "token"/"ticket": this page came without a cookie
  var parentOrigin = null;
  var outbox = [];

  if (framed) document.documentElement.classList.add("desk-embedded");

  // -- the iframe token (only when the browser keeps no cookie for us) --------------------
  function store() { try { return window.sessionStorage; } catch (err) { return null; } }
  function token() { var s = store(); return s ? s.getItem(TOKEN_KEY) : null; }
  function setToken(value) {
    var s = store();
    if (!s) return;
    if (value) s.setItem(TOKEN_KEY, value); else s.removeItem(TOKEN_KEY);
  }
  var tokenMode = !!auth && !!token();

  function safePath(path) {
    return (typeof path === "string" && path.charAt(0) === "/" && path.charAt(1) !== "/") ? path : "/";
  }

  // Navigate with a single-use ticket: page loads cannot carry the Authorization header.
  function go(path) {
    fetch("/embed/ticket", { method: "POST", headers: { "Authorization": "Bearer " + token() } })
      .then(function (r) { if (!r.ok) throw new Error(String(r.status)); return r.json(); })
      .then(function (data) {
        var target = safePath(path);
        window.location.replace(target + (target.indexOf("?") < 0 ? "?" : "&") +
          data.param + "=" + encodeURIComponent(data.ticket));
      })
      .catch(function () { setToken(null); window.location.replace("/login"); });
  }

  // The ticket did its job; keep it out of the address, history and Referer.
  if (window.location.search.indexOf("desk_ticket=") >= 0 && window.history.replaceState) {
    var clean = new URL(window.location.href);
    clean.searchParams.delete("desk_ticket");
    window.history.replaceState(null, "", clean.pathname + clean.search + clean.hash);
  }

  if (tokenMode) {
    document.addEventListener("htmx:configRequest", function (event) {
      event.detail.headers["Authorization"] = "Bearer " + token();
    });
    // The websocket cannot send headers either: connect with the ticket the page brought.
    var wsTicket = body.dataset.embedWsTicket;
    if (wsTicket) {
      var roots = document.querySelectorAll("[ws-connect]");
      for (var i = 0; i < roots.length; i++) {
        var url = roots[i].getAttribute("ws-connect");
        roots[i].setAttribute("ws-connect", url + (url.indexOf("?") < 0 ? "?" : "&") +
          "desk_ticket=" + encodeURIComponent(wsTicket));
      }
    }
    // A ticket is single use: after a drop, reload through a fresh one (a full snapshot).
    var reloading = false;
    document.addEventListener("htmx:wsClose", function () {
      if (reloading) return;
      reloading = true;
      setTimeout(function () { go(window.location.pathname + window.location.search); }, 1000);
    });
    document.addEventListener("click", function (event) {
      var link = event.target.closest ? event.target.closest("a[href^='/']") : null;
      if (!link || event.defaultPrevented || event.button !== 0 || link.target) return;
      event.preventDefault();
      go(link.getAttribute("href"));
    });
    document.addEventListener("submit", function (event) {
      var form = event.target;
      if (!form.matches || !form.matches("form[action$='/logout']")) return;
      event.preventDefault();
      fetch(form.action, { method: "POST", headers: {
        "Authorization": "Bearer " + token(), "X-CSRFToken": csrfToken() } })
        .finally(function () { setToken(null); window.location.replace("/login"); });
    });
  }

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  // -- login from inside the CRM ------------------------------------------------------------
  var loginBox = document.querySelector("[data-embed-login]");
  if (loginBox && framed) {
    var next = safePath(new URLSearchParams(window.location.search).get("next") || "/");
    var status = loginBox.querySelector("[data-embed-login-status]");
    loginBox.hidden = false;
    if (token()) go(next);  // the CRM reloaded us: this tab still has its sign-in

    var popup = null;
    loginBox.querySelector("button").addEventListener("click", function () {
      popup = window.open("/embed/login", "desk-login", "popup,width=480,height=640");
      status.textContent = popup ? _("Log in in the new window…") : _("Allow pop-ups for the CRM to log in.");
    });
    window.addEventListener("message", function (event) {
      if (!popup || event.source !== popup || event.origin !== self) return;
      var msg = event.data;
      if (!msg || msg.v !== PROTOCOL || msg.type !== "login_code" || typeof msg.code !== "string") return;
      popup = null;
      status.textContent = _("Logging in…");
      fetch("/embed/exchange", {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json" }, body: JSON.stringify({ code: msg.code }),
      })
        .then(function (r) { return r.json().then(function (data) { return { ok: r.ok, data: data }; }); })
        .then(function (answer) {
          if (!answer.ok) throw new Error(answer.data.error || _("The login did not work."));
          // Did the browser keep our (partitioned) cookie? Then we are a normal desk page.
          return fetch("/embed/session", { credentials: "same-origin", cache: "no-store" })
            .then(function (r) { return r.json(); })
            .then(function (session) {
              if (session.authenticated && session.via === "cookie") {
                window.location.replace(next);
              } else {
                setToken(answer.data.token);
                go(next);
              }
            });
        })
        .catch(function (err) {
          // The desk's own refusal (thrown above) as it came; a browser's (network, JSON) not.
          status.textContent = err && err.name === "Error" ? err.message : _("The login did not work.");
        });
    });
  }

  // -- pop out: the same desk in its own window, which survives CRM navigation ----------------
  var popout = document.querySelector("[data-embed-popout]");
  if (popout && framed) {
    popout.hidden = false;
    popout.addEventListener("click", function () {
      var path = window.location.pathname + window.location.search;
      var win = window.open(tokenMode ? "about:blank" : path, "agent-desk", "popup,width=440,height=780");
      if (!win || !tokenMode) return;
      fetch("/embed/ticket", { method: "POST", headers: { "Authorization": "Bearer " + token() } })
        .then(function (r) { return r.json(); })
        .then(function (data) { win.location.href = path + (path.indexOf("?") < 0 ? "?" : "&") + data.param + "=" + encodeURIComponent(data.ticket); });
    });
  }

  // -- the protocol ---------------------------------------------------------------------------
  if (!framed) return;

  // desk/1 is read by the CRM's code: its codes and messages stay English.
  function post(type, data, id) {
    var msg = { v: PROTOCOL, type: type };
    if (id !== undefined && id !== null) msg.id = id;
    if (data) msg.data = data;
    if (!parentOrigin) { if (outbox.length < 50) outbox.push(msg); return; }
    window.parent.postMessage(msg, parentOrigin);
  }

  function pin(origin) {
    if (parentOrigin || allowed.indexOf(origin) < 0) return false;
    parentOrigin = origin;
    return true;
  }

  // Events from before the origin was known follow the first "ready".
  function flush() {
    var waiting = outbox;
    outbox = [];
    for (var i = 0; i < waiting.length; i++) window.parent.postMessage(waiting[i], parentOrigin);
  }

  // The agent's presence, as the switch in the header shows it (null: not on a board).
  function presence() {
    var select = document.getElementById("presence-select");
    return select ? select.value : null;
  }
  function presenceData() {
    var now = presence();
    return { presence: now, available: now === "available" };
  }

  function readyData() {
    var data = { version: PROTOCOL, loggedIn: !!body.dataset.embedUser, user: body.dataset.embedUser || null };
    var now = presenceData();
    data.presence = now.presence;
    data.available = now.available;
    return data;
  }

  function ignore(event, why) {
    body.dataset.embedIgnored = String((parseInt(body.dataset.embedIgnored || "0", 10) || 0) + 1);
    if (window.console) console.warn("Agent Desk ignored a message from " + event.origin + ": " + why);
  }

  // Wait for the answer to the htmx request a button or form makes, then ack or error. The
  // listener sits on that element itself: htmx fires the event there even when the element
  // has left the page meanwhile (a pushed copy of the row replaces a Hang up button while
  // its request is still out, and the event would not bubble to the document any more).
  function whenAnswered(elt, id, okData, failCode) {
    function done(event) {
      if (event.target !== elt) return;
      elt.removeEventListener("htmx:afterRequest", done);
      if (event.detail.successful) { post("ack", okData, id); return; }
      var xhr = event.detail.xhr;
      var shown = document.querySelectorAll("#dial .dial__banner--error, #dial .field-msg--error, #dial-confirm-msg");
      var texts = [];
      for (var i = 0; i < shown.length; i++) texts.push(shown[i].textContent.trim());
      var text = texts.join(" ") || (xhr && xhr.responseText && xhr.responseText.length < 300 ? xhr.responseText : "");
      post("error", { code: failCode, status: xhr ? xhr.status : 0, message: text || "The desk could not do that." }, id);
    }
    elt.addEventListener("htmx:afterRequest", done);
  }

  var NUMBER = /^[0-9+()\-.\s/]{3,40}$/;
  var handlers = {
    hello: function (data, id) { post("ready", readyData(), id); },
    dial: function (data, id) {
      if (!data || typeof data.number !== "string" || !NUMBER.test(data.number)) {
        return post("error", { code: "invalid", message: "dial needs data.number: digits, spaces, + ( ) - . only, 3 to 40 characters." }, id);
      }
      if (data.record !== undefined && (typeof data.record !== "string" || data.record.length > 200)) {
        return post("error", { code: "invalid", message: "data.record must be a string of at most 200 characters." }, id);
      }
      var input = document.getElementById("dial-callee");
      var form = input ? input.form : null;
      if (!form) return post("error", { code: "not_logged_in", message: "Log in to the desk first." }, id);
      if (form.classList.contains("htmx-request")) {
        return post("error", { code: "busy", message: "A dial is already in progress." }, id);
      }
      input.value = data.number;
      pendingRecord = data.record || null;
      whenAnswered(form, id, { type: "dial", number: data.number }, "dial_failed");
      form.requestSubmit();
    },
    hangup: function (data, id) {
      var callId = data && data.callId !== undefined ? String(data.callId) : "";
      if (callId && !/^\d{1,12}$/.test(callId)) {
        return post("error", { code: "invalid", message: "data.callId must be the desk's call id from call_started or screen_pop." }, id);
      }
      var rows = callId ? [document.getElementById("call-" + callId)]
        : document.querySelectorAll("#calls-mine .call:not([data-state='ended'])");
      for (var i = 0; i < rows.length; i++) {
        var button = rows[i] && rows[i].querySelector("button[hx-post$='/hangup']");
        if (button && !button.disabled) {
          whenAnswered(button, id, { type: "hangup", callId: rows[i].id.slice(5) }, "hangup_failed");
          button.click();
          return;
        }
      }
      post("error", { code: "no_call", message: "There is no call of yours the desk can hang up." }, id);
    },
  };

  window.addEventListener("message", function (event) {
    if (event.source !== window.parent) {
      if (event.source && event.origin === self && event.data && event.data.type === "login_code") return;
      return ignore(event, "not from the embedding page");
    }
    if (allowed.indexOf(event.origin) < 0) return ignore(event, "origin not in DESK_EMBED_ORIGINS");
    if (parentOrigin && event.origin !== parentOrigin) return ignore(event, "origin differs from the pinned one");
    var msg = event.data;
    if (!msg || typeof msg !== "object" || msg.v !== PROTOCOL) return ignore(event, "not a " + PROTOCOL + " message");
    var fresh = pin(event.origin);
    var id = (typeof msg.id === "string" && msg.id.length <= 64) || typeof msg.id === "number" ? msg.id : undefined;
    var handler = typeof msg.type === "string" && Object.prototype.hasOwnProperty.call(handlers, msg.type)
      ? handlers[msg.type] : null;
    if (!handler) post("error", { code: "unknown_type", message: "Known types: hello, dial, hangup." }, id);
    else handler(msg.data && typeof msg.data === "object" ? msg.data : null, id);
    if (fresh) flush();
  });

  // -- calls, as the rows on the board show them ------------------------------------------------
  // The CRM hears what changes after the page loaded, about the calls that concern this
  // agent, each event once: a screen pop for a call that starts ringing *this* agent (the
  // row the desk marks data-for-you: routed or offered to them; never another agent's call
  // or one already talking), then call_started / call_answered / call_ended /
  // call_wrapped_up for the agent's own calls (call_ended once more with each saved wrap-up).
  // What the page shows when it loads is taken as
  // told already: reloading the frame or logging in replays nothing (a call ringing for the
  // agent then is on the board, marked, without a pop), and the later events of the calls
  // found still follow.
  var pendingRecord = null;
  var known = {};
  var loading = true;

  // The customer's number: the caller of an inbound call, the callee of an outbound one; a
  // withheld caller ("anonymous") or an app user id is no number: null.
  var PHONE = /^\+?[0-9][0-9 ()\-./]{1,39}$/;
  function phone(value) { return value && PHONE.test(value) ? value : null; }
  function customer(row) { return phone(row.dataset.direction === "outbound" ? row.dataset.to : row.dataset.from); }

  function ended(row, callId, k) {
    post("call_ended", { callId: callId, status: row.dataset.outcome || "ended",
      duration: parseInt(row.dataset.duration, 10) || 0, record: k.record || null,
      disposition: row.dataset.disposition || null, note: row.dataset.note || null,
      wrappedUp: row.dataset.wrappedUp || null });
  }

  function seen(row) {
    if (!row.id || row.id.indexOf("call-") !== 0 || !row.dataset.state) return;
    if (!body.dataset.embedUser) return;
    var callId = row.id.slice(5);
    var k = known[callId];
    var direction = row.dataset.direction || null;
    var own = row.classList.contains("call--own");
    var forYou = row.dataset.forYou === "true";
    if (!k && !own && !forYou) return;  // another agent's call, or the queue's: not ours to tell
    if (!k && loading) {
      // On the page as it loaded: told before (or too late to tell); only what follows counts.
      known[callId] = { popped: true, started: own, answered: own && row.dataset.state === "talking",
        ended: row.dataset.state === "ended", wrapped: row.dataset.wrappedUp || null, record: null };
      return;
    }
    k = known[callId] || (known[callId] = {});
    if (row.dataset.state === "ended") {
      if ((k.popped || k.started) && !k.ended) {
        k.ended = true;
        ended(row, callId, k);
      }
      var wrapped = row.dataset.wrappedUp;
      if (k.started && wrapped && k.wrapped !== wrapped) {
        // Saved after the end: call_ended again, now with the disposition and note, so the
        // latest call_ended of a call is its whole record; then call_wrapped_up.
        k.wrapped = wrapped;
        ended(row, callId, k);
        post("call_wrapped_up", { callId: callId, disposition: row.dataset.disposition || null,
          note: row.dataset.note || null, record: k.record || null });
      }
      return;
    }
    if (k.popped && !k.started && !k.ended && !own && row.dataset.state === "talking") {
      // It rang for this agent, and a colleague took it: the pop is over.
      k.ended = true;
      post("call_ended", { callId: callId, status: "answered_elsewhere", duration: 0, record: null,
        disposition: null, note: null, wrappedUp: null });
      return;
    }
    if (forYou && !k.popped && row.dataset.state !== "talking") {
      k.popped = true;
      post("screen_pop", { callId: callId, from: row.dataset.from || null, to: row.dataset.to || null,
        number: customer(row) });
    }
    if (own && !k.started) {
      k.started = true;
      if (direction === "outbound" && pendingRecord) { k.record = pendingRecord; pendingRecord = null; }
      post("call_started", { callId: callId, direction: direction, from: row.dataset.from || null,
        to: row.dataset.to || null, number: customer(row),
        callerId: direction === "outbound" ? phone(row.dataset.callerId) : null,
        record: k.record || null });
    }
    if (own && row.dataset.state === "talking" && !k.answered) {
      k.answered = true;
      post("call_answered", { callId: callId, record: k.record || null });
    }
  }

  var lastPresence = presence();
  function presenceChanged() {
    var now = presence();
    if (now === lastPresence) return;
    lastPresence = now;
    post("presence", presenceData());
  }

  function scan(node) {
    if (node.nodeType !== 1) return;
    if (node.matches("article.call")) seen(node);
    var rows = node.querySelectorAll ? node.querySelectorAll("article.call") : [];
    for (var i = 0; i < rows.length; i++) seen(rows[i]);
    if (node.id === "presence" || (node.querySelector && node.querySelector("#presence-select"))) presenceChanged();
  }

  new MutationObserver(function (mutations) {
    for (var i = 0; i < mutations.length; i++) {
      var added = mutations[i].addedNodes;
      for (var j = 0; j < added.length; j++) scan(added[j]);
    }
  }).observe(body, { childList: true, subtree: true });
  scan(body);
  loading = false;

  // Announce ourselves when the embedding page's origin is known without asking.
  var ancestors = window.location.ancestorOrigins;
  var guess = ancestors && ancestors.length ? ancestors[0] : "";
  if (!guess && document.referrer) {
    // (after a navigation inside the frame the referrer is the desk itself: no clue then)
    try { guess = new URL(document.referrer).origin; } catch (err) { guess = ""; }
    if (guess === self) guess = "";
  }
  if (guess && guess !== "null" && pin(guess)) { post("ready", readyData()); flush(); }
})();
