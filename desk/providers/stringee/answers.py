"""Stringee's answer URLs: the SCCO JSON the desk answers with. Pure.

* ``scco_from_helper_params`` answers like Stringee's SCCO helper
  (https://developer.stringee.com/docs/simple-scco-helper, ``simple_project_answer_url`` /
  ``simple_number_answer_url``) for the same GET parameters, so a project set up with the
  helper keeps working when pointed at the desk.
* ``scco_for_agent_call`` answers the project answer URL: an app user (an agent) placing a
  call is connected to whom they called, never routed back to agents
  (``answer_url/php/project_answer_url.php`` in ``stringeecom/server-samples`` connects
  ``from`` to ``to`` the same way).
* ``scco_for_decision`` answers the number answer URL with the desk's routing ``Decision``.

All take the answer URL's GET parameters as one mapping: Stringee's own (``from``, ``to``,
``custom``, ``fromInternal``, ``userId``, ``callId``, ...) together with the helper's. The
SCCO shapes (``connect`` with ``from``/``to`` objects, ``timeout``, ``maxConnectTime``,
``peerToPeerCall``, ``continueOnFail``; ``record`` placed before ``connect``) are those of
https://developer.stringee.com/docs/server/stringee-call-control-object and the samples.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

from desk.domain.events import BadPayload
from desk.domain.routing import DEFAULT_RING_TIME, Decision

RECORD_FORMATS = ("mp3", "wav", "mp4")
AUTO_PHONE_ABOVE = 600000
_WHOLE = re.compile(r"^-?[0-9]{1,7}$")

# --- SCCO helper -------------------------------------------------------------------------


def _option(params: Mapping[str, str], name: str, allowed: tuple[str, ...], default: str) -> str:
    raw = params.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value not in allowed:
        raise BadPayload(
            f"parameter '{name}' must be {', '.join(allowed[:-1])} or {allowed[-1]}, "
            f"not {raw[:40]!r}"
        )
    return value


def _seconds(params: Mapping[str, str], name: str, default: int, minimum: int, rule: str) -> int:
    raw = params.get(name)
    if raw is None or raw.strip() == "":
        return default
    text = raw.strip()
    if not _WHOLE.match(text) or int(text) < minimum:
        raise BadPayload(f"parameter '{name}' must be {rule}, not {raw[:40]!r}")
    return int(text)


def _required(params: Mapping[str, str], name: str, why: str) -> str:
    value = (params.get(name) or "").strip()
    if not value:
        raise BadPayload(f"parameter '{name}' is required: {why}")
    return value


def _recording(params: Mapping[str, str]) -> list[dict[str, Any]]:
    """The helper's leading record action, or nothing; recordFormat is checked either way."""
    record = _option(params, "record", ("true", "false"), "false") == "true"
    fmt = _option(params, "recordFormat", RECORD_FORMATS, "mp3")
    return [_record_action(fmt)] if record else []


def _record_action(fmt: str) -> dict[str, Any]:
    return {"action": "record", "eventUrl": "", "format": fmt}


def calls_a_phone(to: str) -> bool:
    """The SCCO helper's ``appToPhone=auto`` rule: "when 'to' is an integer, greater than
    600000" it is a phone number; a string or an integer up to 600000 is an app user id."""
    return to.isascii() and to.isdigit() and int(to) > AUTO_PHONE_ABOVE


def _project_scco(params: Mapping[str, str]) -> list[dict[str, Any]]:
    app_to_phone = _option(params, "appToPhone", ("true", "false", "auto"), "false")
    caller, callee = params.get("from"), params.get("to")
    if app_to_phone == "auto":
        if callee is None:
            raise BadPayload("appToPhone=auto decides by the answer URL's 'to' parameter, "
                             "which is missing")
        to_phone = calls_a_phone(callee)
    else:
        to_phone = app_to_phone == "true"
    timeout = _seconds(params, "timeout", 60, 1, "whole seconds greater than 0")
    max_connect = _seconds(
        params, "maxConnectTime", -1, -1, "-1 (no limit) or whole seconds from 0"
    )
    peer_to_peer = _option(params, "peerToPeerCall", ("true", "false"), "true") == "true"
    scco = _recording(params)
    scco.append({
        "action": "connect",
        "from": {"type": "internal", "number": caller, "alias": caller},
        "to": {"type": "external" if to_phone else "internal", "number": callee, "alias": callee},
        "customData": params.get("custom"),
        "timeout": timeout,
        # The helper's example writes the default "no limit" (-1) as 0.
        "maxConnectTime": max(max_connect, 0),
        # Media to a phone, or media being recorded, has to pass through Stringee's servers:
        # the helper's example turns peer-to-peer off for an app-to-phone call with record.
        "peerToPeerCall": peer_to_peer and not to_phone and not scco,
    })
    return scco


def _number_scco(params: Mapping[str, str]) -> list[dict[str, Any]]:
    to_phone = _option(params, "phoneToPhone", ("true", "false"), "false") == "true"
    to_number = _required(
        params, "to_number",
        "the user id to ring (phoneToPhone=false) or the phone number to call (phoneToPhone=true)",
    )
    scco = _recording(params)
    if to_phone:
        stringee_number = _required(
            params, "stringeeNumber",
            "with phoneToPhone=true the call goes out from a number bought on Stringee",
        )
        caller: dict[str, Any] = {"type": "external", "number": None, "alias": stringee_number}
        custom = None  # custom data is only pushed to a client app
    else:
        caller = {"type": "external", "number": params.get("from"), "alias": params.get("from")}
        custom = params.get("custom")
    scco.append({
        "action": "connect",
        "from": caller,
        # "Call_to_" is what the helper's examples show as the alias, for both kinds of call.
        "to": {"type": "external" if to_phone else "internal", "number": to_number,
               "alias": "Call_to_"},
        "continueOnFail": False,
        "onFailEventUrl": "",
        "customData": custom,
    })
    return scco


def scco_from_helper_params(
    kind: Literal["project", "number"], params: Mapping[str, str]
) -> list[dict[str, Any]]:
    """The SCCO Stringee's helper returns for ``params`` on its project or number answer URL.

    Raises ``BadPayload`` (a ``ValueError``) naming the parameter and its allowed values.
    """
    if kind == "project":
        return _project_scco(params)
    if kind == "number":
        return _number_scco(params)
    raise ValueError(f"kind must be 'project' or 'number', not {kind!r}")


# --- SCCO for an agent's own call ---------------------------------------------------------


def scco_for_agent_call(params: Mapping[str, str], *, record: bool) -> list[dict[str, Any]]:
    """Connect the app user's call from ``from`` to ``to``: another app user, or a phone
    (``calls_a_phone``). ``record`` puts a record action first, which needs the media to
    pass through Stringee, so the call is then not peer-to-peer (as it never is to a phone).
    Raises ``BadPayload`` when ``to`` is missing.
    """
    caller = (params.get("from") or "").strip() or None
    callee = _required(params, "to", "the app user id or phone number the app user calls")
    to_phone = calls_a_phone(callee)
    scco = [_record_action("mp3")] if record else []
    scco.append({
        "action": "connect",
        "from": {"type": "internal", "number": caller, "alias": caller},
        "to": {"type": "external" if to_phone else "internal", "number": callee,
               "alias": callee},
        "customData": params.get("custom"),
        "timeout": DEFAULT_RING_TIME,  # the helper's default ringing time
        "maxConnectTime": -1,  # no limit, as in Stringee's project_answer_url.php
        "peerToPeerCall": not to_phone and not record,
    })
    return scco


# --- SCCO for the desk's own routing -----------------------------------------------------


def scco_for_decision(decision: Decision, params: Mapping[str, str]) -> list[dict[str, Any]]:
    """The SCCO that carries out ``decision`` for the answer-URL request ``params``.

    Stringee's ``connect`` rings one party, so a ring decision becomes one connect per agent
    (by Stringee user id) in decision order, each ringing for its step's ring time and
    continuing to the next on failure; agents of one step therefore ring one after another.
    Stringee's documents give no action for voicemail, queues or rejecting, so every other
    decision is an empty SCCO: nothing to connect, the call ends. A Placetel prompt, group
    or routing plan is carried out as its fallback (``Decision.portable``).
    """
    decision = decision.portable()
    if decision.action != "ring":
        return []
    caller, called = params.get("from"), params.get("to")
    from_type = "internal" if (params.get("fromInternal") or "").lower() == "true" else "external"
    legs: list[tuple[dict[str, Any], dict[str, Any], int]] = []
    for step in decision.steps:
        ring_time = step.ring_time or DEFAULT_RING_TIME
        for agent in step.agents:
            if not agent.stringee_user_id:
                raise ValueError(
                    f"agent {agent.name!r} (id {agent.id}) has no Stringee user id; Stringee "
                    "cannot ring them (route with reachable_by='stringee_user_id')"
                )
            legs.append((
                {"type": from_type, "number": caller, "alias": caller},
                {"type": "internal", "number": agent.stringee_user_id, "alias": called},
                ring_time,
            ))
        for number in step.numbers:
            # A phone is called out from our Stringee number, shown as the caller's alias.
            legs.append((
                {"type": "external", "number": caller, "alias": called},
                {"type": "external", "number": number, "alias": number},
                ring_time,
            ))
    scco = [_record_action("mp3")] if decision.record else []
    for index, (source, target, ring_time) in enumerate(legs):
        scco.append({
            "action": "connect",
            "from": source,
            "to": target,
            "customData": params.get("custom"),
            "timeout": ring_time,
            "continueOnFail": index < len(legs) - 1,
            "onFailEventUrl": "",
        })
    return scco
