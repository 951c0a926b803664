"""Small builders shared by the alert tests."""

from __future__ import annotations

import time
from typing import Callable

from agridrone.types import Alert, AlertKind

HOME = (-35.363261, 149.165230)


def make_alert(n: int, *, kind: AlertKind = AlertKind.WEEDS, revision: int = 1, flight: str = "F1",
               thumbnail: bytes = b"") -> Alert:
    return Alert(alert_id=f"{flight}/{kind.value}/z{n}", kind=kind, severity=5, ts_ns=n * 1_000_000,
                 lat_deg=HOME[0] + n * 1e-5, lon_deg=HOME[1] + n * 1e-5, label=kind.value, confidence=0.8,
                 text=f"alert {n}", revision=revision, area_m2=10.0 * n + revision,
                 thumbnail_jpeg=thumbnail, properties={"flight_id": flight})


class FakeLink:
    """Stands in for the vehicle link's ``send_statustext``; can be told to fail."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, int]] = []
        self.fail = False

    def __call__(self, text: str, severity: int) -> None:
        if self.fail:
            raise ConnectionError("link down")
        self.sent.append((text, severity))


class FakeSink:
    """A sink that acknowledges on the next poll, or stays unavailable."""

    name = "fake"

    def __init__(self) -> None:
        self.available = True
        self.submitted: list = []
        self._done: list = []

    def submit(self, record) -> None:
        from agridrone.alerts.outbox import SinkUnavailable

        if not self.available:
            raise SinkUnavailable("fake sink down")
        self.submitted.append(record)
        self._done.append((record.key, None))

    def poll(self):
        done, self._done = self._done, []
        return done

    def close(self) -> None:
        pass


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str, step: Callable[[], object] | None = None,
               interval_s: float = 0.05) -> None:
    """Call ``step`` until ``condition`` holds; fail the test naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        if step is not None:
            step()
        if condition():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(interval_s)
