/* The browser softphone (templates/board/_softphone.html, desk.web.softphone): SIP.js 0.21
 * (UserAgent, Registerer, Inviter, Invitation; static/vendor/sip.js from npm) registered as
 * the agent's extension on Teleforge's SIP websocket, as Teleforge's WebRTC page shows.
 *
 * - "Your calls ring in this browser" + Save: POST /softphone/phone, then register with the
 *   password typed (kept in this page only) or the one the desk keeps, which comes in the
 *   body of POST /softphone/credentials (never in a URL; nothing here logs it).
 * - Dialling: while registered, the dial form's requests carry softphone=1; the desk answers
 *   with the form and a data-softphone-invite element: INVITE that target with those
 *   headers (X-Teleforge-Outbound-ID / -Contact-Ref, or X-Platforma-* before v4), then tell
 *   the desk what became of it (answered, ended, or failed with the X-Teleforge-Error
 *   headers, whose messages come back under the dial form's fields).
 * - An INVITE to the extension rings here: "Ringing for you" with Answer / Decline.
 * - In a call: mute, hold (re-INVITE), keypad (RTP tones, SIP INFO if the call has none),
 *   hang up; microphone and speaker choice.
 */
import {
  Inviter,
  Registerer,
  RegistererState,
  SessionState,
  UserAgent,
} from "../vendor/sip.js/index.js";

const root = document.querySelector("[data-softphone]");
// The page's words (static/board/i18n.js, a deferred script that runs before this module).
const _ = window.DeskI18n.gettext;
const count = new Intl.NumberFormat(document.documentElement.lang || "en");

function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.getAttribute("content") : "";
}

function part(name) {
  return root.querySelector("[data-softphone-" + name + "]");
}

function say(text) {
  part("status").textContent = text;
}

async function post(url, body, json) {
  const headers = { "X-CSRFToken": csrfToken(), Accept: json === false ? "text/html" : "application/json" };
  let payload = body;
  if (body && !(body instanceof FormData)) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  return fetch(url, { method: "POST", headers: headers, body: payload, credentials: "same-origin" });
}

async function messageOf(response) {
  try {
    const body = await response.json();
    return body.message || response.statusText;
  } catch (err) {
    return response.statusText || "HTTP " + response.status;
  }
}

const phone = {
  ua: null,
  registerer: null,
  registered: false,
  session: null,      // the one call in progress or ringing
  outbound: null,     // {report, rejected} for a call the dial form placed
  muted: false,
  held: false,
  endedByAgent: false,
  mic: "",
};

function constraints() {
  return { audio: phone.mic ? { deviceId: { exact: phone.mic } } : true, video: false };
}

/* -- registering ------------------------------------------------------------------------ */

async function disconnect() {
  phone.registered = false;
  const ua = phone.ua;
  const registerer = phone.registerer;
  phone.ua = null;
  phone.registerer = null;
  if (!ua) return;
  try {
    if (registerer) await registerer.unregister();
  } catch (err) { /* the websocket may be gone already */ }
  try { await ua.stop(); } catch (err) { /* stopping anyway */ }
}

// Each connect() is one generation; an older one still on its way gives up at its next step,
// so a page that connects on load and an agent who presses Save at once end with one agent.
let generation = 0;

async function connect(typed) {
  const mine = ++generation;
  say(_("Connecting…"));
  await disconnect();
  if (mine !== generation) return;
  const response = await post(root.getAttribute("data-credentials-url"), {});
  if (mine !== generation) return;
  if (!response.ok) {
    say(_("Not connected: %(reason)s", { reason: await messageOf(response) }));
    return;
  }
  const creds = await response.json();
  if (mine !== generation) return;
  const password = typed || creds.password;
  if (!password) {
    say(_("Not connected: type your SIP password above and press Save and connect."));
    return;
  }
  const ua = new UserAgent({
    uri: UserAgent.makeURI("sip:" + creds.user + "@" + creds.domain),
    transportOptions: { server: creds.ws_url },
    authorizationUsername: creds.user,
    authorizationPassword: password,
    logLevel: "error",
    sessionDescriptionHandlerFactoryOptions: {
      iceGatheringTimeout: 1000,
      peerConnectionConfiguration: { iceServers: [] },
    },
    delegate: {
      onInvite: ringing,
      onDisconnect: function (error) {
        if (phone.ua !== ua) return;
        phone.registered = false;
        say(error
          ? _("Not connected: the SIP websocket closed (%(error)s). Save and connect to try again.", { error: error.message })
          : _("Not connected: the SIP websocket closed. Save and connect to try again."));
      },
    },
  });
  phone.ua = ua;
  try {
    await ua.start();
  } catch (err) {
    if (mine === generation) say(_("Not connected: Teleforge's SIP websocket (%(url)s) cannot be reached.", { url: creds.ws_url }));
    return;
  }
  if (mine !== generation) {
    ua.stop();
    return;
  }
  const registerer = new Registerer(ua);
  phone.registerer = registerer;
  registerer.stateChange.addListener(function (state) {
    if (phone.registerer !== registerer) return;  // one replaced by a newer connection
    phone.registered = state === RegistererState.Registered;
    if (phone.registered) {
      say(_("Connected: calls to extension %(extension)s ring in this browser.", { extension: creds.user }));
      listDevices();
    }
  });
  await registerer.register({
    requestDelegate: {
      onReject: function (reply) {
        const code = reply.message.statusCode;
        const refusal = { code: code, reason: reply.message.reasonPhrase };
        say(code === 401 || code === 403 || code === 407
          ? _("Not connected: Teleforge refused the registration (SIP %(code)s %(reason)s): check the SIP password.", refusal)
          : _("Not connected: Teleforge refused the registration (SIP %(code)s %(reason)s).", refusal));
      },
    },
  });
}

/* -- a call ---------------------------------------------------------------------------- */

function showCall(label) {
  part("incoming").hidden = true;
  part("call").hidden = false;
  part("call-label").textContent = label;
  phone.muted = false;
  phone.held = false;
  part("mute").setAttribute("aria-pressed", "false");
  part("hold").setAttribute("aria-pressed", "false");
}

function attachMedia(session) {
  const handler = session.sessionDescriptionHandler;
  if (!handler) return;
  const audio = part("audio");
  audio.srcObject = handler.remoteMediaStream;
  audio.play().catch(function () { /* autoplay policy: the stream still flows */ });
}

function otherParty(session) {
  const identity = session.remoteIdentity;
  const user = identity && identity.uri ? identity.uri.user : "";
  const name = identity && identity.displayName ? identity.displayName : "";
  return name && name !== user ? name + " (" + user + ")" : user || _("unknown caller");
}

async function reportOutbound(session, state) {
  const outbound = phone.outbound;
  if (!outbound || outbound.session !== session) return;
  if (state === SessionState.Established) {
    outbound.answered = true;
    await post(outbound.report + "answered", {});
    return;
  }
  if (state !== SessionState.Terminated) return;
  phone.outbound = null;
  if (outbound.rejected) {
    const response = await post(outbound.report + "failed", outbound.rejected, false);
    const html = await response.text();
    const dial = document.getElementById("dial");
    if (dial && response.headers.get("X-Desk-Swap") && window.htmx) {
      dial.outerHTML = html;
      const fresh = document.getElementById("dial");
      if (fresh) {
        window.htmx.process(fresh);
        const first = fresh.querySelector("[autofocus]");
        if (first) first.focus();
      }
    }
    return;
  }
  await post(outbound.report + "ended", { by: phone.endedByAgent ? "agent" : "other" });
}

let reports = Promise.resolve();

function track(session, label) {
  phone.session = session;
  phone.endedByAgent = false;
  session.stateChange.addListener(function (state) {
    if (state === SessionState.Established) {
      attachMedia(session);
      showCall(_("On a call with %(party)s", { party: label }));
    }
    if (state === SessionState.Terminated && phone.session === session) {
      phone.session = null;
      part("call").hidden = true;
      part("incoming").hidden = true;
      part("audio").srcObject = null;
      say(phone.registered ? _("Call ended. Connected: calls ring in this browser.") : _("Call ended."));
    }
    // SIP.js ends the session before it hands the refusal to invite()'s onReject: report
    // once that has run, so a refusal is reported as one, with its error headers.
    // One report after the other, so the desk hears "answered" before "ended".
    setTimeout(function () {
      reports = reports.then(function () { return reportOutbound(session, state); }).catch(function () {
        say(_("The desk did not hear how the call went; the board may lag until Teleforge's record arrives."));
      });
    }, 0);
  });
}

function place(invite) {
  if (!phone.ua || !phone.registered) {
    say(_("Not connected: the call was not placed."));
    return;
  }
  const extraHeaders = Object.keys(invite.headers).map(function (name) {
    return name + ": " + invite.headers[name];
  });
  const target = UserAgent.makeURI(invite.target);
  const inviter = new Inviter(phone.ua, target, {
    extraHeaders: extraHeaders,
    sessionDescriptionHandlerOptions: { constraints: constraints() },
  });
  const outbound = { session: inviter, report: invite.report, rejected: null };
  phone.outbound = outbound;
  const label = target.user;
  track(inviter, label);
  part("call").hidden = false;
  part("call-label").textContent = _("Calling %(number)s…", { number: label });
  inviter.invite({
    requestDelegate: {
      onReject: function (reply) {
        const message = reply.message;
        const names = [invite.error_header, "X-Teleforge-Error", "X-Platforma-Error"];
        const errors = [];
        names.forEach(function (name) {
          message.getHeaders(name).forEach(function (value) {
            if (errors.indexOf(value) < 0) errors.push(value);
          });
        });
        outbound.rejected = { status: message.statusCode, reason: message.reasonPhrase, errors: errors };
      },
    },
  }).catch(function () {
    // Not sent (the websocket went away): end the session, which reports it as failed.
    outbound.rejected = outbound.rejected || { status: 0, reason: "not sent", errors: [] };
    if (inviter.state !== SessionState.Terminated) inviter.dispose();
  });
}

function ringing(invitation) {
  if (phone.session) {
    invitation.reject({ statusCode: 486 });  // one call at a time: busy here
    return;
  }
  const caller = otherParty(invitation);
  track(invitation, caller);
  part("caller").textContent = caller;
  part("incoming").hidden = false;
  say(_("Ringing for you: %(caller)s", { caller: caller }));
}

function hangUp() {
  const session = phone.session;
  if (!session) return;
  phone.endedByAgent = true;
  if (session.state === SessionState.Established) {
    session.bye();
  } else if (session instanceof Inviter) {
    session.cancel();
  } else {
    session.reject({ statusCode: 603 });
  }
}

async function toggleHold() {
  const session = phone.session;
  if (!session || session.state !== SessionState.Established) return;
  const hold = !phone.held;
  const options = session.sessionDescriptionHandlerOptionsReInvite;
  options.hold = hold;
  session.sessionDescriptionHandlerOptionsReInvite = options;
  await session.invite({
    requestDelegate: {
      onAccept: function () {
        phone.held = hold;
        const handler = session.sessionDescriptionHandler;
        if (handler) {
          handler.enableReceiverTracks(!hold);
          handler.enableSenderTracks(!hold && !phone.muted);
        }
        part("hold").setAttribute("aria-pressed", hold ? "true" : "false");
        part("hold").textContent = hold ? _("Resume") : _("Hold");
      },
      onReject: function () {
        say(hold ? _("Teleforge did not accept the hold.") : _("Teleforge did not accept the resume."));
      },
    },
  });
}

function toggleMute() {
  const session = phone.session;
  if (!session || !session.sessionDescriptionHandler) return;
  phone.muted = !phone.muted;
  session.sessionDescriptionHandler.enableSenderTracks(!phone.muted && !phone.held);
  part("mute").setAttribute("aria-pressed", phone.muted ? "true" : "false");
  part("mute").textContent = phone.muted ? _("Unmute") : _("Mute");
}

function sendTone(tone) {
  const session = phone.session;
  if (!session || session.state !== SessionState.Established) return;
  const handler = session.sessionDescriptionHandler;
  const sent = handler && handler.sendDtmf(tone);
  if (!sent) {
    session.info({ requestOptions: { body: {
      contentDisposition: "render", contentType: "application/dtmf-relay",
      content: "Signal=" + tone + "\r\nDuration=160",
    } } });
  }
  part("sent").textContent = _("Sent %(tone)s", { tone: tone });
}

/* -- devices ---------------------------------------------------------------------------- */

async function listDevices() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.enumerateDevices) return;
  const devices = await navigator.mediaDevices.enumerateDevices();
  [["mic", "audioinput"], ["speaker", "audiooutput"]].forEach(function (pair) {
    const select = part(pair[0]);
    const chosen = select.value;
    select.replaceChildren(new Option(_("Default"), ""));
    devices.filter(function (d) { return d.kind === pair[1] && d.deviceId && d.deviceId !== "default"; })
      .forEach(function (d, i) {
        const number = { num: count.format(i + 1) };
        select.append(new Option(d.label || (pair[0] === "mic" ? _("Microphone %(num)s", number) : _("Speaker %(num)s", number)), d.deviceId));
      });
    select.value = chosen;
  });
  part("speaker").disabled = typeof part("audio").setSinkId !== "function";
}

async function chooseMic(deviceId) {
  phone.mic = deviceId;
  const session = phone.session;
  const handler = session && session.sessionDescriptionHandler;
  if (!handler || !handler.peerConnection) return;
  const stream = await navigator.mediaDevices.getUserMedia(constraints());
  const track = stream.getAudioTracks()[0];
  const sender = handler.peerConnection.getSenders().find(function (s) { return s.track && s.track.kind === "audio"; });
  if (sender && track) {
    track.enabled = !phone.muted && !phone.held;
    await sender.replaceTrack(track);
  }
}

/* -- wiring ----------------------------------------------------------------------------- */

function choosingBrowser() {
  const checked = root.querySelector('[data-softphone-choice] input[name="phone"]:checked');
  return checked && checked.value === "browser";
}

function showPassword() {
  part("password").hidden = !choosingBrowser();
}

if (root) {
  showPassword();
  root.addEventListener("change", function (event) {
    if (event.target.name === "phone") showPassword();
    if (event.target.matches("[data-softphone-mic]")) chooseMic(event.target.value);
    if (event.target.matches("[data-softphone-speaker]")) {
      part("audio").setSinkId(event.target.value).catch(function () { say(_("That speaker cannot be used.")); });
    }
  });

  root.querySelector("[data-softphone-choice]").addEventListener("submit", async function (event) {
    event.preventDefault();
    say(_("Saving…"));
    const form = event.target;
    const field = form.querySelector('input[name="sip_password"]');
    const typed = field.value;
    const response = await post(form.action, new FormData(form));
    field.value = "";
    if (!response.ok) {
      say(await messageOf(response));
      return;
    }
    const answer = await response.json();
    root.setAttribute("data-phone", answer.phone);
    if (answer.phone === "browser" && phone.registered && !typed) {
      say(_("Connected: calls to extension %(extension)s ring in this browser.", { extension: root.getAttribute("data-extension") }));
    } else if (answer.phone === "browser") {
      await connect(typed);
    } else {
      generation++;
      await disconnect();
      say(_("Calls ring on your desk phone."));
    }
  });

  root.addEventListener("click", function (event) {
    const button = event.target.closest ? event.target.closest("button") : null;
    if (!button) return;
    if (button.matches("[data-softphone-answer]") && phone.session) {
      phone.session.accept({ sessionDescriptionHandlerOptions: { constraints: constraints() } });
    } else if (button.matches("[data-softphone-decline]") || button.matches("[data-softphone-hangup]")) {
      hangUp();
    } else if (button.matches("[data-softphone-mute]")) {
      toggleMute();
    } else if (button.matches("[data-softphone-hold]")) {
      toggleHold();
    } else if (button.hasAttribute("data-softphone-dtmf")) {
      sendTone(button.getAttribute("data-softphone-dtmf"));
    }
  });

  // The dial form places calls through this browser while it is registered.
  document.addEventListener("htmx:configRequest", function (event) {
    const elt = event.detail.elt;
    if (elt && elt.matches && elt.matches("[data-dial-form]") && phone.registered &&
        root.getAttribute("data-phone") === "browser") {
      event.detail.parameters.softphone = "1";
    }
  });
  document.addEventListener("htmx:afterSettle", function () {
    document.querySelectorAll("[data-softphone-invite]").forEach(function (element) {
      const invite = JSON.parse(element.getAttribute("data-softphone-invite"));
      element.remove();
      place(invite);
    });
  });

  window.addEventListener("pagehide", function () { disconnect(); });

  if (root.getAttribute("data-phone") === "browser") {
    connect("").catch(function () { say(_("Not connected: the browser phone could not start.")); });
  }
}
