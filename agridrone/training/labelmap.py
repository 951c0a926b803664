"""Which of a model's labels a dataset's class names mean.

Real datasets name things their own way: VisDrone has "pedestrian" and "car", COCO "cow" and
"truck", farm sets "tractor" and "pylon". Evaluating the shipped detector on them needs each dataset
class mapped onto one of the model's labels (or left out, when the model has no such class). The
rules, in order: an explicit ``NAME=LABEL`` given by the user; the same name; a known synonym of one
of the model's labels (:data:`SYNONYMS`). Names are compared in lower case with ``_``/``-`` as spaces
and a trailing plural ``s`` dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agridrone.errors import DatasetError

SYNONYMS: dict[str, tuple[str, ...]] = {
    "tree": ("tree", "bush", "shrub", "palm", "palm tree", "hedge", "orchard tree", "vegetation obstacle"),
    "person": ("person", "people", "pedestrian", "human", "man", "woman", "child", "worker", "farmer",
               "farm worker", "walker", "hiker"),
    "animal": ("animal", "livestock", "cow", "cattle", "calf", "bull", "sheep", "lamb", "goat", "horse", "pig",
               "deer", "roe deer", "dog", "boar", "wild boar", "donkey", "alpaca", "llama", "camel", "elk", "moose"),
    "vehicle": ("vehicle", "car", "truck", "tractor", "van", "bus", "pickup", "pickup truck", "jeep", "suv",
                "combine", "combine harvester", "harvester", "trailer", "farm machinery", "machinery",
                "farm vehicle", "quad", "atv", "motorcycle", "motorbike", "motor", "sprayer", "telehandler",
                "loader"),
    "pole": ("pole", "pylon", "utility pole", "power pole", "electric pole", "electricity pole", "telephone pole",
             "power line pole", "powerline pole", "mast", "lamp post", "lamppost", "street light", "post",
             "transmission tower"),
    "building": ("building", "house", "barn", "shed", "silo", "greenhouse", "hut", "stable", "warehouse", "roof",
                 "farmhouse", "cabin", "garage", "storage tank"),
}


def norm(name: str) -> str:
    n = " ".join(str(name).lower().replace("_", " ").replace("-", " ").split())
    if n.endswith("ies") and len(n) > 4:
        return n[:-3] + "y"
    if n.endswith(("sses", "shes", "ches", "xes")) or (n.endswith("uses") and not n.endswith("ouses")):
        return n[:-2]
    if n.endswith("s") and not n.endswith(("ss", "us")) and len(n) > 3:
        return n[:-1]
    return n


def parse_overrides(pairs: list[str] | None) -> dict[str, str]:
    """``["car=vehicle", "bike=-"]`` -> {"car": "vehicle", "bike": "-"} ("-": leave the class out)."""
    out: dict[str, str] = {}
    for p in pairs or []:
        name, sep, label = str(p).partition("=")
        if not sep or not name.strip() or not label.strip():
            raise DatasetError(f"--map: expected DATASET_CLASS=MODEL_LABEL (or =- to leave it out), got {p!r}")
        out[norm(name)] = label.strip()
    return out


@dataclass(frozen=True)
class LabelMap:
    """``ids[k]``: the model label index of dataset class k, or -1 (left out); ``how[k]``: why."""

    ids: np.ndarray
    how: tuple[str, ...]
    dataset_names: tuple[str, ...]
    model_labels: tuple[str, ...]

    @property
    def unmatched(self) -> list[str]:
        return [n for n, i in zip(self.dataset_names, self.ids) if i < 0]

    def lines(self) -> list[str]:
        return [f"{n} -> {self.model_labels[i] if i >= 0 else '(left out)'} ({h})"
                for n, i, h in zip(self.dataset_names, self.ids, self.how)]

    def as_dict(self) -> dict[str, str | None]:
        return {n: (self.model_labels[i] if i >= 0 else None) for n, i in zip(self.dataset_names, self.ids)}


def map_labels(dataset_names, model_labels, overrides: dict[str, str] | None = None) -> LabelMap:
    model_labels = tuple(model_labels)
    by_norm = {norm(m): k for k, m in enumerate(model_labels)}
    synonyms = {}
    for label, names in SYNONYMS.items():
        if norm(label) in by_norm:
            for n in names:
                synonyms.setdefault(norm(n), by_norm[norm(label)])
    overrides = dict(overrides or {})
    ids, how = [], []
    for name in dataset_names:
        n = norm(name)
        if n in overrides:
            target = overrides.pop(n)
            if target == "-":
                ids.append(-1)
                how.append("--map")
                continue
            if norm(target) not in by_norm:
                raise DatasetError(f"--map {name}={target}: expected one of the model's labels "
                                   f"({', '.join(model_labels)}) or -, got {target!r}")
            ids.append(by_norm[norm(target)])
            how.append("--map")
        elif n in by_norm:
            ids.append(by_norm[n])
            how.append("same name")
        elif n in synonyms:
            ids.append(synonyms[n])
            how.append("synonym")
        else:
            ids.append(-1)
            how.append("no such model label; --map NAME=LABEL to map it")
    if overrides:
        raise DatasetError(f"--map: expected classes of the dataset ({', '.join(map(str, dataset_names))}), "
                           f"got {', '.join(sorted(overrides))}")
    return LabelMap(np.array(ids, np.int64).reshape(-1), tuple(how), tuple(map(str, dataset_names)), model_labels)
