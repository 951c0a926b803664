"""MAVLink 2 message signing: the key, the link id and the timestamps (off by default).

A ``Signing`` holds a 32-byte secret key and the link id this companion uses. When a ``Vehicle`` is
connected with one, every message it sends is signed, and every message it receives must carry a
valid signature for that key: unsigned and wrongly signed messages are dropped and counted
(``LinkStats.unsigned_dropped`` / ``badsig_dropped``) instead of reaching telemetry or commands.

Timestamps are MAVLink's: units of 10 microseconds since 2015-01-01 UTC. That is wall-clock time
because the format asks for it (the autopilot compares it against GPS time), but the value this
link sends never goes backwards: each message carries ``max(last + 1, now)``.

The key comes from a file: either exactly 32 raw bytes, or 64 hexadecimal characters (with an
optional trailing newline), as ``Signing.from_file`` reads it.
"""

from __future__ import annotations

import os
import string
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from agridrone.errors import LinkError

KEY_LEN = 32
# 2015-01-01T00:00:00Z as a Unix time: the MAVLink signing epoch.
SIGNING_EPOCH_UNIX_S = 1420070400


def signing_timestamp_now(unix_time_s: float) -> int:
    """The MAVLink signing timestamp (10 us units since 2015-01-01) for a Unix time in seconds."""
    return max(0, int((unix_time_s - SIGNING_EPOCH_UNIX_S) * 100_000))


def read_key_file(path: str | os.PathLike) -> bytes:
    """A 32-byte key from a file holding 32 raw bytes or 64 hex characters; LinkError otherwise."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as err:
        raise LinkError(f"signing key: expected a readable key file at {p}, got {err.strerror or err}") from None
    if len(data) == KEY_LEN:
        return data
    text = data.strip()
    if len(text) == 2 * KEY_LEN and all(chr(c) in string.hexdigits for c in text):
        return bytes.fromhex(text.decode("ascii"))
    raise LinkError(f"signing key {p}: expected 32 raw bytes or 64 hex characters, got {len(data)} bytes"
                    f"{' of text' if _is_text(data) else ''}")


def _is_text(data: bytes) -> bool:
    try:
        data.decode("ascii")
    except UnicodeDecodeError:
        return False
    return True


@dataclass(frozen=True)
class Signing:
    """How this link signs: the secret key and the link id (0..255)."""

    key: bytes = field(repr=False)
    link_id: int = 0
    wall_time_s: Callable[[], float] = field(default=time.time, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.key, (bytes, bytearray)) or len(self.key) != KEY_LEN:
            got = f"{len(self.key)} bytes" if isinstance(self.key, (bytes, bytearray)) else type(self.key).__name__
            raise LinkError(f"signing key: expected {KEY_LEN} bytes, got {got}")
        if not isinstance(self.link_id, int) or not 0 <= self.link_id <= 255:
            raise LinkError(f"signing link_id: expected 0..255, got {self.link_id!r}")
        object.__setattr__(self, "key", bytes(self.key))

    @classmethod
    def from_file(cls, path: str | os.PathLike, link_id: int = 0) -> "Signing":
        return cls(read_key_file(path), link_id)

    def configure_sender(self, sender: Any) -> "TimestampSource":
        """Make a pymavlink ``MAVLink`` object sign what it sends; returns the timestamp source to
        call (``stamp(sender)``) before each send."""
        sender.signing.secret_key = self.key
        sender.signing.link_id = self.link_id
        sender.signing.sign_outgoing = True
        source = TimestampSource(self.wall_time_s)
        source.stamp(sender)
        return source

    def configure_parser(self, parser: Any) -> None:
        """Make a pymavlink ``MAVLink`` object reject unsigned and wrongly signed messages.

        With a key and no ``allow_unsigned_callback``, pymavlink turns both into BAD_DATA with the
        reason "Invalid signature"; the link counts them and drops them.
        """
        parser.signing.secret_key = self.key
        parser.signing.link_id = self.link_id
        parser.signing.allow_unsigned_callback = None


class TimestampSource:
    """Keeps the outgoing signing timestamp at wall-clock time, never going backwards."""

    def __init__(self, wall_time_s: Callable[[], float]) -> None:
        self._wall_time_s = wall_time_s

    def stamp(self, sender: Any) -> None:
        """Call before packing a message with ``sender`` (pymavlink adds 1 per signed message itself)."""
        sender.signing.timestamp = max(sender.signing.timestamp, signing_timestamp_now(self._wall_time_s()))


def is_signed_packet(raw: bytes | bytearray) -> bool:
    """Whether a raw MAVLink packet has the MAVLink 2 'signed' incompatibility flag set."""
    return len(raw) >= 3 and raw[0] == 0xFD and bool(raw[2] & 0x01)
