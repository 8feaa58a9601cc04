/* HubSpot calling-extension adapter (templates/embed/hubspot.html): HubSpot's SDK on one
 * side, the desk framed in #desk on the other, speaking desk/1 (README, "Embedding"). */
(function () {
  "use strict";
  var CallingExtensions = window["default"];  // the SDK's UMD build exports its class as "default"
  var desk = document.getElementById("desk");
  var DESK_ORIGIN = window.location.origin;   // the desk frame is this page's own origin
  var engagements = {};                        // desk callId -> HubSpot engagementId
  var lastCallId = null;
  var counter = 0;

  function toDesk(type, data) {
    var message = { v: "desk/1", type: type, id: "hubspot-" + (++counter) };
    if (data) message.data = data;
    desk.contentWindow.postMessage(message, DESK_ORIGIN);
  }

  // HubSpot's end statuses, from the desk's outcome words.
  var END_STATUS = { answered: "COMPLETED", voicemail: "COMPLETED", missed: "MISSED", unanswered: "NO_ANSWER",
    busy: "BUSY", rejected: "REJECTED", blocked: "REJECTED", failed: "FAILED", cancelled: "CANCELED",
    unavailable: "FAILED", congestion: "FAILED" };

  var hubspot = new CallingExtensions({
    debugMode: false,
    eventHandlers: {
      onReady: function () { toDesk("hello"); },
      onDialNumber: function (data) {        // { phoneNumber, objectId, objectType, ... }
        if (!data || typeof data.phoneNumber !== "string") return;
        toDesk("dial", { number: data.phoneNumber,
          record: data.objectId !== undefined ? String(data.objectId) : undefined });
      },
      onEndCall: function () { toDesk("hangup", lastCallId ? { callId: lastCallId } : null); },
      onCreateEngagementSucceeded: function (data) {
        if (data && lastCallId) engagements[lastCallId] = data.engagementId;
      },
      onEngagementCreated: function (data) {
        if (data && lastCallId) engagements[lastCallId] = data.engagementId;
      },
      onVisibilityChanged: function () {},
      defaultEventHandler: function () {},
    },
  });

  window.addEventListener("message", function (event) {
    if (event.origin !== DESK_ORIGIN || event.source !== desk.contentWindow) return;
    var msg = event.data;
    if (!msg || msg.v !== "desk/1" || !msg.data && msg.type !== "ready") return;
    var d = msg.data || {};
    switch (msg.type) {
      case "ready":
        hubspot.initialized({ isLoggedIn: !!d.loggedIn });
        if (d.loggedIn) hubspot.userLoggedIn();
        break;
      case "call_started":
        lastCallId = d.callId;
        if (d.direction === "outbound") {
          hubspot.outgoingCall({ externalCallId: d.callId, toNumber: d.to || undefined,
            fromNumber: d.from || undefined, callStartTime: Date.now(), createEngagement: true });
        }
        break;
      case "screen_pop":
        lastCallId = d.callId;
        hubspot.incomingCall({ externalCallId: d.callId, fromNumber: d.from || "", toNumber: d.to || "",
          callStartTime: Date.now(), createEngagement: true });
        break;
      case "call_answered":
        hubspot.callAnswered({ externalCallId: d.callId });
        break;
      case "call_ended":
        hubspot.callEnded({ externalCallId: d.callId, engagementId: engagements[d.callId],
          callEndStatus: END_STATUS[d.status] || "COMPLETED" });
        hubspot.callCompleted({ externalCallId: d.callId, engagementId: engagements[d.callId],
          engagementProperties: { hs_timestamp: Date.now(), hs_call_duration: String((d.duration || 0) * 1000) } });
        break;
      case "error":
        hubspot.sendError({ message: d.message || "Agent Desk could not do that." });
        break;
    }
  });
})();
