"""How early can the classes be told apart? A numpy-only keypoint baseline per observation ratio.

For each ratio r, every clip is cut to its first ceil(r * T) frames; the kept keypoints are
resampled to a fixed number of time steps, normalised (centred on the observed figures,
scaled by their height) and classified by k nearest neighbours against the train split
(augmented with mirror images, since mirroring is part of the data). Accuracy on the test
split per ratio shows how ambiguous the shared beginnings really are; the within-group share
of errors shows that early mistakes stay inside the right group.

    python -m edgeact.data.baseline DIR [--view noisy_keypoints]
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeact.data.dataset import open_dataset
from edgeact.data.sampling import observation_cutoff
from edgeact.data.skeleton import FLIP_PERMUTATION, J
from edgeact.errors import InputError

RATIOS = tuple(round(0.1 * i, 1) for i in range(1, 11))
VIEWS = ("keypoints", "noisy_keypoints")


@dataclass(frozen=True)
class BaselineResult:
    ratios: tuple[float, ...]
    accuracy: tuple[float, ...]  # test accuracy per ratio
    within_group_errors: float  # at ratio 0.2: share of errors whose prediction is in the true group
    group_accuracy: float  # at ratio 0.2: share of predictions in the true class's group
    chance: float  # 1 / number of classes
    num_train: int
    num_test: int

    def table(self) -> str:
        rows = [f"{'ratio':>5}  {'accuracy':>8}"]
        rows += [f"{r:>5.1f}  {a:>8.3f}" for r, a in zip(self.ratios, self.accuracy)]
        rows.append(
            f"train={self.num_train} test={self.num_test} chance={self.chance:.3f}; at r=0.2 "
            f"{self.within_group_errors:.0%} of errors stay within the true group "
            f"(group accuracy {self.group_accuracy:.3f})"
        )
        return "\n".join(rows)


def features(keypoints: np.ndarray, ratio: float, steps: int = 12) -> np.ndarray:
    """Flat feature vector of the first ``ratio`` of a clip's keypoints [T,P,J,3]."""
    seen = keypoints[: observation_cutoff(len(keypoints), ratio)]
    visible = seen[..., 2] > 0
    xy = seen[..., :2]
    if visible.any():
        centre = xy[visible].mean(axis=0)
        neck, hips = xy[:, :, J["neck"]], (xy[:, :, J["r_hip"]] + xy[:, :, J["l_hip"]]) / 2
        both = visible[:, :, J["neck"]] & visible[:, :, J["r_hip"]] & visible[:, :, J["l_hip"]]
        torso = np.linalg.norm(neck - hips, axis=-1)[both]
        scale = float(np.median(torso)) if torso.size else 1.0
    else:
        centre, scale = np.zeros(2), 1.0
    idx = np.linspace(0, len(seen) - 1, steps).round().astype(int)
    norm = (xy[idx] - centre) / max(scale, 1e-6)
    norm[~visible[idx]] = 0.0
    return np.concatenate([norm.ravel(), visible[idx].ravel().astype(float)])


def mirror(keypoints: np.ndarray) -> np.ndarray:
    """The clip seen in a mirror: x negated around the figures, left and right swapped."""
    out = keypoints[:, :, FLIP_PERMUTATION].copy()
    out[..., 0] = np.where(out[..., 2] > 0, -out[..., 0], 0.0)
    return out


def _knn(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, k: int) -> np.ndarray:
    d = (test_x**2).sum(1)[:, None] - 2 * test_x @ train_x.T + (train_x**2).sum(1)[None]
    nearest = np.argsort(d, axis=1)[:, :k]
    votes = np.zeros((len(test_x), train_y.max() + 1))
    np.add.at(votes, (np.arange(len(test_x))[:, None], train_y[nearest]), 1.0 / (1 + np.arange(k)))
    return votes.argmax(1)


def evaluate(path: str | Path, view: str = "keypoints", k: int = 5) -> BaselineResult:
    """Train on the train split, test on the test split, for each ratio in :data:`RATIOS`."""
    if view not in VIEWS:
        raise InputError(f"view must be one of {', '.join(VIEWS)}; got {view!r}.")
    ds = open_dataset(path)
    train, test = ds.split("train"), ds.split("test")
    train_kp = [getattr(c, view) for c in train]
    train_kp += [mirror(kp) for kp in train_kp]
    test_kp = [getattr(c, view) for c in test]
    train_y = np.array([c.label for c in train] * 2)
    test_y = np.array([c.label for c in test])
    group_of = np.zeros(len(ds.classes), int)
    for g, members in enumerate(ds.groups.values()):
        group_of[[ds.classes.index(m) for m in members]] = g
    accuracy, within, group_acc = [], 0.0, 0.0
    for ratio in RATIOS:
        train_x = np.stack([features(kp, ratio) for kp in train_kp])
        test_x = np.stack([features(kp, ratio) for kp in test_kp])
        pred = _knn(train_x, train_y, test_x, k)
        accuracy.append(float((pred == test_y).mean()))
        if ratio == 0.2:
            wrong = pred != test_y
            same_group = group_of[pred] == group_of[test_y]
            within = float(same_group[wrong].mean()) if wrong.any() else 1.0
            group_acc = float(same_group.mean())
    return BaselineResult(RATIOS, tuple(accuracy), within, group_acc, 1 / len(ds.classes), len(train), len(test))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m edgeact.data.baseline", description=__doc__.split("\n")[0])
    parser.add_argument("dataset", help="dataset directory (e.g. written by `edgeact data synth`)")
    parser.add_argument("--view", choices=VIEWS, default="keypoints")
    parser.add_argument("-k", type=int, default=5, help="neighbours per vote")
    args = parser.parse_args(argv)
    print(evaluate(args.dataset, args.view, args.k).table())


if __name__ == "__main__":
    main()
