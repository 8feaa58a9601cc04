"""desk.live.frames: the frame bytes built once per update are the websocket library's own."""

from __future__ import annotations

import pytest
from wsproto.connection import Connection, ConnectionType
from wsproto.events import TextMessage

from desk.live.frames import Frame, text_frame


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 200_000])
def test_a_text_frame_is_what_wsproto_sends_for_the_same_text(size: int) -> None:
    text = ("<p>Klingelt · Đang đổ chuông</p>" * (size // 30 + 1))[:size]
    server = Connection(ConnectionType.SERVER)
    assert text_frame(text) == server.send(TextMessage(data=text))


def test_a_frame_is_its_text_and_builds_its_bytes_once() -> None:
    frame = Frame("<article id=\"call-1\"></article>")
    assert frame == "<article id=\"call-1\"></article>"
    assert frame.wire() is frame.wire()
    client = Connection(ConnectionType.CLIENT)
    client.receive_data(frame.wire())
    (event,) = list(client.events())
    assert isinstance(event, TextMessage) and event.data == frame and event.message_finished
