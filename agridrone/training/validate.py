"""Dataset validation: a clear report of what is wrong and where; training refuses a broken dataset."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agridrone.errors import DatasetError
from agridrone.training.datasets import ClsDataset, DetDataset, Issue


@dataclass(frozen=True)
class Report:
    dataset: str
    issues: tuple[Issue, ...]
    summary: dict

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "error"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def text(self, limit: int = 50) -> str:
        lines = [f"dataset {self.dataset}: " + ", ".join(f"{k} {v}" for k, v in self.summary.items())]
        lines.append(f"{len(self.errors)} error(s), {len(self.issues) - len(self.errors)} warning(s)")
        for i in self.issues[:limit]:
            lines.append(f"  {i}")
        if len(self.issues) > limit:
            lines.append(f"  ... and {len(self.issues) - limit} more")
        return "\n".join(lines)

    def raise_if_broken(self, action: str = "train") -> None:
        if self.errors:
            first = "; ".join(f"{i.where}: {i.what}" for i in self.errors[:3])
            raise DatasetError(f"dataset {self.dataset} is broken, refusing to {action}: {len(self.errors)} error(s), "
                               f"first: {first}")


def _class_checks(names, per_split: dict[str, np.ndarray], issues: list[Issue], root: str,
                  for_eval: bool = False) -> None:
    total = sum(per_split.values())
    for k, n in enumerate(names):
        if for_eval:  # a model is scored on what there is: splits do not matter, a class never seen is noted
            if total[k] == 0:
                issues.append(Issue(root, f"class {n!r} has no instance: it is not scored", "warning"))
        elif total[k] == 0:
            issues.append(Issue(root, f"empty class {n!r}: no instance anywhere in the dataset"))
        elif per_split.get("train", total)[k] == 0:
            issues.append(Issue(root, f"empty class {n!r} in the train split (it appears only in val/test)"))
        elif any(v[k] == 0 for s, v in per_split.items() if s != "train"):
            empty = [s for s, v in per_split.items() if s != "train" and v[k] == 0]
            issues.append(Issue(root, f"class {n!r} has no instance in {', '.join(empty)}", "warning"))


def validate_detection(ds: DetDataset, for_eval: bool = False) -> Report:
    """What is wrong with a dataset and where. ``for_eval``: checked for scoring a trained model on it
    (no split needs to be present, a class without instances is only noted)."""
    issues = list(ds.issues)
    root = str(ds.root)
    if not ds.names:
        issues.append(Issue(root, "no class names"))
    if not ds.items:
        issues.append(Issue(root, "no images found"))
    per_split = {s: ds.counts(s) for s in ("train", "val", "test")}
    if ds.names:
        _class_checks(ds.names, per_split, issues, root, for_eval)
    for s in () if for_eval else ("train", "val"):
        if not ds.split(s):
            issues.append(Issue(root, f"the {s} split is empty", "error" if s == "train" else "warning"))
    summary = {"format": ds.fmt, "classes": len(ds.names),
               **{f"{s} images": len(ds.split(s)) for s in ("train", "val", "test")},
               "boxes": int(sum(len(it.classes) for it in ds.items))}
    return Report(root, tuple(sorted(issues, key=lambda i: i.severity != "error")), summary)


def validate_classification(ds: ClsDataset, for_eval: bool = False) -> Report:
    issues = list(ds.issues)
    root = str(ds.root)
    if not ds.items:
        issues.append(Issue(root, "no images found: expected an image folder per class"))
    per_split = {}
    for s in ("train", "val", "test"):
        labels = np.array([it.label for it in ds.split(s)], np.int64)
        per_split[s] = np.bincount(labels, minlength=len(ds.names))[: len(ds.names)]
    if len(ds.names) < 2 and not for_eval:
        issues.append(Issue(root, f"expected at least 2 classes, got {len(ds.names)}"))
    else:
        _class_checks(ds.names, per_split, issues, root, for_eval)
    summary = {"format": "folders", "classes": len(ds.names),
               **{f"{s} images": len(ds.split(s)) for s in ("train", "val", "test")}}
    return Report(root, tuple(sorted(issues, key=lambda i: i.severity != "error")), summary)
