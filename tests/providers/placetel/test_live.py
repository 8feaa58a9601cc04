"""Placetel over loopback HTTP into the desk under gunicorn, out through a logged-in board's
websocket: an agent's outgoing call (signed with ``X-PLACETEL-SIGNATURE`` and Basic auth,
both configured) shows on that agent's own board, and its cancelled end follows.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest
import requests

from tests.conftest import PASSWORD, PLACETEL_AUTH
from tests.servers import LiveServer, desk_env, recv_until, running_desk

SECRET = "live-placetel-secret"
CALL = "0c1d2e3f405162738495a6b7c8d9eaf00112233445566778899aabbccddeeff0"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    path: Path = tmp_path_factory.mktemp("placetel-live") / "desk.sqlite3"
    with running_desk(desk_env(f"sqlite:///{path}", DESK_PLACETEL_SECRET=SECRET),
                      PASSWORD) as live:
        yield live


def notify(server: LiveServer, secret: str = SECRET, **form: str) -> requests.Response:
    """POST a Notify delivery as Placetel does: form body, Basic auth, HMAC-SHA256 header."""
    body = urlencode(form).encode()
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return requests.post(
        server.url + "/webhooks/placetel", data=body, auth=PLACETEL_AUTH, timeout=5,
        headers={"Content-Type": "application/x-www-form-urlencoded",
                 "X-PLACETEL-SIGNATURE": signature},
    )


def test_an_outgoing_call_shows_on_the_calling_agents_board_and_ends_cancelled(
    server: LiveServer,
) -> None:
    ann = server.login("ann", PASSWORD)  # SIP peer 777ann@fpbx.de (tests.servers.prepare)
    with server.board(ann) as board:
        board.recv(timeout=5)  # the snapshot
        response = notify(server, event="OutgoingCall", call_id=CALL, to="022199998560",
                          peer="777ann@fpbx.de", direction="out", **{"from": "022129191999"})
        assert response.status_code == 200, response.text
        frame = recv_until(board, 'data-state="dialling"')
        assert 'data-section="calls-mine"' in frame and 'data-direction="outbound"' in frame
        assert "022199998560" in frame

        notify(server, event="HungUp", call_id=CALL, type="canceled", duration="0",
               direction="out", to="022199998560", **{"from": "022129191999"})
        frame = recv_until(board, 'data-state="ended"')
        assert 'data-outcome="cancelled"' in frame and 'data-section="calls-ended"' in frame


def test_a_delivery_signed_with_another_secret_is_refused(server: LiveServer) -> None:
    response = notify(server, secret="not-the-secret", event="OutgoingCall", call_id="x1")
    assert response.status_code == 401
    assert "X-PLACETEL-SIGNATURE" in response.json()["message"]
