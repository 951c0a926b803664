"""The flight loop's configuration: one frozen dataclass per stage, loaded once at start-up from TOML.

``load_config(path)`` reads a TOML file (``tomllib``) whose tables name the stages (``[capture]``,
``[perception]``, ``[pose]``, ``[tracking]``, ``[planning]``, ``[commander]``, ``[safety]``,
``[loop]``); every key is optional and falls back to the documented default, which is exactly what
``agridrone/data/agridrone.toml`` (the documented default file) says. Unknown tables or keys and
values of the wrong type are refused with a ConfigError naming the file, the key, what was expected
and what came. ``load_config(None)`` gives the defaults.

Times are seconds of *vehicle* time (simulated time in the simulator: the loop scales its wall clock
by the simulator's speed-up, see ``agridrone.pipeline``), except ``capture.sim_fps`` and the
latency figures, which are wall-clock.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from agridrone.errors import ConfigError

HOLD_MODES = ("BRAKE", "LOITER")
CAMERA_LOST_ACTIONS = ("hold", "continue")


def default_config_path() -> Path:
    """The documented default file shipped with the package."""
    return Path(__file__).resolve().parent / "data" / "agridrone.toml"


def _positive(section: str, obj: Any, *names: str) -> None:
    for name in names:
        v = getattr(obj, name)
        if not (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0):
            raise ConfigError(f"[{section}] {name}: expected a number > 0, got {v!r}")


@dataclass(frozen=True)
class CaptureConfig:
    """Frame capture. ``sim_fps``: wall-clock frames per second the ``sim://`` camera renders (paced);
    ``get_timeout_s``: how long the loop waits for a frame before the safety monitor counts the camera silent;
    ``width_px``/``height_px``: the simulated camera's image size."""

    get_timeout_s: float = 0.25
    backoff_initial_s: float = 0.1
    backoff_max_s: float = 5.0
    sim_fps: float = 30.0
    width_px: int = 640
    height_px: int = 480

    def __post_init__(self) -> None:
        _positive("capture", self, "get_timeout_s", "backoff_initial_s", "backoff_max_s", "sim_fps", "width_px",
                  "height_px")


@dataclass(frozen=True)
class PerceptionConfig:
    """Models and rates. Model paths are relative to the project root (or absolute); an empty
    ``health_model`` disables the health classifier. Health tiles run when the footprint's centre has
    moved by more than ``health_footprint_fraction`` of the footprint's length since the last run.
    ``tile_scale`` > 0 runs the detector over tiles of each frame that reach the model at that
    resolution (1.0: frame pixels; see agridrone.perception.tiling); 0 shrinks the whole frame into one
    input. ``tile_overlap_px`` > 0 makes neighbouring tiles share at least that many pixels: at 640x480
    and 320 px tiles, a 3 x 2 grid whose middle column is centred on the image's vertical centre line, the
    flight path of a nadir camera, where the 2 x 2 grid of 0 has its seam and cuts every object ahead."""

    detector_model: str = "models/detector.tflite"
    health_model: str = "models/health.tflite"
    conf_threshold: float = 0.35
    iou_threshold: float = 0.45
    num_threads: int = 2
    tile_scale: float = 1.0
    tile_overlap_px: int = 64
    health_footprint_fraction: float = 0.5
    health_rows: int = 6
    health_cols: int = 8

    def __post_init__(self) -> None:
        _positive("perception", self, "iou_threshold", "num_threads", "health_footprint_fraction", "health_rows",
                  "health_cols")
        if not 0.0 <= self.conf_threshold < 1.0:
            raise ConfigError(f"[perception] conf_threshold: expected 0 <= T < 1, got {self.conf_threshold!r}")
        if not (self.tile_scale == 0 or 0.1 <= self.tile_scale <= 4.0):
            raise ConfigError(f"[perception] tile_scale: expected 0 (no tiles) or 0.1..4, got {self.tile_scale!r}")
        if self.tile_overlap_px < 0:
            raise ConfigError(f"[perception] tile_overlap_px: expected >= 0, got {self.tile_overlap_px!r}")


@dataclass(frozen=True)
class PoseConfig:
    """Pose history from telemetry, for the pose at a frame's capture time: ``history_s`` kept,
    dead reckoning with the velocity up to ``max_extrapolation_s`` past the newest pose; a frame
    whose nearest pose is older than ``max_pose_age_s`` is skipped (counted as ``no_pose``)."""

    history_s: float = 5.0
    max_extrapolation_s: float = 1.0
    max_pose_age_s: float = 1.0

    def __post_init__(self) -> None:
        _positive("pose", self, "history_s", "max_extrapolation_s", "max_pose_age_s")


@dataclass(frozen=True)
class CommanderConfig:
    """Course corrections: GUIDED position targets re-sent at ``target_rate_hz`` (>= 2) along a detour;
    ``hold_mode`` (BRAKE or LOITER) on a HOLD, kept until the pilot resumes AUTO (or, with
    ``resume_after_hold``, until the planner says the way is clear); ``min_alt_rel_m``: no command
    below this height above home (take-off and landing belong to the autopilot and the pilot)."""

    target_rate_hz: float = 4.0
    hold_mode: str = "BRAKE"
    resume_after_hold: bool = False
    min_alt_rel_m: float = 5.0

    def __post_init__(self) -> None:
        _positive("commander", self, "target_rate_hz")
        if self.target_rate_hz < 2.0:
            raise ConfigError(f"[commander] target_rate_hz: expected >= 2 Hz, got {self.target_rate_hz!r}")
        if self.hold_mode not in HOLD_MODES:
            raise ConfigError(f"[commander] hold_mode: expected one of {', '.join(HOLD_MODES)}, got {self.hold_mode!r}")
        if self.min_alt_rel_m < 0:
            raise ConfigError(f"[commander] min_alt_rel_m: expected >= 0, got {self.min_alt_rel_m!r}")


@dataclass(frozen=True)
class SafetyConfig:
    """The safety monitor: no frame for ``camera_timeout_s`` (wall clock: a silent camera is a property
    of this computer, not of the vehicle's time) = camera lost (``on_camera_lost``: hold the vehicle, or
    continue the mission blind); no telemetry pose for ``pose_timeout_s`` (wall clock too) = no planning,
    no command."""

    camera_timeout_s: float = 5.0
    on_camera_lost: str = "hold"
    pose_timeout_s: float = 1.0

    def __post_init__(self) -> None:
        _positive("safety", self, "camera_timeout_s", "pose_timeout_s")
        if self.on_camera_lost not in CAMERA_LOST_ACTIONS:
            raise ConfigError(f"[safety] on_camera_lost: expected one of {', '.join(CAMERA_LOST_ACTIONS)}, "
                              f"got {self.on_camera_lost!r}")


@dataclass(frozen=True)
class LoopConfig:
    """The loop itself. ``latency_window``: samples kept per stage for the percentiles;
    ``latency_budget_s``: the wall-clock frame-to-command latency the planner's look-ahead allows for
    (multiplied by the time scale in the simulator); ``static_memory_s``: confirmed obstacles of static
    classes are remembered this long after the tracker drops them (they cannot be re-seen while out
    of view), ``still_memory_s``: people, animals and vehicles that stood still, this long, once their track
    has ``still_memory_min_hits`` hits (fewer may be two projection outliers that agreed);
    ``progress_every_s``: wall seconds between progress lines; ``margin_extra_m``: added to every
    safety margin of the mission (the autopilot's path-following error and the ground projection's error
    must not eat into the margin the agronomist asked for)."""

    latency_window: int = 4096
    latency_budget_s: float = 0.25
    static_memory_s: float = 600.0
    still_memory_s: float = 120.0
    still_memory_min_hits: int = 3
    static_classes: tuple[str, ...] = ("tree", "pole", "building")
    progress_every_s: float = 2.0
    margin_extra_m: float = 1.0

    def __post_init__(self) -> None:
        _positive("loop", self, "latency_window", "latency_budget_s", "progress_every_s")
        if self.margin_extra_m < 0:
            raise ConfigError(f"[loop] margin_extra_m: expected >= 0, got {self.margin_extra_m!r}")
        for name in ("static_memory_s", "still_memory_s"):
            if getattr(self, name) < 0:
                raise ConfigError(f"[loop] {name}: expected >= 0, got {getattr(self, name)!r}")
        hits = self.still_memory_min_hits
        if isinstance(hits, bool) or not isinstance(hits, int) or hits < 0:
            raise ConfigError(f"[loop] still_memory_min_hits: expected an integer >= 0, got {hits!r}")


def _tracker_defaults():
    from agridrone.tracking import TrackerConfig

    # tentative tracks live 3 s (the tracker's own default is 1 s): under the simulator's speed-up the loop
    # sees about one frame per vehicle second, and an obstacle must collect its hits across that spacing
    # and a track "moves" from 1 m/s (0.5 in the tracker): a standing person's projected position jitters by
    # a metre or so between frames a vehicle second apart
    # and 2 hits confirm (3 in the tracker): at a frame a vehicle second, 3 hits cost 30 m of flight at 10 m/s
    # and a tree/pole/building seen once is kept tentative for two minutes: seen again from the next survey line
    # it is confirmed long before the vehicle reaches it (its first sighting is usually from the line before)
    # and people and animals associate with each other: from survey altitude the detector often calls one
    # object a person in one frame and an animal in the next; one track, labelled by its votes, is one alert
    # (the planner keeps the larger margin of both labels)
    # and a confirmed tree/pole/building is kept two minutes without a hit, not 3 s: seen again from the next
    # line it is the same track (ObstacleMemory would keep it too, but a fresh track would restart its position
    # from a few sightings, up to 2 m off where the vehicle was already flying round the old one)
    return TrackerConfig(tentative_forget_after_s=3.0, moving_speed_m_s=1.0, confirm_hits=2,
                         static_forget_after_s=120.0, static_tentative_forget_after_s=120.0,
                         class_groups=(("person", "animal"),))


def _planner_defaults():
    from agridrone.planning import PlannerConfig

    return PlannerConfig()


@dataclass(frozen=True)
class AppConfig:
    """Every stage's settings; ``tracking`` and ``planning`` are the stages' own config classes
    (agridrone.tracking.TrackerConfig, agridrone.planning.PlannerConfig). The mission's safety margins
    and speed are laid over ``planning`` when a flight starts."""

    capture: CaptureConfig = field(default_factory=CaptureConfig)
    perception: PerceptionConfig = field(default_factory=PerceptionConfig)
    pose: PoseConfig = field(default_factory=PoseConfig)
    tracking: Any = field(default_factory=_tracker_defaults)
    planning: Any = field(default_factory=_planner_defaults)
    commander: CommanderConfig = field(default_factory=CommanderConfig)
    safety: SafetyConfig = field(default_factory=SafetyConfig)
    loop: LoopConfig = field(default_factory=LoopConfig)
    source: str = "<defaults>"


def _convert(where: str, value: Any, default: Any) -> Any:
    """``value`` from TOML, checked against the type of the documented default."""
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if isinstance(default, int) and not isinstance(default, bool):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    if isinstance(default, tuple):
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected an array, got {value!r}")
        if all(isinstance(d, tuple) for d in default) or (value and isinstance(value[0], list)):
            return tuple(tuple(str(x) for x in v) if isinstance(v, list) else v for v in value)
        return tuple(value)
    if isinstance(default, Mapping):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a table of name = number, got {value!r}")
        out = {}
        for k, v in value.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ConfigError(f"{where}.{k}: expected a number, got {v!r}")
            out[str(k)] = float(v)
        return out
    return value


def _section(label: str, name: str, table: Any, default: Any) -> Any:
    if not isinstance(table, dict):
        raise ConfigError(f"{label}: [{name}] expected a table, got {table!r}")
    fields = {f.name for f in dataclasses.fields(default)}
    unknown = sorted(set(table) - fields)
    if unknown:
        raise ConfigError(f"{label}: [{name}] unknown key {unknown[0]!r} "
                          f"(expected some of {', '.join(sorted(fields))})")
    changes = {k: _convert(f"{label}: [{name}] {k}", v, getattr(default, k)) for k, v in table.items()}
    try:
        return dataclasses.replace(default, **changes)
    except ConfigError as err:
        raise ConfigError(f"{label}: {err}") from None
    except (ValueError, TypeError) as err:
        raise ConfigError(f"{label}: [{name}] {err}") from None


def load_config(path: str | Path | None = None) -> AppConfig:
    """The configuration in ``path`` (TOML) over the documented defaults; None: the defaults."""
    base = AppConfig()
    if path is None:
        return base
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path} "
                          f"(expected a TOML file; see agridrone/data/agridrone.toml)") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"config file {path}: expected readable UTF-8 TOML, "
                          f"got {type(err).__name__}: {err}") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"config file {path}: expected valid TOML, got {err}") from None
    sections = {f.name for f in dataclasses.fields(AppConfig)} - {"source"}
    unknown = sorted(set(data) - sections)
    if unknown:
        raise ConfigError(f"config file {path}: unknown table [{unknown[0]}] (expected some of "
                          f"{', '.join('[' + s + ']' for s in sorted(sections))})")
    changes: dict[str, Any] = {name: _section(str(path), name, table, getattr(base, name))
                               for name, table in data.items()}
    return dataclasses.replace(base, **changes, source=str(path))
