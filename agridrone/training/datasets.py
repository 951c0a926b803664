"""Datasets users bring: YOLO txt, COCO JSON and Pascal VOC for detection; an image folder per class
for classification. Split and merge tools.

Loaders never raise on bad content: they collect :class:`Issue` objects (what is wrong and where)
into the dataset, and :mod:`agridrone.training.validate` turns them into a report and refuses to
train on a broken dataset. Boxes are kept as normalised x1, y1, x2, y2 (0..1 of the image).
"""

from __future__ import annotations

import hashlib
import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import yaml

from agridrone.errors import DatasetError

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
SPLITS = ("train", "val", "test")
FORMATS = ("yolo", "coco", "voc")
TOL = 1e-3  # normalised coordinates may overshoot 0..1 by this much (rounding in exporters)


@dataclass(frozen=True)
class Issue:
    where: str
    what: str
    severity: str = "error"   # "error" stops training, "warning" is reported only

    def __str__(self) -> str:
        return f"{self.severity}: {self.where}: {self.what}"


@dataclass(frozen=True)
class DetItem:
    image: Path
    boxes: np.ndarray          # (n, 4) float32 normalised x1, y1, x2, y2
    classes: np.ndarray        # (n,) int32
    split: str = "train"


@dataclass(frozen=True)
class DetDataset:
    root: Path
    fmt: str
    names: tuple[str, ...]
    items: tuple[DetItem, ...]
    issues: tuple[Issue, ...] = ()

    def split(self, name: str) -> list[DetItem]:
        return [it for it in self.items if it.split == name]

    def counts(self, split: str | None = None) -> np.ndarray:
        c = np.zeros(len(self.names), np.int64)
        for it in self.items:
            if split is None or it.split == split:
                np.add.at(c, it.classes, 1)
        return c


@dataclass(frozen=True)
class ClsItem:
    image: Path
    label: int
    split: str = "train"


@dataclass(frozen=True)
class ClsDataset:
    root: Path
    names: tuple[str, ...]
    items: tuple[ClsItem, ...]
    issues: tuple[Issue, ...] = field(default=())

    def split(self, name: str) -> list[ClsItem]:
        return [it for it in self.items if it.split == name]


def _stable_split(key: str, seed: int, fractions=(0.8, 0.1, 0.1)) -> str:
    u = int(hashlib.sha1(f"{seed}:{key}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "train" if u < fractions[0] else ("val" if u < fractions[0] + fractions[1] else "test")


def _split_from_name(text: str) -> str | None:
    low = text.lower()
    for s, keys in (("train", ("train",)), ("val", ("val", "valid")), ("test", ("test",))):
        if any(k in low for k in keys):
            return s
    return None


def _images_under(d: Path) -> list[Path]:
    if not d.is_dir():
        return []
    return sorted(p for p in d.rglob("*") if p.suffix.lower() in IMAGE_EXTS and p.is_file())


def detect_formats(root: Path) -> list[str]:
    """The detection formats whose markers are present under ``root``."""
    root = Path(root)
    found = []
    if any(root.glob("*.yaml")) or (root / "labels").is_dir() or any(root.glob("classes.txt")):
        found.append("yolo")
    jsons = list(root.glob("*.json")) + list((root / "annotations").glob("*.json"))
    for j in jsons:
        if j.name == "synthetic.json":
            continue
        try:
            head = j.read_text(errors="replace")[:200000]
        except OSError:
            continue
        if '"annotations"' in head and '"images"' in head:
            found.append("coco")
            break
    if (root / "Annotations").is_dir() and any((root / "Annotations").glob("*.xml")):
        found.append("voc")
    return found


def load_detection(root: Path | str, fmt: str | None = None, seed: int = 0,
                   names: tuple[str, ...] | None = None, auto_split: bool = True) -> DetDataset:
    """Load a detection dataset; problems are collected in ``.issues`` (see validate). A dataset without
    splits of its own is split 80/10/10 by a stable hash of the file names, unless ``auto_split`` is
    False (evaluation of a model that never saw it: every image is "train")."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset: expected a directory, got {root} (it does not exist)")
    found = detect_formats(root)
    extra: list[Issue] = []
    if fmt is None:
        if not found:
            raise DatasetError(f"dataset {root}: expected YOLO (data.yaml + labels/), COCO (*.json) or VOC "
                               f"(Annotations/*.xml), found none of them")
        fmt = found[0]
    if fmt not in FORMATS:
        raise DatasetError(f"dataset format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    if len(found) > 1 or (found and fmt not in found):
        extra.append(Issue(str(root), f"mixed formats: found markers of {', '.join(found)} (asked for {fmt}); "
                                      f"keep one format per dataset directory"))
    loader = {"yolo": _load_yolo, "coco": _load_coco, "voc": _load_voc}[fmt]
    ds = loader(root, names)
    items = ds.items
    if auto_split and items and all(it.split == "train" for it in items) and not ds_has_explicit_splits(ds):
        items = tuple(replace(it, split=_stable_split(it.image.name, seed)) for it in items)
    return replace(ds, items=items, issues=tuple(extra) + ds.issues)


def ds_has_explicit_splits(ds: DetDataset) -> bool:
    return any(it.split != "train" for it in ds.items)


def _yolo_names(root: Path) -> tuple[tuple[str, ...] | None, dict, list[Issue]]:
    for y in sorted(root.glob("*.yaml")):
        try:
            cfg = yaml.safe_load(y.read_text()) or {}
        except yaml.YAMLError as err:
            return None, {}, [Issue(str(y), f"unreadable YAML: {str(err).splitlines()[0]}")]
        names = cfg.get("names")
        if isinstance(names, dict):
            names = [names[k] for k in sorted(names, key=int)]
        if names:
            return tuple(str(n) for n in names), cfg, []
    for f in ("classes.txt", "obj.names"):
        if (root / f).is_file():
            return tuple(ln.strip() for ln in (root / f).read_text().splitlines() if ln.strip()), {}, []
    return None, {}, [Issue(str(root), "no class names: expected data.yaml with 'names' or classes.txt")]


def _load_yolo(root: Path, names=None) -> DetDataset:
    yaml_names, cfg, issues = _yolo_names(root)
    names = tuple(names or yaml_names or ())
    base = root / str(cfg.get("path", ".")) if cfg.get("path") and not Path(str(cfg["path"])).is_absolute() else root
    image_dirs: list[tuple[str, Path]] = []
    for s in SPLITS:
        key = cfg.get(s) or (cfg.get("valid") if s == "val" else None)
        if isinstance(key, str):
            image_dirs.append((s, base / key))
    if not image_dirs:
        if any((root / "images" / s).is_dir() for s in SPLITS):
            image_dirs = [(s, root / "images" / s) for s in SPLITS if (root / "images" / s).is_dir()]
        else:
            image_dirs = [("train", root / "images" if (root / "images").is_dir() else root)]
    items, seen_labels = [], set()
    for split, d in image_dirs:
        if not d.is_dir():
            issues.append(Issue(str(d), f"the {split} image folder named in the dataset does not exist"))
            continue
        for img in _images_under(d):
            rel = img.relative_to(d)
            lab = (_label_dir(d) / rel).with_suffix(".txt")
            seen_labels.add(lab.resolve())
            boxes, classes = _parse_yolo_label(lab, len(names), issues)
            items.append(DetItem(img, boxes, classes, split))
    label_root = root / "labels"
    if label_root.is_dir():
        for lab in sorted(label_root.rglob("*.txt")):
            if lab.resolve() not in seen_labels:
                issues.append(Issue(str(lab), "label file without an image (missing image)"))
    return DetDataset(root, "yolo", names, tuple(items), tuple(issues))


def _label_dir(image_dir: Path) -> Path:
    """YOLO convention: the last 'images' folder in the path becomes 'labels'."""
    parts = list(image_dir.parts)
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            return Path(*parts)
    return image_dir


def _parse_yolo_label(lab: Path, n_classes: int, issues: list[Issue]):
    boxes, classes = [], []
    if lab.is_file():
        for ln_no, line in enumerate(lab.read_text(errors="replace").splitlines(), 1):
            parts = line.split()
            if not parts:
                continue
            where = f"{lab}:{ln_no}"
            if len(parts) != 5:
                issues.append(Issue(where, f"expected 5 fields 'class cx cy w h', got {len(parts)}"))
                continue
            try:
                c = int(float(parts[0]))
                cx, cy, w, h = (float(v) for v in parts[1:])
            except ValueError:
                issues.append(Issue(where, f"expected numbers, got {line.strip()!r}"))
                continue
            if not 0 <= c < n_classes:
                issues.append(Issue(where, f"class id {c} out of range: expected 0..{n_classes - 1}"))
                continue
            x1, y1, x2, y2 = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
            if w <= 0 or h <= 0:
                issues.append(Issue(where, f"box has no area (w={w}, h={h})"))
                continue
            if x1 < -TOL or y1 < -TOL or x2 > 1 + TOL or y2 > 1 + TOL:
                issues.append(Issue(where, f"box outside the image: expected normalised coordinates in 0..1, "
                                           f"got x {x1:.3f}..{x2:.3f}, y {y1:.3f}..{y2:.3f}"))
                continue
            boxes.append([max(x1, 0), max(y1, 0), min(x2, 1), min(y2, 1)])
            classes.append(c)
    return np.array(boxes, np.float32).reshape(-1, 4), np.array(classes, np.int32)


def _find_image(root: Path, split: str | None, file_name: str) -> Path | None:
    cands = [root / file_name, root / "images" / file_name]
    if split:
        cands += [root / "images" / split / file_name, root / split / file_name]
    cands += [root / "images" / s / file_name for s in ("train2017", "val2017")]
    for c in cands:
        if c.is_file():
            return c
    return None


def _load_coco(root: Path, names=None) -> DetDataset:
    issues: list[Issue] = []
    files = [j for j in sorted(root.glob("*.json")) + sorted((root / "annotations").glob("*.json"))
             if j.name != "synthetic.json"]
    cat_names: dict[int, str] = {}
    parsed = []
    for j in files:
        try:
            data = json.loads(j.read_text())
        except (OSError, json.JSONDecodeError) as err:
            issues.append(Issue(str(j), f"unreadable JSON: {err}"))
            continue
        if not isinstance(data, dict) or "images" not in data or "annotations" not in data:
            continue
        for c in data.get("categories", []):
            cat_names.setdefault(int(c["id"]), str(c["name"]))
        parsed.append((j, data))
    if names is None:
        names = tuple(cat_names[k] for k in sorted(cat_names))
    index_of = {k: names.index(v) for k, v in cat_names.items() if v in names}
    items = []
    for j, data in parsed:
        split = _split_from_name(j.stem) or "train"
        by_image: dict[int, list] = {}
        images = {}
        for im in data["images"]:
            images[int(im["id"])] = im
        for a_no, a in enumerate(data["annotations"]):
            where = f"{j}: annotation {a.get('id', a_no)}"
            iid = int(a.get("image_id", -1))
            if iid not in images:
                issues.append(Issue(where, f"refers to image_id {iid}, which is not in 'images'"))
                continue
            if a.get("iscrowd", 0):
                continue
            cid = int(a.get("category_id", -1))
            if cid not in index_of:
                issues.append(Issue(where, f"category_id {cid} out of range: expected one of "
                                           f"{sorted(index_of)}"))
                continue
            x, y, w, h = (float(v) for v in a.get("bbox", [0, 0, 0, 0]))
            W, H = float(images[iid].get("width", 0)), float(images[iid].get("height", 0))
            if w <= 0 or h <= 0:
                issues.append(Issue(where, f"box has no area (w={w}, h={h})"))
                continue
            if W <= 0 or H <= 0:
                issues.append(Issue(where, "image has no width/height in 'images'"))
                continue
            if x < -1 or y < -1 or x + w > W + 1 or y + h > H + 1:
                issues.append(Issue(where, f"box outside the image: expected within {W:.0f}x{H:.0f}, got "
                                           f"x {x:.1f}..{x + w:.1f}, y {y:.1f}..{y + h:.1f}"))
                continue
            by_image.setdefault(iid, []).append(([max(x, 0) / W, max(y, 0) / H, min(x + w, W) / W,
                                                  min(y + h, H) / H], index_of[cid]))
        for iid, im in images.items():
            path = _find_image(root, split, str(im["file_name"]))
            if path is None:
                issues.append(Issue(f"{j}: image {iid}", f"missing image file {im['file_name']}"))
                continue
            anns = by_image.get(iid, [])
            items.append(DetItem(path, np.array([a[0] for a in anns], np.float32).reshape(-1, 4),
                                 np.array([a[1] for a in anns], np.int32), split))
    return DetDataset(root, "coco", tuple(names), tuple(items), tuple(issues))


def _load_voc(root: Path, names=None) -> DetDataset:
    issues: list[Issue] = []
    split_of: dict[str, str] = {}
    for s in SPLITS:
        f = root / "ImageSets" / "Main" / f"{s}.txt"
        if f.is_file():
            for ln in f.read_text().split():
                split_of[ln.strip()] = s
    records = []
    found_names: set[str] = set()
    for x in sorted((root / "Annotations").glob("*.xml")):
        try:
            tree = ET.parse(x).getroot()
        except ET.ParseError as err:
            issues.append(Issue(str(x), f"unreadable XML: {err}"))
            continue
        objs = []
        for o in tree.findall("object"):
            nm = (o.findtext("name") or "").strip()
            bb = o.find("bndbox")
            try:
                vals = [float(bb.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax")]
            except (TypeError, ValueError, AttributeError):
                issues.append(Issue(str(x), f"object {nm!r}: expected bndbox with xmin ymin xmax ymax"))
                continue
            objs.append((nm, vals))
            found_names.add(nm)
        records.append((x, tree, objs))
    names = tuple(names) if names else tuple(sorted(found_names))
    items = []
    for x, tree, objs in records:
        fn = tree.findtext("filename") or (x.stem + ".jpg")
        img = root / "JPEGImages" / fn
        if not img.is_file():
            alts = [p for p in (root / "JPEGImages").glob(x.stem + ".*")] if (root / "JPEGImages").is_dir() else []
            if not alts:
                issues.append(Issue(str(x), f"missing image JPEGImages/{fn}"))
                continue
            img = alts[0]
        try:
            W = float(tree.findtext("size/width"))
            H = float(tree.findtext("size/height"))
        except (TypeError, ValueError):
            issues.append(Issue(str(x), "expected <size><width> and <height>"))
            continue
        boxes, classes = [], []
        for nm, (x1, y1, x2, y2) in objs:
            if nm not in names:
                issues.append(Issue(str(x), f"class {nm!r} out of range: expected one of {', '.join(names)}"))
                continue
            if x2 <= x1 or y2 <= y1:
                issues.append(Issue(str(x), f"object {nm!r}: box has no area ({x1},{y1},{x2},{y2})"))
                continue
            if x1 < -1 or y1 < -1 or x2 > W + 1 or y2 > H + 1:
                issues.append(Issue(str(x), f"object {nm!r}: box outside the image: expected within "
                                            f"{W:.0f}x{H:.0f}, got ({x1:.0f},{y1:.0f},{x2:.0f},{y2:.0f})"))
                continue
            boxes.append([max(x1, 0) / W, max(y1, 0) / H, min(x2, W) / W, min(y2, H) / H])
            classes.append(names.index(nm))
        items.append(DetItem(img, np.array(boxes, np.float32).reshape(-1, 4), np.array(classes, np.int32),
                             split_of.get(x.stem, "train")))
    return DetDataset(root, "voc", names, tuple(items), tuple(issues))


def load_classification(root: Path | str, names: tuple[str, ...] | None = None, seed: int = 0,
                        canonical: tuple[str, ...] = (), auto_split: bool = True) -> ClsDataset:
    """An image folder per class, either ``root/{class}/*`` or ``root/{train,val,test}/{class}/*``
    (the first split 80/10/10 by a stable hash of the file names unless ``auto_split`` is False)."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset: expected a directory, got {root} (it does not exist)")
    issues: list[Issue] = []
    split_dirs = [(s, root / s) for s in SPLITS if (root / s).is_dir()]
    if not split_dirs:
        split_dirs = [(None, root)]
    class_dirs = sorted({d.name for _, sd in split_dirs for d in sd.iterdir() if d.is_dir()})
    if names is None:
        names = tuple(canonical) if canonical and set(class_dirs) == set(canonical) else tuple(class_dirs)
    for c in class_dirs:
        if c not in names:
            issues.append(Issue(str(root / c), f"class folder {c!r} out of range: expected one of {', '.join(names)}"))
    items = []
    for split, sd in split_dirs:
        for k, c in enumerate(names):
            d = sd / c
            if not d.is_dir():
                continue
            for f in sorted(d.iterdir()):
                if f.suffix.lower() in IMAGE_EXTS:
                    s = split or (_stable_split(f.name, seed) if auto_split else "train")
                    items.append(ClsItem(f, k, s))
                elif f.is_file() and not f.name.startswith("."):
                    issues.append(Issue(str(f), "not an image file (expected .jpg/.png/...)", "warning"))
    return ClsDataset(root, tuple(names), tuple(items), tuple(issues))


def resplit(ds, fractions=(0.8, 0.1, 0.1), seed: int = 0):
    """A copy of a dataset with every item reassigned to train/val/test by a stable hash."""
    if abs(sum(fractions) - 1.0) > 1e-6 or min(fractions) < 0:
        raise DatasetError(f"split fractions: expected three non-negative numbers summing to 1, got {fractions}")
    return replace(ds, items=tuple(replace(it, split=_stable_split(str(it.image), seed, fractions))
                                   for it in ds.items))


def merge_detection(datasets: list[DetDataset]) -> DetDataset:
    """One dataset from several: class names are united by name, ids remapped, issues kept."""
    if not datasets:
        raise DatasetError("merge: expected at least one dataset, got none")
    names: list[str] = []
    for ds in datasets:
        names += [n for n in ds.names if n not in names]
    items, issues = [], []
    for ds in datasets:
        remap = np.array([names.index(n) for n in ds.names] or [0], np.int32)
        items += [replace(it, classes=remap[it.classes] if len(it.classes) else it.classes) for it in ds.items]
        issues += list(ds.issues)
    return DetDataset(datasets[0].root, "merged", tuple(names), tuple(items), tuple(issues))


def write_yolo(ds: DetDataset, out_dir: Path | str) -> Path:
    """Write any detection dataset as YOLO txt (images are linked or copied), e.g. after a merge."""
    import shutil

    out = Path(out_dir)
    for k, it in enumerate(ds.items):
        (out / "images" / it.split).mkdir(parents=True, exist_ok=True)
        (out / "labels" / it.split).mkdir(parents=True, exist_ok=True)
        dst = out / "images" / it.split / f"{k:06d}_{it.image.name}"
        shutil.copyfile(it.image, dst)
        b = it.boxes
        lines = [f"{c} {(x1 + x2) / 2:.6f} {(y1 + y2) / 2:.6f} {x2 - x1:.6f} {y2 - y1:.6f}"
                 for (x1, y1, x2, y2), c in zip(b, it.classes)]
        (out / "labels" / it.split / f"{k:06d}_{it.image.stem}.txt").write_text("\n".join(lines))
    names = "\n".join(f"  {i}: {n}" for i, n in enumerate(ds.names))
    present = [s for s in SPLITS if any(it.split == s for it in ds.items)]
    (out / "data.yaml").write_text("".join(f"{s}: images/{s}\n" for s in present) + f"names:\n{names}\n")
    return out
