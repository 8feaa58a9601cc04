/* The example CRM page (templates/embed/host_example.html): speaks desk/1 with the desk
 * framed in #desk. Served from the desk's static files so the page needs no inline script
 * and works under a CRM's own strict Content-Security-Policy; the desk's address comes from
 * the iframe's src. */
(function () {
  "use strict";
  var desk = document.getElementById("desk");
  var DESK_URL = desk.src.replace(/\/$/, "");     // the iframe's address names the desk
  var DESK_ORIGIN = new URL(desk.src).origin;    // messages go to, and are taken from, this origin only
  var log = document.getElementById("log");
  var pop = document.getElementById("pop");
  var counter = 0;

  function send(type, data) {
    var message = { v: "desk/1", type: type, id: "crm-" + (++counter) };
    if (data) message.data = data;
    desk.contentWindow.postMessage(message, DESK_ORIGIN);
    return message.id;
  }

  window.addEventListener("message", function (event) {
    if (event.origin !== DESK_ORIGIN || event.source !== desk.contentWindow) return;
    var msg = event.data;
    if (!msg || msg.v !== "desk/1") return;
    var item = document.createElement("li");
    item.dataset.type = msg.type;
    item.textContent = JSON.stringify(msg);          // text, never HTML
    log.appendChild(item);
    if (msg.type === "screen_pop") {   // a call ringing for this agent, once per call
      pop.hidden = false;
      pop.textContent = "Incoming call from " + (msg.data.number || "a withheld number") + ": look up the caller here.";
    }
    if (msg.type === "call_ended" && !msg.data.wrappedUp) {  // later ones carry the wrap-up
      pop.hidden = false;
      pop.textContent = "Call " + msg.data.callId + " ended (" + msg.data.status + ", " + msg.data.duration + " s): log it on the record.";
    }
    if (msg.type === "call_wrapped_up") {  // the agent saved the disposition and note
      pop.hidden = false;
      pop.textContent = "Call " + msg.data.callId + " wrapped up: " +
        [msg.data.disposition, msg.data.note].filter(Boolean).join(" — ") + ".";
    }
  });

  // Hello on every load of the frame, and once now: this script may arrive after the frame
  // loaded. A hello to a frame not showing the desk yet is dropped by the browser.
  desk.addEventListener("load", function () { send("hello"); });
  send("hello");
  document.getElementById("dial-form").addEventListener("submit", function (event) {
    event.preventDefault();
    send("dial", { number: document.getElementById("number").value, record: "contact-42" });
  });
  document.querySelector("[data-dial]").addEventListener("click", function (event) {
    event.preventDefault();
    send("dial", { number: event.currentTarget.dataset.dial, record: "contact-42" });
  });
  document.getElementById("hangup").addEventListener("click", function () { send("hangup"); });
  document.getElementById("hello").addEventListener("click", function () { send("hello"); });
  window.deskExample = { send: send, deskUrl: DESK_URL };
})();
