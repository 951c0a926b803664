"""Things that happen on the link, delivered to whoever subscribed.

Kinds: ``link_lost``, ``link_recovered``, ``mode`` (value: the new mode name), ``armed`` (value:
bool), ``statustext`` (value: ``StatusText``), ``mission_item_reached`` (value: seq),
``mission_current`` (value: seq), ``fence_breach`` (value: breach_status).

Subscribe *before* triggering what you wait for::

    with vehicle.events.subscribe({"mission_item_reached"}) as sub:
        vehicle.set_mode("AUTO")
        event = sub.get(timeout_s=30)          # WaitTimeout if nothing comes

Callbacks (``events.on(fn, kinds)``) run on the link's reader thread: keep them short.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from agridrone.errors import WaitTimeout

EVENT_KINDS = frozenset({"link_lost", "link_recovered", "mode", "armed", "statustext", "mission_item_reached",
                         "mission_current", "fence_breach"})


@dataclass(frozen=True)
class VehicleEvent:
    kind: str
    ts_ns: int
    value: Any = None


def _check_kinds(kinds: Iterable[str] | None) -> frozenset[str] | None:
    if kinds is None:
        return None
    kinds = frozenset([kinds] if isinstance(kinds, str) else kinds)
    unknown = kinds - EVENT_KINDS
    if unknown:
        raise ValueError(f"event kinds: expected some of {sorted(EVENT_KINDS)}, got {sorted(unknown)}")
    return kinds


class EventQueue:
    """Events of some kinds, queued from the moment of subscription."""

    def __init__(self, bus: "EventBus", kinds: frozenset[str] | None) -> None:
        self._bus = bus
        self.kinds = kinds
        self._queue: queue.SimpleQueue = queue.SimpleQueue()

    def _offer(self, event: VehicleEvent) -> None:
        if self.kinds is None or event.kind in self.kinds:
            self._queue.put(event)

    def get(self, timeout_s: float, what: str = "") -> VehicleEvent:
        """The next event; WaitTimeout after ``timeout_s``."""
        try:
            return self._queue.get(timeout=max(0.0, timeout_s))
        except queue.Empty:
            wanted = what or f"an event of kind {', '.join(sorted(self.kinds or EVENT_KINDS))}"
            raise WaitTimeout(f"expected {wanted} within {timeout_s:g} s, got none", origin=wanted,
                              timeout_s=timeout_s) from None

    def wait_for(self, predicate: Callable[[VehicleEvent], bool], timeout_s: float, what: str) -> VehicleEvent:
        """The first event satisfying ``predicate``; WaitTimeout(origin=what) otherwise."""
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            try:
                event = self._queue.get(timeout=max(0.0, remaining))
            except queue.Empty:
                raise WaitTimeout(f"expected {what} within {timeout_s:g} s, got none", origin=what,
                                  timeout_s=timeout_s) from None
            if predicate(event):
                return event

    def drain(self) -> list[VehicleEvent]:
        out = []
        while True:
            try:
                out.append(self._queue.get_nowait())
            except queue.Empty:
                return out

    def close(self) -> None:
        self._bus._remove(self)

    def __enter__(self) -> "EventQueue":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class EventBus:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queues: list[EventQueue] = []
        self._callbacks: list[tuple[Callable[[VehicleEvent], None], frozenset[str] | None]] = []
        self.callback_errors = 0

    def subscribe(self, kinds: Iterable[str] | str | None = None) -> EventQueue:
        q = EventQueue(self, _check_kinds(kinds))
        with self._lock:
            self._queues.append(q)
        return q

    def on(self, callback: Callable[[VehicleEvent], None], kinds: Iterable[str] | str | None = None) -> Callable[[], None]:
        """Call ``callback(event)`` for each event; returns a function that cancels it."""
        entry = (callback, _check_kinds(kinds))
        with self._lock:
            self._callbacks.append(entry)

        def cancel() -> None:
            with self._lock:
                if entry in self._callbacks:
                    self._callbacks.remove(entry)

        return cancel

    def _remove(self, q: EventQueue) -> None:
        with self._lock:
            if q in self._queues:
                self._queues.remove(q)

    def emit(self, event: VehicleEvent) -> None:
        with self._lock:
            queues = list(self._queues)
            callbacks = list(self._callbacks)
        for q in queues:
            q._offer(event)
        for callback, kinds in callbacks:
            if kinds is None or event.kind in kinds:
                try:
                    callback(event)
                except Exception:  # noqa: BLE001 - a subscriber's bug must not stop the link
                    self.callback_errors += 1
