"""Label files and model cards.

Label files are plain text (one name per line, optionally with a background line first, as the TF
Object Detection API writes them) or ``.pbtxt`` label maps (``item { id: 1 display_name: "car" }``).
``fit_labels`` reconciles a list of names with the number of classes a model predicts and refuses a
file that does not fit, saying what was expected and what came.

A model card is the JSON file beside a model (``detector.tflite`` -> ``detector.json``).
"""

from __future__ import annotations

import ast
import io
import json
import re
import zipfile
from pathlib import Path
from typing import Any

from agridrone.errors import ModelError

BACKGROUND_NAMES = {"background", "__background__", "???", "bg", "none", "__bg__", "n/a", "unlabeled"}
_ITEM = re.compile(r"item\s*\{(.*?)\}", re.S)
_FIELD = re.compile(r"(\w+)\s*:\s*(\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|[-\w.]+)")


def read_label_file(path: str | Path) -> list[str]:
    """Names indexed by class id as written in the file (a background line, if any, is kept here)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ModelError(f"labels {p}: expected a label file, got no such file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ModelError(f"labels {p}: expected a UTF-8 text label file, got {type(err).__name__}: {err}") from None
    if p.suffix.lower() == ".pbtxt" or re.search(r"^\s*item\s*\{", text, re.M):
        return _parse_pbtxt(text, p)
    lines = [ln.strip() for ln in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    pairs = [re.match(r"^(\d+)[\s:,]+(\S.*)$", ln) for ln in lines]
    if len(lines) > 1 and all(pairs):  # "0  person" / "1: car" (Coral style, ids may skip)
        ids = {int(m.group(1)): m.group(2).strip() for m in pairs}
        names = [ids.get(i, f"class_{i}") for i in range(max(ids) + 1)]
    else:
        names = lines
    if not names:
        raise ModelError(f"labels {p}: expected one class name per line, got an empty file")
    return names


def _parse_pbtxt(text: str, p: Path) -> list[str]:
    entries: dict[int, str] = {}
    for block in _ITEM.findall(text):
        fields = {k: v.strip("\"'") for k, v in _FIELD.findall(block)}
        if "id" not in fields:
            raise ModelError(f"labels {p}: expected an id in every item of the label map, got {block.strip()!r}")
        try:
            idx = int(fields["id"])
        except ValueError:
            raise ModelError(f"labels {p}: expected an integer id, got {fields['id']!r}") from None
        entries[idx] = fields.get("display_name") or fields.get("name") or f"class_{idx}"
    if not entries:
        raise ModelError(f"labels {p}: expected 'item {{ id: .. name: .. }}' entries in the label map, got none")
    # TF Object Detection API maps start at 1 (0 is the implicit background); keep ids as indices so
    # that fit_labels can drop index 0 when it is the background.
    size = max(entries) + 1
    names = [entries.get(i, "???" if i == 0 else f"class_{i}") for i in range(size)]
    if 0 not in entries:
        names[0] = "background"
    return names


def fit_labels(names: list[str], num_classes: int | None, source: str) -> tuple[str, ...]:
    """Names for class ids 0..num_classes-1; a leading background line is dropped when it is one too many.

    With ``num_classes`` unknown (SSD post-process exports say only which ids they emit), a leading
    background-like line is dropped.
    """
    names = list(names)
    has_bg = bool(names) and names[0].strip().lower() in BACKGROUND_NAMES
    if num_classes is None:
        return tuple(names[1:] if has_bg else names)
    if len(names) == num_classes:
        return tuple(names)
    if len(names) == num_classes + 1:
        return tuple(names[1:])
    raise ModelError(f"labels {source}: expected {num_classes} class names (or {num_classes + 1} with a "
                     f"background line first) for this model, got {len(names)}")


def load_card(model_path: str | Path) -> dict[str, Any] | None:
    """The model card beside ``model_path`` (same stem, .json), or None when there is none."""
    p = Path(model_path).with_suffix(".json")
    if not p.is_file():
        return None
    try:
        card = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ModelError(f"model card {p}: expected JSON, got {type(err).__name__}: {err}") from None
    if not isinstance(card, dict):
        raise ModelError(f"model card {p}: expected a JSON object, got {type(card).__name__}")
    return card


def default_label_file(model_path: str | Path) -> Path | None:
    """``<stem>.labels.txt`` (the project's convention), else ``<stem>_labels.txt`` or ``<stem>.txt``."""
    p = Path(model_path)
    for cand in (p.with_name(p.stem + ".labels.txt"), p.with_name(p.stem + "_labels.txt"), p.with_suffix(".txt")):
        if cand.is_file():
            return cand
    return None


def embedded_labels(model_path: str | Path) -> list[str] | None:
    """Class names packed inside a .tflite, or None.

    Ultralytics appends a zip holding a metadata dict (``names: {0: 'person', ...}``); TFLite Model
    Maker packs the label file as an associated file in the same kind of zip.
    """
    try:
        data = Path(model_path).read_bytes()
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            members = [m for m in z.infolist() if m.file_size < 1_000_000]
            for m in members:
                text = z.read(m).decode("utf-8", "replace")
                if m.filename.lower().endswith((".txt", ".pbtxt")) and "label" in m.filename.lower():
                    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
                    if lines:
                        return lines
                meta = _literal(text)
                names = meta.get("names") if isinstance(meta, dict) else None
                if isinstance(names, dict) and names:
                    keys = sorted(int(k) for k in names)
                    if keys == list(range(len(keys))):
                        return [str(names[k] if k in names else names[str(k)]) for k in keys]
                if isinstance(names, list) and names:
                    return [str(n) for n in names]
    except (zipfile.BadZipFile, OSError, ValueError, KeyError):
        return None
    return None


def _literal(text: str):
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
