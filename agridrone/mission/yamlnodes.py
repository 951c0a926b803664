"""Reading hand-written YAML with positions: every value keeps the file:line:col it came from.

PyYAML's ``compose`` gives the node tree with start marks; this module walks that tree with small
typed readers that *collect* problems (so ``mission check`` can list them all) instead of raising
at the first one. Unknown keys get the nearest known key as a suggestion (difflib).
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import yaml

from agridrone.errors import MissionError


@dataclass(frozen=True, slots=True)
class Loc:
    """A place in a file, 1-based line and column as editors show them."""

    file: str
    line: int = 0
    col: int = 0

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}" if self.line else self.file


class MissionFileError(MissionError):
    """A user error in a mission (or world) file: ``file:line:col: key: what was expected, what came``."""

    def __init__(self, loc: Loc, key: str, message: str, problems: tuple["MissionFileError", ...] = ()) -> None:
        self.loc = loc
        self.key = key
        self.detail = message
        self.problems = problems or (self,)
        super().__init__(f"{loc}: {key}: {message}" if key else f"{loc}: {message}")


@dataclass(frozen=True, slots=True)
class MissionWarning:
    """A suspicious but flyable value; printed, never raised."""

    loc: Loc
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.loc}: warning: {self.key}: {self.message}" if self.key else f"{self.loc}: warning: {self.message}"


def describe(node: yaml.Node) -> str:
    """How a node reads to a person: 'a list', 'a mapping', 'the text "forty"', 'the number 12'."""
    if isinstance(node, yaml.SequenceNode):
        return f"a list of {len(node.value)} item(s)"
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    tag = node.tag.rsplit(":", 1)[-1]
    if tag in ("int", "float"):
        return f"the number {node.value}"
    if tag == "bool":
        return f"the boolean {node.value}"
    if tag == "null":
        return "nothing (null)"
    text = node.value if len(node.value) <= 40 else node.value[:37] + "..."
    return f"the text {text!r}"


class Reader:
    """Collects problems while reading one YAML file's node tree."""

    def __init__(self, label: str, base_dir: Path | None = None) -> None:
        self.label = label
        self.base_dir = base_dir or Path(".")
        self.errors: list[MissionFileError] = []
        self.warnings: list[MissionWarning] = []
        self._constructor = yaml.constructor.SafeConstructor()
        self.ring_nodes: dict[str, list[yaml.Node]] = {}  # key path -> vertex nodes, to locate polygon problems

    # -- locations and reporting -------------------------------------------------------------
    def loc(self, node: yaml.Node | None) -> Loc:
        if node is None:
            return Loc(self.label)
        return Loc(self.label, node.start_mark.line + 1, node.start_mark.column + 1)

    def error(self, node: yaml.Node | None, key: str, message: str) -> None:
        self.errors.append(MissionFileError(self.loc(node), key, message))

    def warn(self, node: yaml.Node | None, key: str, message: str) -> None:
        self.warnings.append(MissionWarning(self.loc(node), key, message))

    def raise_if_errors(self) -> None:
        if self.errors:
            first = self.errors[0]
            raise MissionFileError(first.loc, first.key, first.detail, tuple(self.errors))

    # -- parsing ---------------------------------------------------------------------------
    def compose(self, text: str) -> yaml.Node | None:
        """The root node, or None (with an error recorded) when the text is not YAML."""
        try:
            root = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as err:
            mark = err.problem_mark or err.context_mark
            loc = Loc(self.label, mark.line + 1, mark.column + 1) if mark else Loc(self.label)
            what = " ".join(str(err.problem or err.context or "syntax error").split())
            self.errors.append(MissionFileError(loc, "", f"not valid YAML: {what}"))
            return None
        except yaml.YAMLError as err:
            self.errors.append(MissionFileError(Loc(self.label), "", f"not valid YAML: {err}"))
            return None
        if root is None:
            self.errors.append(MissionFileError(Loc(self.label, 1, 1), "", "the file is empty; expected a mapping "
                                                "of mission keys (see missions/README.md)"))
        return root

    # -- typed readers -------------------------------------------------------------------------
    def mapping(self, node: yaml.Node, path: str, known: Iterable[str],
                required: Iterable[str] = ()) -> dict[str, tuple[yaml.Node, yaml.Node]] | None:
        """Keys -> (key node, value node); reports unknown keys (with a suggestion), duplicates, missing keys."""
        if not isinstance(node, yaml.MappingNode):
            self.error(node, path or "(top level)", f"expected a mapping of keys, got {describe(node)}")
            return None
        known = list(known)
        out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for knode, vnode in node.value:
            key = str(knode.value) if isinstance(knode, yaml.ScalarNode) else "?"
            full = f"{path}.{key}" if path else key
            if key in out:
                self.error(knode, full, f"duplicate key (first given at line {out[key][0].start_mark.line + 1})")
                continue
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
                hint = f" (did you mean '{close[0]}'?)" if close else f"; expected one of: {', '.join(known)}"
                self.error(knode, full, f"unknown key{hint}")
                continue
            out[key] = (knode, vnode)
        for key in required:
            if key not in out:
                self.error(node, path or "(top level)", f"missing required key '{key}'")
        return out

    def value(self, node: yaml.Node) -> Any:
        return self._constructor.construct_object(node, deep=True)

    def number(self, node: yaml.Node, path: str, *, lo: float | None = None, hi: float | None = None,
               lo_open: bool = False, integer: bool = False, unit: str = "",
               hi_message: str | None = None) -> float | None:
        want = "a whole number" if integer else "a number"
        tag = node.tag.rsplit(":", 1)[-1] if isinstance(node, yaml.ScalarNode) else ""
        if tag not in ("int", "float") or (integer and tag != "int"):
            self.error(node, path, f"expected {want}{' in ' + unit if unit else ''}, got {describe(node)}")
            return None
        v = self.value(node)
        if not math.isfinite(v):
            self.error(node, path, f"expected a finite number, got {node.value}")
            return None
        u = f" {unit}" if unit else ""
        if lo is not None and (v < lo or (lo_open and v == lo)):
            self.error(node, path, f"expected {'more than' if lo_open else 'at least'} {lo:g}{u}, got {v:g}")
            return None
        if hi is not None and v > hi:
            self.error(node, path, hi_message.format(v=v, hi=hi) if hi_message else f"expected at most {hi:g}{u}, got {v:g}")
            return None
        return int(v) if integer else float(v)

    def text(self, node: yaml.Node, path: str, *, choices: Iterable[str] | None = None,
             allow_empty: bool = False) -> str | None:
        if not isinstance(node, yaml.ScalarNode) or node.tag.rsplit(":", 1)[-1] not in ("str",):
            if isinstance(node, yaml.ScalarNode) and node.tag.rsplit(":", 1)[-1] in ("int", "float") and choices is None:
                return str(node.value)  # a field called 2024 is still a name
            self.error(node, path, f"expected text, got {describe(node)}")
            return None
        v = str(node.value)
        if choices is not None:
            choices = list(choices)
            if v not in choices:
                close = difflib.get_close_matches(v, choices, n=1, cutoff=0.6)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                self.error(node, path, f"expected one of {', '.join(choices)}, got {v!r}{hint}")
                return None
        elif not allow_empty and not v.strip():
            self.error(node, path, "expected some text, got an empty value")
            return None
        return v

    def sequence(self, node: yaml.Node, path: str, *, min_items: int = 0, what: str = "items") -> list[yaml.Node] | None:
        if not isinstance(node, yaml.SequenceNode):
            self.error(node, path, f"expected a list of {what}, got {describe(node)}")
            return None
        if len(node.value) < min_items:
            self.error(node, path, f"expected at least {min_items} {what}, got {len(node.value)}")
            return None
        return list(node.value)

    def latlon(self, node: yaml.Node, path: str) -> tuple[float, float] | None:
        """A ``[lat, lon]`` pair in decimal degrees, range-checked (lon/lat swaps are caught later, per polygon)."""
        if not isinstance(node, yaml.SequenceNode) or len(node.value) != 2:
            self.error(node, path, f"expected a point [lat, lon] in decimal degrees, got {describe(node)}")
            return None
        lat = self.number(node.value[0], path + "[0] (latitude)")
        lon = self.number(node.value[1], path + "[1] (longitude)")
        if lat is None or lon is None:
            return None
        if not -90.0 <= lat <= 90.0:
            swapped = " (is the point [lon, lat]? write [lat, lon])" if -90 <= lon <= 90 and abs(lat) <= 180 else ""
            self.error(node.value[0], path, f"latitude {lat:g} is out of range -90..90{swapped}")
            return None
        if not -180.0 <= lon <= 180.0:
            self.error(node.value[1], path, f"longitude {lon:g} is out of range -180..180")
            return None
        return lat, lon


def read_located_text(path: Path) -> tuple[str | None, list[MissionFileError]]:
    """The file's UTF-8 text, or None and one located error saying why it could not be read."""
    label = str(path)
    try:
        return path.read_text(encoding="utf-8"), []
    except FileNotFoundError:
        return None, [MissionFileError(Loc(label), "", "file not found")]
    except (OSError, UnicodeDecodeError) as err:
        return None, [MissionFileError(Loc(label), "", f"cannot read the file: expected UTF-8 text ({err})")]
