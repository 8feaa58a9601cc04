/* HubSpot calling-extension adapter (templates/embed/hubspot.html): HubSpot's SDK on one
 * side, the desk framed in #desk on the other, speaking desk/1 (README, "Embedding").
 *
 * Built on @hubspot/calling-extensions-sdk (static/vendor, from npm; the events and payloads
 * are those of its src/CallingExtensions.ts and src/types.ts and of demos/demo-minimal-js in
 * github.com/HubSpot/calling-extensions-sdk):
 *  - the SDK drops every message sent before HubSpot's SYNC (it warns "iFrame not
 *    initialized"), so `initialized` goes out from `onReady` (which follows SYNC) once the
 *    desk has said `ready`, with `isLoggedIn`, `isAvailable` (the agent's presence) and the
 *    `engagementId` HubSpot passed, if any; desk events that came earlier wait for it;
 *  - `incomingCall` only for a call ringing this agent (the desk's `screen_pop`, once per
 *    call), `outgoingCall` only for the agent's own outbound calls, with the customer's
 *    number (`toNumber`) and the caller ID they see (`fromNumber`, left out when the desk
 *    dialled without one: never the agent's extension);
 *  - `callEnded` when the call ends; `callCompleted` when the agent saved the wrap-up
 *    (disposition and note in the engagement's body), at once for a call nobody talked on,
 *    and before the next call for a talked call left without a wrap-up;
 *  - logging in and out, and presence changes, as `userLoggedIn`/`userLoggedOut` and
 *    `userAvailable`/`userUnavailable`. */
(function () {
  "use strict";
  var CallingExtensions = window["default"];  // the SDK's UMD build exports its class as "default"
  var desk = document.getElementById("desk");
  var DESK_ORIGIN = window.location.origin;   // the desk frame is this page's own origin
  var calls = {};            // desk callId -> {engagementId, announced, ended, completed, status, duration}
  var lastCallId = null;     // the call HubSpot's engagement and end-call buttons are about
  var counter = 0;
  var hubspotReady = null;   // what onReady said (after SYNC); null until then
  var deskState = null;      // the desk's last `ready` data
  var initialised = false;
  var told = { loggedIn: null, available: null };
  var waiting = [];          // desk messages that came before `initialized` could be sent

  function toDesk(type, data) {
    var message = { v: "desk/1", type: type, id: "hubspot-" + (++counter) };
    if (data) message.data = data;
    desk.contentWindow.postMessage(message, DESK_ORIGIN);
  }

  // HubSpot's end statuses, from the desk's outcome words.
  var END_STATUS = { answered: "COMPLETED", voicemail: "COMPLETED", missed: "MISSED", unanswered: "NO_ANSWER",
    busy: "BUSY", rejected: "REJECTED", blocked: "REJECTED", failed: "FAILED", cancelled: "CANCELED",
    unavailable: "FAILED", congestion: "FAILED", answered_elsewhere: "CANCELED" };

  function call(callId) { return calls[callId] || (calls[callId] = {}); }

  function summary(disposition, note) {
    return [disposition, note].filter(Boolean).join(" — ");
  }

  function complete(callId, disposition, note) {
    var c = call(callId);
    if (c.completed) return;
    c.completed = true;
    var properties = { hs_timestamp: Date.now(), hs_call_duration: String((c.duration || 0) * 1000) };
    var body = summary(disposition, note);
    if (body) properties.hs_call_body = body;
    var payload = { externalCallId: callId, engagementProperties: properties };
    if (c.engagementId !== undefined) payload.engagementId = c.engagementId;
    hubspot.callCompleted(payload);
  }

  // A talked call whose wrap-up never came is completed before HubSpot hears of the next.
  function completeLeftovers() {
    for (var id in calls) {
      if (calls[id].ended && !calls[id].completed) complete(id, null, null);
    }
  }

  function announceIncoming(d) {
    var c = call(d.callId);
    if (c.announced) return;
    completeLeftovers();
    c.announced = true;
    lastCallId = d.callId;
    hubspot.incomingCall({ externalCallId: d.callId, fromNumber: d.number || "", toNumber: d.to || "",
      callStartTime: Date.now(), createEngagement: true });
  }

  function tellPresence(available) {
    if (told.available === available) return;
    told.available = available;
    if (available) hubspot.userAvailable(); else hubspot.userUnavailable();
  }

  function tellLogin(loggedIn) {
    if (told.loggedIn === loggedIn) return;
    told.loggedIn = loggedIn;
    if (loggedIn) hubspot.userLoggedIn(); else hubspot.userLoggedOut();
  }

  // Both sides are there: HubSpot has synced, the desk has said who is logged in.
  function initialise() {
    if (initialised || !hubspotReady || !deskState) return;
    initialised = true;
    var payload = { isLoggedIn: !!deskState.loggedIn, isAvailable: !!deskState.available };
    if (hubspotReady.engagementId) payload.engagementId = hubspotReady.engagementId;
    hubspot.initialized(payload);
    told.loggedIn = payload.isLoggedIn;
    told.available = payload.isAvailable;
    var early = waiting;
    waiting = [];
    for (var i = 0; i < early.length; i++) handle(early[i]);
  }

  function handle(msg) {
    var d = msg.data || {};
    switch (msg.type) {
      case "ready":
        tellLogin(!!d.loggedIn);
        if (d.loggedIn) tellPresence(!!d.available);
        break;
      case "presence":
        tellPresence(!!d.available);
        break;
      case "screen_pop":
        announceIncoming(d);
        break;
      case "call_started":
        if (d.direction === "outbound") {
          var c = call(d.callId);
          if (c.announced) break;
          completeLeftovers();
          c.announced = true;
          lastCallId = d.callId;
          var outgoing = { externalCallId: d.callId, callStartTime: Date.now(), createEngagement: true };
          if (d.number) outgoing.toNumber = d.number;
          if (d.callerId) outgoing.fromNumber = d.callerId;
          hubspot.outgoingCall(outgoing);
        } else {
          announceIncoming(d);  // answered before it popped (or routed straight to the agent)
        }
        break;
      case "call_answered":
        if (calls[d.callId] && calls[d.callId].announced) hubspot.callAnswered({ externalCallId: d.callId });
        break;
      case "call_ended":
        var ended = calls[d.callId];
        if (!ended || !ended.announced || ended.ended) break;
        ended.ended = true;
        ended.duration = d.duration || 0;
        var end = { externalCallId: d.callId, callEndStatus: END_STATUS[d.status] || "COMPLETED" };
        if (ended.engagementId !== undefined) end.engagementId = ended.engagementId;
        hubspot.callEnded(end);
        // A talked call waits for its wrap-up; any other is complete now.
        if (d.status !== "answered" || d.disposition || d.note) complete(d.callId, d.disposition, d.note);
        break;
      case "call_wrapped_up":
        if (calls[d.callId] && calls[d.callId].ended) complete(d.callId, d.disposition, d.note);
        break;
      case "error":
        hubspot.sendError({ message: d.message || "Agent Desk could not do that." });
        break;
    }
  }

  function engagement(data) {
    if (data && data.engagementId !== undefined && lastCallId) call(lastCallId).engagementId = data.engagementId;
  }

  var hubspot = new CallingExtensions({
    debugMode: false,
    eventHandlers: {
      onReady: function (data) {             // after HubSpot's SYNC: { engagementId?, portalId, userId, ... }
        hubspotReady = data || {};
        if (deskState) initialise(); else toDesk("hello");
      },
      onDialNumber: function (data) {        // { phoneNumber, objectId, objectType, ... }
        if (!data || typeof data.phoneNumber !== "string") return;
        toDesk("dial", { number: data.phoneNumber,
          record: data.objectId !== undefined ? String(data.objectId) : undefined });
      },
      onEndCall: function () { toDesk("hangup", lastCallId ? { callId: lastCallId } : null); },
      onCreateEngagementSucceeded: engagement,
      onEngagementCreated: engagement,
      onUpdateEngagementSucceeded: engagement,
      onVisibilityChanged: function () {},
      defaultEventHandler: function () {},
    },
  });

  window.addEventListener("message", function (event) {
    if (event.origin !== DESK_ORIGIN || event.source !== desk.contentWindow) return;
    var msg = event.data;
    if (!msg || msg.v !== "desk/1" || typeof msg.type !== "string") return;
    if (msg.type === "ready") {
      deskState = msg.data || {};
      if (!initialised) { initialise(); return; }
    }
    if (!initialised) { if (waiting.length < 100) waiting.push(msg); return; }
    handle(msg);
  });

  // The desk frame says `ready` by itself in Chrome; elsewhere it answers a hello.
  desk.addEventListener("load", function () { toDesk("hello"); });
})();
