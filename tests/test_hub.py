"""desk.live.hub: how committed changes are merged, routed to audiences and handed to boards."""

from __future__ import annotations

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
