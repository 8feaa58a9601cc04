"""desk.live.hub: how committed changes are merged, routed to audiences and handed to boards."""

from __future__ import annotations

import contextlib

from desk.live.hub import RECONNECT, Board, Hub


def test_queued_changes_are_merged_into_one_render_and_only_local_ones_are_published() -> None:
    hub = Hub()
    hub._jobs.put(({"calls": {1}}, True, 0.0, (1,)))
    hub._jobs.put(({"calls": {1, 2}, "agents": {7}}, False, 0.0, (2,)))  # another process
    hub._jobs.put(({"calls": {3}}, True, 0.0, (3,)))
    everything, local, numbers = hub._next_batch()
    assert everything == {"calls": {1, 2, 3}, "agents": {7}}
    assert local == {"calls": {1, 3}}
    assert numbers == [1, 3]
    assert hub._jobs.empty()


def test_each_board_gets_the_fragments_of_its_audience_as_one_string() -> None:
    hub = Hub()
    rendered: list[set[str]] = []

    def renderer(changes: dict, audiences: dict[str, set[str]]) -> dict:
        rendered.append(audiences[""])
        return {"": [("supervisor", "<s/>"), ("agent:1", "<mine/>"), ("others:1", "<theirs/>"),
                     ("agents", "<all/>")]}

    hub.configure(renderer)
    ann, bob, sue = Board(1, "agent"), Board(2, "agent"), Board(3, "supervisor")
    hub.boards.update({ann, bob, sue})
    hub.deliver({"calls": {1}})
    assert rendered == [{"agent", "supervisor"}]  # rendered once for everyone
    assert ann.outbox.get_nowait() == "<mine/><all/>"
    assert bob.outbox.get_nowait() == "<theirs/><all/>"
    assert sue.outbox.get_nowait() == "<s/>"


def test_boards_that_get_the_same_fragments_share_one_frame() -> None:
    hub = Hub()
    hub.configure(lambda changes, audiences: {
        "": [("supervisor", "<s/>"), ("agent:1", "<mine/>"), ("others:1", "<theirs/>"),
             ("agents", "<all/>")],
        "de": [("supervisor", "<s-de/>"), ("agents", "<alle/>")],
    })
    ann = Board(1, "agent")
    bob, cid = Board(2, "agent"), Board(4, "agent")  # named by no fragment: one frame
    sue, tom = Board(3, "supervisor"), Board(5, "supervisor")
    ute, udo = Board(6, "agent", voice="de"), Board(7, "supervisor", voice="de")
    hub.boards.update({ann, bob, cid, sue, tom, ute, udo})
    hub.deliver({"calls": {1}})
    frames = {b.user_id: b.outbox.get_nowait() for b in hub.boards}
    assert frames == {1: "<mine/><all/>", 2: "<theirs/><all/>", 4: "<theirs/><all/>",
                      3: "<s/>", 5: "<s/>", 6: "<alle/>", 7: "<s-de/>"}
    assert frames[2] is frames[4] and frames[3] is frames[5]
    assert frames[1] is not frames[2]
    assert hub.delivered == 7


def test_a_board_too_far_behind_is_told_to_reconnect() -> None:
    board = Board(1, "agent", max_queue=2)
    assert board.offer("a") and board.offer("b")
    assert not board.offer("c")
    assert board.outbox.get_nowait() is RECONNECT and board.outbox.empty()


def _peer_frames(data: bytes) -> list[str]:
    """The text frames in ``data`` (server frames: unmasked), which must parse whole."""
    texts = []
    while data:
        assert data[0] == 0x81, f"not the start of a text frame: {data[:8]!r}"
        size, at = data[1] & 0x7F, 2
        if size == 126:
            size, at = int.from_bytes(data[2:4], "big"), 4
        elif size == 127:
            size, at = int.from_bytes(data[2:10], "big"), 10
        assert len(data) >= at + size, "a frame was cut short"
        texts.append(data[at:at + size].decode())
        data = data[at + size:]
    return texts


def test_updates_written_straight_to_a_full_socket_arrive_whole_and_in_order() -> None:
    """A real socket pair with a small send buffer: the dispatcher's non-blocking write
    takes what fits; the rest of that frame, and every later update, go through the outbox
    and the handler's blocking send, and the peer reads every frame whole, in order."""
    import socket as stdlib_socket
    import threading

    from desk.live.frames import Frame, text_frame
    from desk.live.views import _joined

    ours, theirs = stdlib_socket.socketpair()
    ours.setsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_SNDBUF, 4096)
    board = Board(1, "agent", max_queue=50)
    board.write = lambda data: ours.send(data, stdlib_socket.MSG_DONTWAIT)
    updates = [f"<u{i}>" + "x" * (i * 3000) + "</u>" for i in range(12)]
    received = bytearray()
    first = 0
    while board.outbox.empty():  # until the buffer fills: the rest of a frame waits
        assert board.offer(Frame(updates[first]))
        first += 1
    assert not board.outbox.empty()
    theirs.setblocking(False)
    with contextlib.suppress(BlockingIOError):
        while chunk := theirs.recv(65536):  # the peer reads: the buffer has room again
            received.extend(chunk)
    theirs.setblocking(True)
    for later in updates[first:]:  # must not overtake what waits
        assert board.offer(Frame(later))

    def read() -> None:
        while chunk := theirs.recv(65536):
            received.extend(chunk)

    reader = threading.Thread(target=read)
    reader.start()
    with board.lock:  # what the websocket handler does with what waits
        out, reconnect = _joined(board.take(100))
        for data in out:
            ours.sendall(data if isinstance(data, bytes) else text_frame(data))
    ours.close()
    reader.join(10)
    theirs.close()
    assert not reconnect
    assert "".join(_peer_frames(bytes(received))) == "".join(updates)


def test_while_the_handler_sends_updates_wait_their_turn() -> None:
    import socket as stdlib_socket

    from desk.live.frames import Frame

    ours, theirs = stdlib_socket.socketpair()
    board = Board(1, "agent")
    board.write = lambda data: ours.send(data, stdlib_socket.MSG_DONTWAIT)
    with board.lock:  # the handler is sending
        assert board.offer(Frame("<late/>"))
    assert board.outbox.get_nowait() == "<late/>"
    assert board.offer(Frame("<now/>"))  # nothing waits and nobody sends: written at once
    assert board.outbox.empty() and theirs.recv(100) == Frame("<now/>").wire()
    ours.close()
    theirs.close()
