"""The end-to-end demo: stream clips through a Predictor, report early decisions, draw them.

``edgeact demo`` with no model first makes everything it needs (a synthetic dataset, a quickly
trained pose student with distillation, its verified ONNX export), then streams the test clips
one frame at a time as a camera would, prints when each action was recognised and how much of
it had been seen, and writes an annotated video. With ``--model`` it streams that model.
With ``--source`` it streams real footage instead (a video file or a camera) through the
model, a keypoint model's keypoints found by a pose estimator (``--pose movenet:PATH``,
docs/pose.md), and prints each decision as it happens. The streaming part needs no torch.

Its step lines ([1/4] ...) go to stdout, flushed, so that a redirected run shows them in order
with the progress on stderr (the trainer's lines, the dataset's progress).
"""

from __future__ import annotations

import importlib.resources
import statistics
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from edgeact.data import open_dataset
from edgeact.data.sampling import observation_cutoff
from edgeact.data.skeleton import JOINT_NAMES, LIMBS
from edgeact.data.video import CODECS, write_video
from edgeact.errors import ConfigError, DatasetError, InputError
from edgeact.predictor import DecisionPolicy, Prediction, Predictor

RATIOS = [round(0.1 * i, 1) for i in range(1, 11)]
_PERSON_COLOURS = ((60, 220, 60), (60, 160, 255))
PANEL = 150  # width of the probability panel beside each frame, pixels
_TIMED_FRAMES = 1000  # --source: the per-stage medians are over the last this many frames (bounded memory)


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
            pred = predictor.push(  # with a pose provider, it finds the keypoints in the frame
                frames[t] if spec.frames or predictor.pose else None,
                keypoints=keypoints[t] if spec.keypoints and not predictor.pose else None,
                stream=stream,
            )
            for r, cut in cutoffs.items():
                if cut == t + 1:
                    at_ratio[r] = pred.label == clip.label_name
            if video is not None and n < video_clips:
                seen = pred.keypoints if pred.keypoints is not None else keypoints[t]
                rendered.append(draw(frames[t], seen, pred, clip.label_name, predictor.classes))
        results.append(ClipResult(clip.clip_id, clip.label_name, clip.num_frames, pred.decision_label,
                                  pred.decision_frame, pred.label, at_ratio))
        predictor.close_stream(stream)
    if video is not None and rendered:
        write_video(Path(video), np.stack(rendered), fps=15.0, codec=CODECS["mjpg"])
    return results


def draw(frame: np.ndarray, keypoints: np.ndarray | None, pred: Prediction, truth: str | None,
         names: tuple[str, ...], scale: int = 3) -> np.ndarray:
    """The frame enlarged with the keypoints the model saw (COCO-18 limbs; joints of other
    layouts as dots), and a panel of the top classes (``truth`` None: footage without labels)."""
    h, w = frame.shape[:2]
    big = cv2.resize(frame, (w * scale, h * scale), interpolation=cv2.INTER_NEAREST)
    for person, colour in zip(() if keypoints is None else keypoints, _PERSON_COLOURS):
        if len(person) != len(JOINT_NAMES):
            for x, y, visible in person[:, [0, 1, -1]]:
                if visible > 0:
                    cv2.circle(big, (int(x * scale), int(y * scale)), 3, colour, -1, cv2.LINE_AA)
            continue
        for a, b in LIMBS:
            if person[a, 2] > 0 and person[b, 2] > 0:
                pa = (int(person[a, 0] * scale), int(person[a, 1] * scale))
                pb = (int(person[b, 0] * scale), int(person[b, 1] * scale))
                cv2.line(big, pa, pb, colour, 2, cv2.LINE_AA)
    panel = np.full((h * scale, PANEL, 3), 32, np.uint8)
    order = np.argsort(pred.probs)[::-1][:5]
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(panel, f"frame {pred.frames_seen}", (6, 16), font, 0.45, (220, 220, 220), 1, cv2.LINE_AA)
    if truth is not None:
        cv2.putText(panel, f"truth: {truth}", (6, 34), font, 0.4, (220, 220, 220), 1, cv2.LINE_AA)
    for row, k in enumerate(order):
        y = 56 + row * 26
        width = int((PANEL - 12) * float(pred.probs[k]))
        colour = (200, 140, 60) if truth is None else (80, 200, 80) if names[k] == truth else (80, 80, 220)
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
        video: str | Path | None = None, max_clips: int | None = None, pose=None) -> list[ClipResult]:
    """Stream the test clips of ``data``; with ``pose`` (a PoseProvider or "NAME:PATH") a keypoint
    model gets the keypoints the estimator finds in the frames instead of the dataset's."""
    policy = DecisionPolicy(threshold=threshold, consecutive=3)
    with Predictor(model, backend, policy=policy, pose=pose) as predictor:
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


# -- real footage: a video file or a camera ------------------------------------------------------
@dataclass
class SourceResult:
    source: str
    frames: int
    seconds: float
    decisions: list[tuple[int, str, float]]  # (frame of the source, class, its probability)
    frames_with_people: int | None  # keypoint models: frames in which the model saw a person
    median_ms: dict[str, float] = field(default_factory=dict)  # per Predictor stage


def open_source(source: str) -> cv2.VideoCapture:
    """A camera index ("0") or a video file, opened for reading."""
    if source.isdigit():
        capture = cv2.VideoCapture(int(source))
        what = f"camera {source}"
    else:
        if not Path(source).is_file():
            raise InputError(f"--source {source!r} is neither a camera index (0, 1, ...) nor a video file.")
        capture = cv2.VideoCapture(source)
        what = f"the video {source}"
    if not capture.isOpened():
        capture.release()
        raise DatasetError(f"OpenCV {cv2.__version__} cannot open {what}.")
    return capture


def stream_source(predictor: Predictor, source: str, *, video: str | Path | None = None,
                  max_frames: int | None = None, stream: str = "source") -> SourceResult:
    """Push every frame of ``source`` (a camera index or a video file) as it is read; print each
    decision as it happens; write the annotated frames to ``video`` as they come (nothing
    accumulates per frame). A camera has no clip boundaries: after a decision the stream starts
    afresh, so the next action can be recognised. Ctrl-C ends the stream, not the summary."""
    capture = open_source(source)
    fps = capture.get(cv2.CAP_PROP_FPS) or 0.0
    writer = None
    decisions: list[tuple[int, str, float]] = []
    timings: dict[str, deque] = {}
    keypoint_model = predictor.spec.keypoints is not None
    with_people = frames = 0
    started = time.perf_counter()
    try:
        while max_frames is None or frames < max_frames:
            ok, frame = capture.read()
            if not ok:
                break
            frames += 1
            pred = predictor.push(frame, stream=stream)
            for stage, ms in pred.timings_ms.items():
                timings.setdefault(stage, deque(maxlen=_TIMED_FRAMES)).append(ms)
            with_people += bool(keypoint_model and (pred.keypoints[:, :, -1] > 0).any())
            if pred.decided:
                when = f" ({(frames - 1) / fps:.1f} s)" if fps > 0 else ""
                print(f"frame {frames}{when}: {pred.decision_label} (p={pred.score:.2f}) after "
                      f"{pred.decision_frame} frames of this action", flush=True)
                decisions.append((frames, pred.decision_label, pred.score))
            if video is not None:
                scale = max(1, 360 // frame.shape[0])
                if writer is None:
                    height, width = frame.shape[0] * scale, frame.shape[1] * scale + PANEL
                    writer = _open_writer(Path(video), fps if fps > 0 else 15.0, (width, height))
                writer.write(draw(frame, pred.keypoints, pred, None, predictor.classes, scale=scale))
            if pred.decided:
                predictor.reset(stream)
    except KeyboardInterrupt:
        print("interrupted: the stream ends here", flush=True)
    finally:
        capture.release()
        if writer is not None:
            writer.release()
    if frames == 0:
        raise DatasetError(f"--source {source!r} gave no frame.")
    return SourceResult(source, frames, time.perf_counter() - started, decisions,
                        with_people if keypoint_model else None,
                        {stage: statistics.median(values) for stage, values in timings.items()})


def _open_writer(path: Path, fps: float, size: tuple[int, int]) -> cv2.VideoWriter:
    codec = CODECS["mjpg"]
    writer = cv2.VideoWriter(str(path), codec.backend, cv2.VideoWriter_fourcc(*codec.fourcc), fps, size)
    if not writer.isOpened():
        raise DatasetError(f"OpenCV {cv2.__version__} cannot write {codec.fourcc} video to {path}.")
    return writer


def summarise_source(result: SourceResult) -> str:
    lines = [f"streamed {result.frames} frames in {result.seconds:.1f} s ({result.frames / result.seconds:.0f} "
             f"frames/s, decoding and drawing included); {len(result.decisions)} decision(s)"]
    if result.frames_with_people is not None:
        lines.append(f"a person seen in {result.frames_with_people}/{result.frames} frames")
    lines.append("per frame, median ms: " + ", ".join(f"{k} {v:.2f}" for k, v in result.median_ms.items()))
    return "\n".join(lines)


def run_source(model: str | Path, source: str, *, pose=None, backend: str = "auto", threshold: float = 0.8,
               video: str | Path | None = None, max_frames: int | None = None) -> SourceResult:
    """Stream real footage through ``model``; ``pose`` (a PoseProvider or "NAME:PATH") finds a
    keypoint model's keypoints."""
    policy = DecisionPolicy(threshold=threshold, consecutive=3)
    with Predictor(model, backend, policy=policy, pose=pose) as predictor:
        if predictor.spec.keypoints is not None and predictor.pose is None:
            raise InputError(f"{model} takes keypoints: streaming a --source through it needs a pose estimator, "
                             "e.g. --pose movenet:movenet_single_pose_lightning_ptq.tflite (docs/pose.md).")
        using = f" with pose {predictor.pose.name} ({predictor.describe()['pose']['mapping']})" if predictor.pose else ""
        print(f"streaming {source} through {predictor.backend}{using}", flush=True)
        result = stream_source(predictor, source, video=video, max_frames=max_frames)
    print(summarise_source(result))
    if video is not None:
        print(f"annotated video: {video}")
    return result
