"""The ``sim://WORLD`` frame source of the flight loop (issue 6, item 2), over :class:`SimCamera`.

``SimCameraSource`` renders the pose a pose-provider callable returns (the loop reads it from
MAVLink, so it works with the built-in simulator and real ArduCopter SITL alike);
``sim_scheme(pose_provider)`` plugs it into ``agridrone.camera.parse_source(schemes=...)``.
"""

from __future__ import annotations

from typing import Callable

from agridrone.errors import AgriDroneError, CameraError
from agridrone.sim.camera import SIM_SCHEME, SimCamera
from agridrone.types import Frame, Pose

PREFETCH_EVERY = 4           # the source looks for one missing tile ahead every this many frames


class SimCameraSource:
    """The ``sim://WORLD`` frame source: renders the pose that the pose provider returns.

    ``spec`` is "sim://WORLD", a world path, or a :class:`SimCamera` already built (then
    ``camera_kw`` is not used).

    ``pose_provider`` is either ``provider() -> Pose`` (the newest pose) or ``provider(ts_ns) -> Pose``
    (the pose at the capture time ``ts_ns`` read from the injected clock, e.g. through
    ``agridrone.geo.interpolate_pose``). A FrameSource (``open``/``read``/``close``, context manager).
    ``read`` paces frames at ``fps`` on the injected clock (``None``: as fast as asked) and stamps each
    frame with its pose's ts_ns. With ``prefetch_s`` (default 1.5 s), after every ``PREFETCH_EVERY``-th
    frame it renders at most one ground tile that the pose that far ahead (along the pose's velocity)
    will need, so a flight crosses into new ground a tile at a time instead of a row of tiles at once.
    """

    live = True

    def __init__(self, spec, pose_provider: Callable[..., Pose], clock=None, *, fps: float | None = None,
                 prefetch_s: float | None = 1.5, **camera_kw) -> None:
        if not callable(pose_provider):
            raise CameraError(f"simulated camera: expected a pose provider (a callable returning a Pose), "
                              f"got {type(pose_provider).__name__}")
        if fps is not None and not (fps > 0):
            raise CameraError(f"simulated camera: expected fps > 0, got {fps}")
        self._given = spec if isinstance(spec, SimCamera) else None   # an already built camera
        self.spec = str(spec.world.source) if self._given is not None else str(spec)
        self.name = self.spec if self.spec.startswith(SIM_SCHEME) else SIM_SCHEME + self.spec
        self.pose_provider = pose_provider
        self._wants_ts = _takes_one_argument(pose_provider)
        if self._wants_ts and clock is None:
            raise CameraError("simulated camera: a pose provider taking the capture time needs a clock, got none")
        self.clock = clock
        self.fps = fps
        self.prefetch_s = prefetch_s
        self._camera_kw = camera_kw
        self.camera: SimCamera | None = None
        self._index = 0
        self._next_ns: int | None = None
        self.prefetched = 0

    def open(self) -> None:
        if self.camera is None:
            self.camera = self._given or SimCamera(self.spec, **self._camera_kw)

    def read(self) -> Frame:
        if self.camera is None:
            raise CameraError(f"{self.name}: expected an open source, got read() before open()")
        if self.fps and self.clock is not None:
            now = self.clock.monotonic_ns()
            if self._next_ns is not None and now < self._next_ns:
                self.clock.sleep((self._next_ns - now) / 1e9)
            self._next_ns = max(now, self._next_ns or now) + int(1e9 / self.fps)
        try:
            pose = self.pose_provider(self.clock.monotonic_ns()) if self._wants_ts else self.pose_provider()
        except AgriDroneError:
            raise
        except Exception as err:  # the provider is the caller's: say whose error it was, on one line
            raise CameraError(f"{self.name}: the pose provider failed: {type(err).__name__}: {err}") from None
        img = self.camera.render_image(pose)
        img.setflags(write=False)
        frame = Frame(ts_ns=int(pose.ts_ns), image=img, index=self._index, source=self.name)
        self._index += 1
        if self.prefetch_s and (pose.vn_m_s or pose.ve_m_s) and self._index % PREFETCH_EVERY == 1:
            from agridrone.geo import offset_deg

            lat, lon = offset_deg(pose.lat_deg, pose.lon_deg, pose.vn_m_s * self.prefetch_s,
                                  pose.ve_m_s * self.prefetch_s)
            ahead = Pose(pose.ts_ns, lat, lon, pose.alt_amsl_m, pose.alt_rel_home_m, pose.roll_deg,
                         pose.pitch_deg, pose.yaw_deg, pose.vn_m_s, pose.ve_m_s, pose.vd_m_s)
            self.prefetched += self.camera.prefetch(ahead, max_tiles=1)
        return frame

    def close(self) -> None:
        self.camera = None

    def __enter__(self) -> "SimCameraSource":
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _takes_one_argument(fn) -> bool:
    import inspect

    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
                  and p.default is p.empty]
    return len(positional) == 1 or (not positional and any(p.kind == p.VAR_POSITIONAL for p in params))


def sim_scheme(pose_provider: Callable[[], Pose], **kw) -> Callable:
    """A factory for ``agridrone.camera.parse_source(spec, clock, schemes={"sim": sim_scheme(...)})``."""
    def factory(spec: str, clock) -> SimCameraSource:
        return SimCameraSource(spec, pose_provider, clock, **kw)
    return factory
