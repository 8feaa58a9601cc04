"""An in-process stand-in for the Redis LIST Teleforge pushes its notifications onto.

With no Redis configured, the demo's simulated Teleforge pushes here and the desk's real
consumer (``desk.providers.teleforge.listener.TeleforgeListener``, given this object as its client)
takes from here, so a demo dial's notifications travel the same code path as production's:
``BLMOVE`` into the consumer's processing list, apply, ``LREM``. Only the handful of
commands that consumer uses exist, with Redis's meaning; the lists live as long as the
process (which is why it is for the demo only).
"""

from __future__ import annotations

import fnmatch
import threading
from collections import deque
from collections.abc import Iterator
from typing import Any


def _bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    return str(value).encode()


class InProcessList:
    """Redis list commands (LPUSH, LINDEX, BLMOVE, LMOVE, LREM, LLEN) plus the few keys the
    consumer's heartbeat and recovery touch. Thread-safe; ``blmove`` blocks like Redis's."""

    def __init__(self) -> None:
        self._lists: dict[str, deque[bytes]] = {}
        self._keys: dict[str, bytes] = {}
        self._changed = threading.Condition()

    # -- what the simulated Teleforge uses ---------------------------------------------------
    def lpush(self, key: str, *values: Any) -> int:
        with self._changed:
            items = self._lists.setdefault(key, deque())
            for value in values:
                items.appendleft(_bytes(value))
            self._changed.notify_all()
            return len(items)

    def llen(self, key: str) -> int:
        with self._changed:
            return len(self._lists.get(key, ()))

    # -- what the consumer uses --------------------------------------------------------------
    def lindex(self, key: str, index: int) -> bytes | None:
        with self._changed:
            items = self._lists.get(key)
            try:
                return items[index] if items else None
            except IndexError:
                return None

    def _move(self, source: str, destination: str, wherefrom: str, whereto: str) -> bytes | None:
        items = self._lists.get(source)
        if not items:
            return None
        value = items.pop() if wherefrom.upper() == "RIGHT" else items.popleft()
        target = self._lists.setdefault(destination, deque())
        if whereto.upper() == "RIGHT":
            target.append(value)
        else:
            target.appendleft(value)
        return value

    def lmove(self, source: str, destination: str, wherefrom: str = "LEFT",
              whereto: str = "RIGHT") -> bytes | None:
        with self._changed:
            return self._move(source, destination, wherefrom, whereto)

    def blmove(self, source: str, destination: str, timeout: float, wherefrom: str = "LEFT",
               whereto: str = "RIGHT") -> bytes | None:
        with self._changed:
            self._changed.wait_for(lambda: bool(self._lists.get(source)), timeout or None)
            return self._move(source, destination, wherefrom, whereto)

    def lrem(self, key: str, count: int, value: Any) -> int:
        """Remove ``count`` copies of ``value`` (from the tail when negative; 0 = all)."""
        wanted = _bytes(value)
        with self._changed:
            items = self._lists.get(key)
            if not items:
                return 0
            order = list(items) if count >= 0 else list(reversed(items))
            removed, kept = 0, []
            for item in order:
                if item == wanted and (count == 0 or removed < abs(count)):
                    removed += 1
                else:
                    kept.append(item)
            self._lists[key] = deque(kept if count >= 0 else reversed(kept))
            return removed

    def set(self, key: str, value: Any, ex: int | None = None) -> bool:
        with self._changed:
            self._keys[key] = _bytes(value)  # one process: a heartbeat never needs to expire
            return True

    def exists(self, *keys: str) -> int:
        with self._changed:
            return sum(1 for key in keys if key in self._keys or self._lists.get(key))

    def scan_iter(self, match: str | None = None, count: int | None = None) -> Iterator[str]:
        with self._changed:
            names = [key for key, items in self._lists.items() if items]
        return iter([n for n in names if match is None or fnmatch.fnmatchcase(n, match)])

    def client_list(self) -> list[dict[str, Any]]:
        return []  # one process, one consumer: nobody else's processing list to recover

    def close(self) -> None:
        pass
