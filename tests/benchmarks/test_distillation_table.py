"""benchmarks/distillation.py: group means, the paired difference and its bootstrap interval."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "distillation.py"


@pytest.fixture(scope="module")
def distillation():
    spec = importlib.util.spec_from_file_location("distillation_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fake_run(root: Path, name: str, predictions: np.ndarray, labels: np.ndarray, data: Path) -> Path:
    """A run directory with a cached per-clip evaluation, as correct_per_clip() leaves it."""
    run = root / name
    run.mkdir()
    (run / "student.pt").write_bytes(b"not read: the evaluation is cached")
    (run / "metrics.json").write_text(json.dumps({"train": {"seconds": {"teacher": 60.0, "student": 120.0}}}))
    clips = [{"id": f"{i:06d}", "label": int(y), "predictions": p.tolist()} for i, (y, p) in
             enumerate(zip(labels, predictions))]
    (run / f"eval-{data.name}-test.json").write_text(json.dumps({"clips": clips}))
    return run


def test_table_and_paired_difference(distillation, tmp_path, capsys):
    data = tmp_path / "heldout"
    labels = np.arange(40) % 4
    right = np.repeat(labels[:, None], 10, 1)  # [clips, ratios]
    wrong = (right + 1) % 4
    base = np.where(np.arange(10)[None] < 5, wrong, right)  # right from r = 0.6 on
    better = base.copy()
    better[:20, :5] = right[:20, :5]  # and half the clips right early too
    kd = _fake_run(tmp_path, "kd", better, labels, data)
    none = _fake_run(tmp_path, "none", base, labels, data)
    assert distillation.main(["--data", str(data), "--group", f"KD={kd}", "--group", f"none={none}",
                              "--baseline", "none"]) == 0
    out = capsys.readouterr().out
    assert "| KD | 1 | 3.0 | 0.500 | 0.500 | 0.500 | 0.500 | 0.500 | 1.000 |" in out
    assert "| none | 1 | 3.0 | 0.000 | 0.000 | 0.000 | 0.000 | 0.000 | 1.000 |" in out
    row = next(line for line in out.splitlines() if line.startswith("| KD | +"))
    cells = [c.strip() for c in row.strip("| ").split("|")][1:]  # ten ratios, then the AUC
    assert len(cells) == 11
    assert all(c.startswith("+0.500 [") for c in cells[:5])  # half the clips gained early
    assert all(c == "+0.000 [+0.00, +0.00]" for c in cells[5:10])
    assert cells[10].startswith("+0.250 [")


def test_bootstrap_interval_covers_the_mean_and_narrows_with_clips(distillation):
    rng = np.random.default_rng(0)
    small = rng.choice([-1.0, 0.0, 1.0], size=(50, 1))
    large = rng.choice([-1.0, 0.0, 1.0], size=(5000, 1))
    for diff in (small, large):
        low, high = distillation.bootstrap_interval(diff)
        assert low[0] <= diff.mean() <= high[0]
    assert (distillation.bootstrap_interval(large)[1] - distillation.bootstrap_interval(large)[0])[0] < \
        (distillation.bootstrap_interval(small)[1] - distillation.bootstrap_interval(small)[0])[0] / 5


def test_bad_groups_are_named(distillation, tmp_path):
    with pytest.raises(SystemExit, match=r"--group must be LABEL=RUN\[@DATA\]\[,RUN\[@DATA\]\.\.\.\], got 'nolabel'"):
        distillation.parse_group("nolabel")
    with pytest.raises(SystemExit, match=f"{tmp_path} has no student.pt"):
        distillation.parse_group(f"x={tmp_path}")


def test_folds_pool_their_test_clips(distillation, tmp_path, capsys):
    labels = np.arange(8) % 4
    right = np.repeat(labels[:, None], 10, 1)
    runs = {}
    for fold in (0, 1):
        data = tmp_path / f"sbu.npz#fold{fold}"
        for label, predictions in (("KD", right), ("none", (right + 1) % 4 if fold else right)):
            (tmp_path / f"{label}{fold}").mkdir(exist_ok=True)
            runs.setdefault(label, []).append(f"{_fake_run(tmp_path / f'{label}{fold}', 'run', predictions, labels, data)}@{data}")
    assert distillation.main(["--folds", "--group", "KD=" + ",".join(runs["KD"]), "--group",
                              "none=" + ",".join(runs["none"]), "--baseline", "none"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("the folds' test clips pooled, 16 clips;")
    assert "| none | 2 | 3.0 | 0.500 | 0.500 |" in out  # fold 0 right, fold 1 wrong: half of 16 clips
    assert "| KD | +0.500 [+0.25, +0.75]" in out
