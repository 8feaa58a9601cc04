"""The mediaservice's documented sample payloads, read from ``fixtures/`` (see SOURCES.md).

``load(name)`` returns a fresh copy each time, decoded from the file as a webhook would
receive it, so a test may change it freely.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent / "fixtures"
# The documented callbacks, by file name; the alarm is posted to /<domain configured>.
CALLBACKS = (
    "newCall", "callNotify", "callAnswered", "callEvent", "sessionCompleted",
    "recordingReady", "newRemoteCall", "getIvrCommand", "getCallIdentifier", "alarm",
)


def load(name: str) -> dict[str, Any]:
    """The sample ``fixtures/<name>.json`` as a dict."""
    data = json.loads((FIXTURES / f"{name}.json").read_text())
    assert isinstance(data, dict), f"{name}.json is not a JSON object"
    return data


def raw(name: str) -> bytes:
    """The sample's bytes exactly as stored, to post as a request body."""
    return (FIXTURES / f"{name}.json").read_bytes()
