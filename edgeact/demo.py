"""The end-to-end demo: stream clips through a Predictor, report early decisions, draw them.

``edgeact demo`` with no model first makes everything it needs (a synthetic dataset, a quickly
trained pose student with distillation, its verified ONNX export), then streams the test clips
one frame at a time as a camera would, prints when each action was recognised and how much of
it had been seen, and writes an annotated video. With ``--model`` it streams that model.
The streaming part needs no torch.

Its step lines ([1/4] ...) go to stdout, flushed, so that a redirected run shows them in order
with the progress on stderr (the trainer's lines, the dataset's progress).
"""

from __future__ import annotations

import importlib.resources
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from edgeact.data import open_dataset
from edgeact.data.sampling import observation_cutoff
from edgeact.data.skeleton import LIMBS
from edgeact.data.video import CODECS, write_video
from edgeact.errors import ConfigError
from edgeact.predictor import DecisionPolicy, Prediction, Predictor

RATIOS = [round(0.1 * i, 1) for i in range(1, 11)]
_PERSON_COLOURS = ((60, 220, 60), (60, 160, 255))
PANEL = 150  # width of the probability panel beside each frame, pixels


@dataclass
class ClipResult:
    clip_id: str
    true_label: str
    num_frames: int
    decision: str | None
    decision_frame: int | None
    final: str
    at_ratio: dict[float, bool]

    @property
    def decided_right(self) -> bool:
        return self.decision == self.true_label


def stream_dataset(
    predictor: Predictor,
    data_dir: str | Path,
    *,
    split: str = "test",
    max_clips: int | None = None,
    video: str | Path | None = None,
    video_clips: int = 6,
) -> list[ClipResult]:
    """Push each clip of ``split`` frame by frame; optionally write an annotated video."""
    clips = list(open_dataset(data_dir).split(split))[:max_clips]
    spec = predictor.spec
    rendered: list[np.ndarray] = []
    results = []
    for n, clip in enumerate(clips):
        stream = clip.clip_id
        frames = clip.frames()
        keypoints = clip.noisy_keypoints
        cutoffs = {r: observation_cutoff(clip.num_frames, r) for r in RATIOS}
        at_ratio = {}
        for t in range(clip.num_frames):
            pred = predictor.push(
                frames[t] if spec.frames else None,
                keypoints=keypoints[t] if spec.keypoints else None,
                stream=stream,
            )
            for r, cut in cutoffs.items():
                if cut == t + 1:
                    at_ratio[r] = pred.label == clip.label_name
            if video is not None and n < video_clips:
                rendered.append(draw(frames[t], keypoints[t], pred, clip.label_name, predictor.classes))
        results.append(ClipResult(clip.clip_id, clip.label_name, clip.num_frames, pred.decision_label,
                                  pred.decision_frame, pred.label, at_ratio))
        predictor.close_stream(stream)
    if video is not None and rendered:
        write_video(Path(video), np.stack(rendered), fps=15.0, codec=CODECS["mjpg"])
    return results


def draw(frame: np.ndarray, keypoints: np.ndarray, pred: Prediction, truth: str, names: tuple[str, ...],
         scale: int = 3) -> np.ndarray:
    """The frame enlarged with the keypoints the model saw, and a panel of the top classes."""
    h, w = frame.shape[:2]
    big = cv2.resize(frame, (w * scale, h * scale), interpolation=cv2.INTER_NEAREST)
    for person, colour in zip(keypoints, _PERSON_COLOURS):
        for a, b in LIMBS:
            if person[a, 2] > 0 and person[b, 2] > 0:
                pa = (int(person[a, 0] * scale), int(person[a, 1] * scale))
                pb = (int(person[b, 0] * scale), int(person[b, 1] * scale))
                cv2.line(big, pa, pb, colour, 2, cv2.LINE_AA)
    panel = np.full((h * scale, PANEL, 3), 32, np.uint8)
    order = np.argsort(pred.probs)[::-1][:5]
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(panel, f"frame {pred.frames_seen}", (6, 16), font, 0.45, (220, 220, 220), 1, cv2.LINE_AA)
    cv2.putText(panel, f"truth: {truth}", (6, 34), font, 0.4, (220, 220, 220), 1, cv2.LINE_AA)
    for row, k in enumerate(order):
        y = 56 + row * 26
        width = int((PANEL - 12) * float(pred.probs[k]))
        colour = (80, 200, 80) if names[k] == truth else (80, 80, 220)
        cv2.rectangle(panel, (6, y), (6 + width, y + 16), colour, -1)
        cv2.putText(panel, f"{names[k]} {pred.probs[k]:.2f}", (8, y + 12), font, 0.38, (255, 255, 255), 1, cv2.LINE_AA)
    if pred.decided:
        text = f"DECIDED: {pred.decision_label} @ {pred.decision_frame}"
        cv2.putText(panel, text[:24], (6, h * scale - 12), font, 0.4, (0, 255, 255), 1, cv2.LINE_AA)
    return np.concatenate([big, panel], axis=1)


def summarise(results: list[ClipResult]) -> str:
    """A per-clip table and the totals: when each action was recognised, and how often right."""
    lines = [f"{'clip':<14} {'true action':<16} {'decision':<16} {'at frame':>8} {'seen':>5}  ok"]
    for r in results:
        seen = f"{r.decision_frame / r.num_frames:.0%}" if r.decision_frame else "-"
        mark = "yes" if r.decided_right else ("no" if r.decision else "-")
        frame = f"{r.decision_frame}/{r.num_frames}" if r.decision_frame else "-"
        lines.append(f"{r.clip_id:<14} {r.true_label:<16} {r.decision or '(none)':<16} {frame:>8} {seen:>5}  {mark}")
    decided = [r for r in results if r.decision]
    right = sum(r.decided_right for r in decided)
    lines.append("")
    lines.append(
        f"{len(decided)}/{len(results)} clips decided early"
        + (f", {right}/{len(decided)} of them right; median decision after "
           f"{np.median([r.decision_frame / r.num_frames for r in decided]):.0%} of the clip" if decided else "")
    )
    accuracy = [np.mean([r.at_ratio.get(k, False) for r in results]) for k in RATIOS]
    lines.append("top-1 accuracy by observation ratio: "
                 + "  ".join(f"{k:.1f}:{a:.2f}" for k, a in zip(RATIOS, accuracy)))
    return "\n".join(lines)


def bundled_config(name: str) -> Path:
    """A config from ``configs/``: installed inside the package by a wheel install, or the
    source tree's when edgeact runs from a clone (editable install)."""
    package = Path(__file__).resolve().parent
    candidates = [package / "configs" / name, package.parent / "configs" / name]
    try:  # an editable install may keep the installed copy outside the source tree
        candidates.append(Path(str(importlib.resources.files("edgeact").joinpath("configs", name))))
    except (ModuleNotFoundError, TypeError):
        pass
    for path in candidates:
        if path.is_file():
            return path
    raise ConfigError(f"Config {name!r} is not installed with edgeact (looked in "
                      f"{', '.join(str(p.parent) for p in candidates)}); reinstall edgeact or pass --model.")


def train_and_export(data: str | Path, run_dir: str | Path, *, epochs: Optional[int] = None,
                     quiet: bool = False) -> Path:
    """Train the pose student (with its teacher) on ``data`` and export its verified step graph.

    Training shows its progress on stderr as ``edgeact train`` does on a terminal; off a terminal,
    a line per stage; ``quiet``: none."""
    from edgeact.export import export_onnx
    from edgeact.train.config import load_config
    from edgeact.train.trainer import train

    run_dir = Path(run_dir)
    student = run_dir / "student.pt"
    if not student.is_file():
        config = bundled_config("synth_pose.yaml")
        overrides = [] if epochs is None else [f"teacher.epochs={epochs}", f"student.epochs={epochs}"]
        cfg = load_config(config, overrides)
        print(f"[2/4] training teacher ({cfg.teacher.epochs} epochs) and student ({cfg.student.epochs} epochs), "
              f"{config.name}, into {run_dir}", flush=True)
        # On a terminal the bars and a line per epoch (validation AUC, time left) redraw in place or
        # scroll by, as with `edgeact train`. Off one (CI, a redirected run) the bars are off and a
        # line per epoch would put 80 lines of loss terms (40 epochs each stage) into the demo's log:
        # a line per stage (model, done in how long and how well, test result) says where the run is,
        # and RUN/train.log keeps every epoch's line.
        progress = "epochs" if sys.stderr.isatty() else "stages"
        started = time.perf_counter()
        train(cfg, data, run_dir, quiet=quiet, progress=progress)
        print(f"      trained in {time.perf_counter() - started:.0f} s; metrics in {run_dir / 'metrics.json'}",
              flush=True)
    onnx_path = run_dir / "student.onnx"
    report = export_onnx(student, onnx_path)
    print(f"[3/4] exported {onnx_path}: ONNX Runtime vs PyTorch max abs difference {report.max_abs_error:.1g} "
          f"({report.verification})", flush=True)
    return onnx_path


def run(model: str | Path, data: str | Path, *, backend: str = "auto", threshold: float = 0.8,
        video: str | Path | None = None, max_clips: int | None = None) -> list[ClipResult]:
    policy = DecisionPolicy(threshold=threshold, consecutive=3)
    with Predictor(model, backend, policy=policy) as predictor:
        started = time.perf_counter()
        results = stream_dataset(predictor, data, max_clips=max_clips, video=video)
        elapsed = time.perf_counter() - started
        frames = sum(r.num_frames for r in results)
        print(f"streamed {frames} frames of {len(results)} clips through {predictor.backend} "
              f"in {elapsed:.1f} s ({frames / elapsed:.0f} frames/s, decoding and drawing included)")
    print(summarise(results))
    if video is not None:
        print(f"annotated video: {video}")
    return results
