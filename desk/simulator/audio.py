"""The demo recording: a few seconds of audio generated here, so playback works offline.

The simulated mediaservice hands this out for every recording (``promptfile/{name}/url``).
It is a 16-bit mono WAV at 8 kHz (telephone quality): two voices taking turns, drawn as
short vowel-like tones with soft edges, so a person pressing play hears that something
was recorded rather than silence. Built once per process with the standard library.
"""

from __future__ import annotations

import io
import math
import struct
import wave
from functools import cache

RATE = 8000

# (start s, length s, pitch Hz): a caller and an agent alternating.
_TURNS = ((0.2, 0.9, 180.0), (1.3, 0.7, 240.0), (2.2, 1.0, 170.0), (3.4, 0.8, 230.0))
SECONDS = 4.4


@cache
def recording_wav() -> bytes:
    """The WAV file's bytes (about 70 kB)."""
    samples = [0.0] * int(SECONDS * RATE)
    for start, length, pitch in _TURNS:
        first, count = int(start * RATE), int(length * RATE)
        for i in range(count):
            t = i / RATE
            envelope = math.sin(math.pi * i / count)  # fade in and out
            syllables = 0.6 + 0.4 * math.sin(2 * math.pi * 4 * t)  # four "syllables" a second
            voice = sum(math.sin(2 * math.pi * pitch * k * t) / k for k in (1, 2, 3))
            samples[first + i] += 0.35 * envelope * syllables * voice
    frames = b"".join(struct.pack("<h", int(max(-1.0, min(1.0, s)) * 32000)) for s in samples)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(frames)
    return buffer.getvalue()
