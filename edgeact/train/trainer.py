"""The training pipeline behind ``edgeact train``: teacher, then student, then the report.

Stages (see :mod:`edgeact.train.config`): the optional teacher learns from labels on whole
sequences (offline; it may read the future); the student (streaming) learns from labels and,
as its losses ask, from the frozen teacher (M1 feature KD, M3 logit KD) and from itself (M3
self-distillation). Both see the same augmented batches, so the teacher's outputs match the
student's steps one to one.

Run directory:
    student.pt, teacher.pt   checkpoints (edgeact.checkpoint; ``train`` holds the training facts)
    last.pt                  resume state: weights, optimizer, scheduler, RNG, history
    metrics.json             test metrics of the student (streaming, torch backend) + teacher (offline)
    accuracy.png             accuracy vs observation ratio, student vs teacher
    train.log                one line per epoch, and per stage

Reproducibility: the seed fixes each stage's initialisation (seeded from (seed, stage), so a
student starts from the same weights with or without a teacher before it), every data draw
(from (seed, stage, epoch, clip)) and the batch order (from (seed, epoch)); the torch RNG
(dropout) is saved with each epoch, so ``resume`` continues exactly where the run stopped.
Under ``torchrun`` (WORLD_SIZE > 1) each rank trains on its shard through DDP (gloo on CPU);
only rank 0 writes.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import DataLoader

from edgeact.checkpoint import load_checkpoint, model_spec, save_checkpoint
from edgeact.data import open_dataset
from edgeact.data.clip_store import ClipStore
from edgeact.data.sampling import sampling_stride
from edgeact.errors import ConfigError, ModelFormatError
from edgeact.evaluation import evaluate_stream
from edgeact.models import StreamingModel, build_model, load_pretrained
from edgeact.spec import ModelSpec
from edgeact.train.augment import ClipAugmenter
from edgeact.train.config import Stage, TrainConfig
from edgeact.train.data import BucketBatchSampler, TrainClips, choose_labeled, collate, forward_exact
from edgeact.train.evaluate import evaluate_offline
from edgeact.train.frame_warmup import warm_up_frames
from edgeact.train.losses import FeatureProjection, Objective
from edgeact.train.report import plot_accuracy, write_json

log = logging.getLogger("edgeact.train")
# the lines of each epoch (and frame warm-up epoch): a child, so progress="stages" can leave
# them out of the console while train.log keeps them
epoch_log = logging.getLogger("edgeact.train.epoch")
Progress = Literal["epochs", "stages"]
PROGRESS = ("epochs", "stages")

STATE_FORMAT = "edgeact.train-state/1"
STAGES = ("teacher", "student")


class RunPaths:
    """The files of a run directory."""

    def __init__(self, root: Path):
        self.root = root
        self.student, self.teacher = root / "student.pt", root / "teacher.pt"
        self.last, self.metrics = root / "last.pt", root / "metrics.json"
        self.plot, self.log = root / "accuracy.png", root / "train.log"

    def checkpoint(self, stage: str) -> Path:
        return self.student if stage == "student" else self.teacher


@dataclass(frozen=True)
class Dist:
    """Where this process stands under torchrun (world 1 without it)."""

    world: int = 1
    rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls) -> "Dist":
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        if not dist.is_initialized():
            dist.init_process_group("gloo")
        return cls(world, dist.get_rank())


@dataclass
class StageResult:
    model: StreamingModel
    summary: dict = field(default_factory=dict)


@dataclass
class _StageRun:
    """What one stage trains with; ``snapshot``/``restore`` are its part of RUN/last.pt."""

    model: StreamingModel
    projection: Optional[FeatureProjection]
    module: nn.Module  # model + projection, DDP-wrapped under torchrun
    objective: Objective
    sampler: BucketBatchSampler
    loader: DataLoader
    optimizer: torch.optim.Optimizer
    scheduler: Any

    def snapshot(self) -> dict:
        return {"model": self.model.state_dict(),
                "projection": self.projection.state_dict() if self.projection is not None else None,
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "torch_rng": torch.get_rng_state()}

    def restore(self, state: dict) -> dict:
        """Load a snapshot; returns the stage's progress (epoch, history, best, elapsed)."""
        self.model.load_state_dict(state["model"])
        if self.projection is not None:
            self.projection.load_state_dict(state["projection"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        return {key: state[key] for key in ("epoch", "history", "best", "elapsed", "frame_warmup") if key in state}


class _WithProjection(nn.Module):
    """The student plus the feature-KD projection, one module so DDP syncs both."""

    def __init__(self, model: StreamingModel, projection: Optional[FeatureProjection]):
        super().__init__()
        self.model = model
        self.projection = projection

    def forward(self, inputs: dict[str, Tensor], lengths: Tensor) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        out = forward_exact(self.model, inputs, lengths)
        return out, (self.projection(out) if self.projection is not None else {})


class Trainer:
    def __init__(self, cfg: TrainConfig, data: str | Path, out: str | Path, *, threads: Optional[int] = None,
                 quiet: bool = False, progress: Progress = "epochs"):
        self.cfg = cfg
        self.data_path = Path(data)
        self.paths = RunPaths(Path(out))
        self.quiet = quiet
        self.dist = Dist.from_env()
        if threads:
            torch.set_num_threads(threads)
        self.dataset = open_dataset(self.data_path)
        self.classes = list(self.dataset.classes)
        self.sampling = cfg.data.sampling
        self.models = {name: self._model_dict(name) for name in STAGES if getattr(cfg, name) is not None}
        student = self._build("student")
        if not student.is_streamable:
            raise ConfigError(f"student.model is offline-only ({student.offline_reason}); a student must stream: "
                              "use a unidirectional head and the online temporal shift.")
        self.spec: ModelSpec = model_spec(student, self.classes, stride=sampling_stride(self.sampling))
        if cfg.teacher is not None:
            teacher = self._build("teacher")
            if teacher.input_spec != student.input_spec:
                raise ConfigError("teacher.model and student.model must take the same inputs (the teacher sees the "
                                  f"student's batches): teacher {_inputs(teacher)}, student {_inputs(student)}.")
        view = cfg.data.keypoints
        self.train_store = ClipStore(self.dataset.split("train"), keypoint_view=view,
                                     keypoint_spec=self.spec.keypoints, cache_frames=cfg.data.cache_frames)
        self.val_store = ClipStore(self.dataset.split("val"), keypoint_view=view, keypoint_spec=self.spec.keypoints,
                                   cache_frames=cfg.data.cache_frames)
        for name in STAGES:
            stage = getattr(cfg, name)
            if stage is not None and stage.select == "best" and len(self.val_store) == 0:
                # the validation AUC of no clips is NaN, and epoch 1 used to be kept silently
                raise ConfigError(f"{data} has no clips in its 'val' split, so {name}.select: best has nothing to "
                                  f"choose the epoch by; set {name}.select: last, or give the dataset a 'val' split.")
            if stage is not None and stage.batch_size % self.dist.world:
                raise ConfigError(f"{name}.batch_size {stage.batch_size} is the batch over all {self.dist.world} "
                                  f"processes and must divide among them; use a multiple of {self.dist.world}.")
        self.labeled = choose_labeled(self.train_store.labels, cfg.data.unlabeled_fraction, cfg.seed)
        augment = cfg.data.augment
        joints = self.spec.keypoints.joints if self.spec.keypoints else None
        self.augmenter = ClipAugmenter(augment, frames=self.spec.frames is not None,
                                       joints=joints) if augment.enabled else None
        self._bar_enabled = not quiet and progress == "epochs" and sys.stderr.isatty() and self.dist.main

    # ----------------------------------------------------------------------------- models
    def _model_dict(self, stage: str) -> dict:
        model = dict(getattr(self.cfg, stage).model)
        count = model.setdefault("num_classes", len(self.classes))
        if count != len(self.classes):
            raise ConfigError(f"{stage}.model.num_classes is {count} but the dataset has {len(self.classes)} classes "
                              f"({', '.join(self.classes)}).")
        return model

    def _build(self, stage: str) -> StreamingModel:
        torch.manual_seed(self.cfg.seed * 1000 + STAGES.index(stage))  # per stage: independent of earlier stages
        return build_model(self.models[stage])

    # ----------------------------------------------------------------------------- run
    def run(self, *, resume: bool = False, stop_after: Optional[int] = None) -> Optional[dict]:
        """Train every stage, write the report; returns the metrics (None when stopped early or
        on a rank other than 0). ``stop_after`` ends this call after that many epochs (resumable)."""
        state = self._load_state() if resume else None
        if state is not None and state.get("complete"):
            log.info("run %s is already complete; nothing to resume", self.paths.root)
            return None
        self._epochs_left = stop_after  # in this call, over all stages (None: no limit)
        results: dict[str, StageResult] = {}
        done = state.get("done", {}) if state else {}
        teacher = None
        if self.cfg.teacher is not None:
            if "teacher" in done:
                teacher, _ = load_checkpoint(self.paths.teacher)
                results["teacher"] = StageResult(teacher, done["teacher"])
            else:
                result = self._run_stage("teacher", self.cfg.teacher, None, state, done)
                if result is None:
                    return None
                results["teacher"], teacher = result, result.model
                done["teacher"] = result.summary
                self._save_model("teacher", result)
                state = None
        result = self._run_stage("student", self.cfg.student, teacher, state, done)
        if result is None:
            return None
        results["student"] = result
        done["student"] = result.summary
        self._save_model("student", result)
        if not self.dist.main:
            return None
        metrics = self._report(results)
        self._save_state({"done": done, "complete": True})
        return metrics

    def _save_state(self, state: dict) -> None:
        tmp = self.paths.last.with_name(self.paths.last.name + ".tmp")
        torch.save({"format": STATE_FORMAT, "config": self.cfg.to_dict(), **state}, tmp)
        tmp.replace(self.paths.last)

    def _run_stage(self, name: str, stage: Stage, teacher: Optional[StreamingModel], state: Optional[dict],
                   done: dict) -> Optional[StageResult]:
        """Train one stage from scratch or from ``state``; None when this call's epochs ran out."""
        resuming = state is not None and state.get("stage") == name
        run, warmup = self._setup_stage(name, stage, teacher, warm_up=not resuming)
        progress = {"epoch": 0, "history": [], "best": None, "elapsed": 0.0}
        if warmup:  # its time counts as the stage's training time
            progress.update(frame_warmup=warmup, elapsed=warmup[-1]["seconds"])
        if resuming:
            progress = run.restore(state)
            log.info("resuming %s at epoch %d/%d", name, progress["epoch"] + 1, stage.epochs)
        for epoch in range(progress["epoch"], stage.epochs):
            if self._epochs_left is not None and self._epochs_left <= 0:
                return None
            started = time.perf_counter()
            run.sampler.set_epoch(epoch)
            row = {"epoch": epoch + 1, **self._train_epoch(name, stage, epoch, run, teacher)}
            if (epoch + 1) % stage.val_every == 0 or epoch + 1 == stage.epochs:
                val = evaluate_offline(run.model, self.val_store, self.spec, self.classes, self.sampling,
                                       batch_size=self.cfg.eval.batch_size).metrics()
                row.update(val_auc=val["auc"], val_accuracy=val["accuracy"])
                best = progress["best"]
                if best is None or val["auc"] > best["auc"]:
                    progress["best"] = {"epoch": epoch + 1, "auc": val["auc"], "accuracy": val["accuracy"],
                                        "state_dict": copy.deepcopy(run.model.state_dict())}
            progress["elapsed"] += time.perf_counter() - started
            row["seconds"] = progress["elapsed"]
            progress["history"].append(row)
            progress["epoch"] = epoch + 1
            self._log_epoch(name, stage, row, _time_left(progress, stage.epochs))
            if self.dist.main:
                self._save_state({"stage": name, "done": done, **run.snapshot(), **progress})
            if self._epochs_left is not None:
                self._epochs_left -= 1
        result = self._finish_stage(stage, run.model, progress)
        summary = result.summary
        log.info("%s: done in %.0f s, val AUC %.4f (epoch %d/%d)", name, summary["seconds"], summary["val_auc"],
                 summary["selected_epoch"], stage.epochs)
        return result

    def _setup_stage(self, name: str, stage: Stage, teacher: Optional[StreamingModel], *,
                     warm_up: bool = True) -> tuple["_StageRun", list[dict]]:
        """The stage's model, data and optimizer, and the frame warm-up's rows per epoch;
        ``warm_up`` runs the warm-up (not when resuming: the restored weights replace the model's)."""
        model = self._build(name)
        if stage.pretrained:
            dropped = load_pretrained(model, stage.pretrained)
            log.info("%s: frame encoder initialised from %s (dropped %d classifier keys)", name, stage.pretrained,
                     len(dropped))
        # the teacher learns from labeled clips only; the student sees every clip
        subset = np.arange(len(self.train_store)) if name == "student" else np.flatnonzero(self.labeled)
        warmup: list[dict] = []
        if warm_up and stage.frame_warmup.epochs > 0:
            if model.rgb is None:
                raise ConfigError(f"{name}.frame_warmup needs a frame encoder, but the {name} model reads "
                                  f"{', '.join(model.config.inputs)} only; remove {name}.frame_warmup.")
            warmup = warm_up_frames(
                model.rgb, model.num_classes, stage.frame_warmup, train=self.train_store,
                clips=np.intersect1d(subset, np.flatnonzero(self.labeled)), val=self.val_store,
                spec=self.spec.frames, augmenter=self.augmenter, weight_decay=stage.optimizer.weight_decay,
                seed=self.cfg.seed * 1000 + STAGES.index(name), label=name)
        if teacher is not None:
            teacher.eval()
        projection = None
        if stage.losses.feature_kd.weight > 0:
            projection = FeatureProjection(*_feature_dims(model, teacher, self.spec))
        module: nn.Module = _WithProjection(model, projection)
        if self.dist.world > 1:
            module = nn.parallel.DistributedDataParallel(module, find_unused_parameters=_may_skip_parameters(stage, model))
        stream = STAGES.index(name)
        clips = TrainClips(self.train_store, self.spec, self.sampling, labeled=self.labeled,
                           augmenter=self.augmenter, seed=self.cfg.seed, stream=stream)
        per_rank = stage.batch_size // self.dist.world  # the global batch stays the config's
        sampler = BucketBatchSampler(clips.lengths(), per_rank, seed=self.cfg.seed * 1000 + stream,
                                     num_replicas=self.dist.world, rank=self.dist.rank, subset=subset)
        workers = self.cfg.data.workers
        loader = DataLoader(clips, batch_sampler=sampler, collate_fn=collate, num_workers=workers,
                            persistent_workers=workers > 0, generator=torch.Generator().manual_seed(self.cfg.seed))
        optimizer = _optimizer(stage, module.parameters())
        run = _StageRun(model, projection, module, Objective(stage.losses), sampler, loader, optimizer,
                        _scheduler(stage, optimizer, len(sampler)))
        self._log_stage(name, stage, run, len(subset))
        return run, warmup

    def _finish_stage(self, stage: Stage, model: StreamingModel, progress: dict) -> StageResult:
        """Load the selected epoch's weights; the stage summary for checkpoints and metrics."""
        history, best = progress["history"], progress["best"]
        chosen = best if stage.select == "best" and best is not None else None
        if chosen is not None:
            model.load_state_dict(chosen["state_dict"])
        last_val = next((r for r in reversed(history) if "val_auc" in r), {})
        summary = {"epochs": stage.epochs, "seconds": progress["elapsed"],
                   "selected_epoch": chosen["epoch"] if chosen else stage.epochs,
                   "val_auc": chosen["auc"] if chosen else last_val.get("val_auc"),
                   "val_accuracy": chosen["accuracy"] if chosen else last_val.get("val_accuracy"),
                   "history": history}
        if progress.get("frame_warmup"):
            summary["frame_warmup"] = progress["frame_warmup"]
        model.eval()
        return StageResult(model, summary)

    def _train_epoch(self, name: str, stage: Stage, epoch: int, run: "_StageRun",
                     teacher: Optional[StreamingModel]) -> dict:
        from tqdm import tqdm

        run.module.train()
        sums: dict[str, float] = {}
        batches = correct = labeled_count = 0
        bar = tqdm(run.loader, desc=f"{name} {epoch + 1}/{stage.epochs}", disable=not self._bar_enabled, leave=False,
                   dynamic_ncols=True)
        for batch in bar:
            inputs = {k: batch[k] for k in ("frames", "keypoints") if k in batch}
            student_out, projected = run.module(inputs, batch["lengths"])
            teacher_out = None
            if teacher is not None and stage.losses.uses_teacher:
                with torch.no_grad():
                    teacher_out = forward_exact(teacher, inputs, batch["lengths"])
            terms = run.objective(student_out, batch["labels"], batch["mask"], batch["labeled"], teacher_out,
                                  projected)
            run.optimizer.zero_grad(set_to_none=True)
            terms["total"].backward()
            if stage.optimizer.grad_clip:
                nn.utils.clip_grad_norm_(run.module.parameters(), stage.optimizer.grad_clip)
            run.optimizer.step()
            run.scheduler.step()
            for key, value in terms.items():
                sums[key] = sums.get(key, 0.0) + float(value.detach())
            batches += 1
            last = student_out["logits"].detach()[torch.arange(len(batch["lengths"])), batch["lengths"] - 1]  # [B,K]
            correct += int(((last.argmax(-1) == batch["labels"]) & batch["labeled"]).sum())
            labeled_count += int(batch["labeled"].sum())
            bar.set_postfix(loss=f"{sums['total'] / batches:.3f}", acc=f"{correct / max(labeled_count, 1):.3f}")
        bar.close()
        stats = {"lr": run.optimizer.param_groups[0]["lr"]}
        stats.update({f"loss_{k}": v / max(batches, 1) for k, v in sums.items()})
        stats["train_accuracy"] = correct / max(labeled_count, 1)  # at the last step, labeled clips of this rank
        return stats

    # ----------------------------------------------------------------------------- outputs
    def _save_model(self, name: str, result: StageResult) -> None:
        if not self.dist.main:
            return
        train = {"stage": name, "config": self.cfg.to_dict(), "data": str(self.data_path),
                 "sampling": asdict(self.sampling), "keypoints": self.cfg.data.keypoints,
                 **{k: v for k, v in result.summary.items() if k != "history"}}
        save_checkpoint(self.paths.checkpoint(name), result.model, self.classes,
                        stride=sampling_stride(self.sampling), train=train)

    def _report(self, results: dict[str, StageResult]) -> dict:
        """Test-split metrics: the student through the torch backend (the streaming path
        deployment runs), the teacher offline; metrics.json and the plot."""
        from edgeact.backends import load_backend

        started = time.perf_counter()
        test = ClipStore(self.dataset.split("test"), keypoint_view=self.cfg.data.keypoints,
                         keypoint_spec=self.spec.keypoints)
        backend = load_backend(self.paths.student, backend="torch", device="cpu")
        try:
            metrics = evaluate_stream(backend, test, self.classes, self.sampling,
                                      batch_size=self.cfg.eval.batch_size).metrics()
        finally:
            backend.close()
        metrics.update(model=self.paths.student.name, split="test", backend="torch", sampling=asdict(self.sampling),
                       keypoints=self.cfg.data.keypoints)
        curves = {"student (streaming)": metrics}
        if "teacher" in results:
            teacher = evaluate_offline(results["teacher"].model, test, self.spec, self.classes, self.sampling,
                                       batch_size=self.cfg.eval.batch_size).metrics()
            metrics["teacher"] = {**teacher, "model": self.paths.teacher.name, "mode": "offline"}
            curves["teacher (offline, sees the future)"] = teacher
        seconds = {name: r.summary["seconds"] for name, r in results.items()}
        seconds["test_eval"] = time.perf_counter() - started
        metrics["train"] = {"seconds": seconds, **{name: r.summary for name, r in results.items()}}
        write_json(self.paths.metrics, metrics)
        plot_accuracy(self.paths.plot, curves, title=f"{self.paths.root.name}: test accuracy vs observation ratio",
                      chance=1 / len(self.classes))
        log.info("test: student AUC %.4f, accuracy %s%s", metrics["auc"], _fmt(metrics["accuracy"]),
                 f"; teacher (offline) AUC {metrics['teacher']['auc']:.4f}" if "teacher" in metrics else "")
        return metrics

    def _load_state(self) -> dict:
        state = _read_state(self.paths.last)
        saved = state["config"]
        try:  # a run saved before a field existed holds that field's default
            saved = TrainConfig.from_dict(copy.deepcopy(saved)).to_dict()
        except ConfigError:
            pass  # compared as saved: the difference names the key
        if saved != self.cfg.to_dict():
            key = _first_difference(saved, self.cfg.to_dict())
            raise ConfigError(f"cannot resume {self.paths.root}: the config differs from the run's at '{key}'. "
                              "Resume without --config/--set to continue with the run's own config.")
        return state

    def _log_stage(self, name: str, stage: Stage, run: "_StageRun", clips: int) -> None:
        params = sum(p.numel() for p in run.model.parameters())
        extra = (f", feature-KD projection {sum(p.numel() for p in run.projection.parameters())} params"
                 if run.projection is not None else "")
        log.info("%s: %s, %d params%s; %d epoch%s on %d training clips, %d rank%s", name,
                 run.model.describe()["architecture"], params, extra, stage.epochs, "s"[:stage.epochs != 1], clips,
                 self.dist.world, "s"[:self.dist.world != 1])
        unlabeled = int((~self.labeled).sum())
        if name == "student" and unlabeled:
            uses = "distillation terms only" if stage.losses.uses_teacher or stage.losses.self_kd.weight > 0 else \
                "nothing (no distillation term): a supervised baseline on the labeled clips"
            log.info("student: %d of %d training clips are unlabeled and train through %s", unlabeled,
                     len(self.labeled), uses)

    def _log_epoch(self, name: str, stage: Stage, row: dict, left: Optional[float]) -> None:
        losses = " ".join(f"{k[5:]}={v:.4f}" for k, v in row.items() if k.startswith("loss_"))
        val = f" val_auc={row['val_auc']:.4f} val_acc@r={_fmt(row['val_accuracy'])}" if "val_auc" in row else ""
        eta = f", ~{_duration(left)} left" if left is not None else ""
        epoch_log.info("%s epoch %d/%d: %s train_acc=%.3f%s lr=%.2e %.1fs%s", name, row["epoch"], stage.epochs,
                       losses, row["train_accuracy"], val, row["lr"], row["seconds"], eta)


# ----------------------------------------------------------------------------- helpers
def _read_state(path: Path) -> dict:
    if not path.is_file():
        raise ModelFormatError(f"cannot resume: {path} does not exist (was the run started with this --out?).")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated file, not a torch file
        raise ModelFormatError(f"cannot resume from {path}: {type(exc).__name__}: {exc}") from exc
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise ModelFormatError(f"cannot resume from {path}: not an edgeact training state.")
    return state


def load_run_config(out: str | Path) -> dict:
    """The config a run was started with (from RUN/last.pt)."""
    return _read_state(RunPaths(Path(out)).last)["config"]


def _inputs(model: StreamingModel) -> str:
    return ", ".join(f"{s.name}{list(s.shape)}" for s in model.input_spec)


def _time_left(progress: dict, epochs: int) -> Optional[float]:
    """Seconds the stage's remaining epochs should take at its mean epoch time so far (the frame
    warm-up's time left out); None after the last epoch."""
    done = progress["epoch"]
    if done >= epochs:
        return None
    warmup = progress["frame_warmup"][-1]["seconds"] if progress.get("frame_warmup") else 0.0
    return (progress["elapsed"] - warmup) / done * (epochs - done)


def _duration(seconds: float) -> str:
    """52s, 3m05s, 1h02m."""
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def _fmt(values: list[float]) -> str:
    return "[" + " ".join(f"{v:.2f}" for v in values) + "]"


def _first_difference(a: Any, b: Any, path: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                return _first_difference(a.get(key), b.get(key), f"{path}.{key}" if path else key)
    return path or "(top level)"


@torch.no_grad()
def _feature_dims(student: StreamingModel, teacher: StreamingModel, spec: ModelSpec) -> tuple[dict, dict]:
    """Feature sizes per output key, from one tiny forward of each model (eval mode)."""
    inputs = {s.name: torch.zeros(1, 2, *s.shape) for s in spec.data_inputs}
    dims = []
    for model in (student, teacher):
        mode = model.training
        model.eval()
        out = model.forward_offline(inputs)
        model.train(mode)
        dims.append({k: v.shape[-1] for k, v in out.items() if k in FeatureProjection.KEYS})
    return dims[0], dims[1]


def _may_skip_parameters(stage: Stage, model: StreamingModel) -> bool:
    """Whether some weights can get no gradient (DDP must then look for them every step): a
    classifier no loss reads, or stage 1 of a two-stage head without its own loss."""
    losses = stage.losses
    classifier_unread = losses.classification.weight == 0 and losses.logit_kd.weight == 0 and losses.self_kd.weight == 0
    stage1_unread = model.config.head.name == "two_stage" and (losses.stage1_weight == 0 or classifier_unread)
    return classifier_unread or stage1_unread


def _optimizer(stage: Stage, params) -> torch.optim.Optimizer:
    o = stage.optimizer
    if o.name == "sgd":
        return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
    cls = torch.optim.AdamW if o.name == "adamw" else torch.optim.Adam
    return cls(params, lr=o.lr, weight_decay=o.weight_decay)


def _scheduler(stage: Stage, optimizer: torch.optim.Optimizer, steps_per_epoch: int):
    total = max(stage.epochs * steps_per_epoch, 1)
    warmup = stage.optimizer.warmup_epochs * steps_per_epoch
    cosine = stage.optimizer.schedule == "cosine"

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if not cosine:
            return 1.0
        return 0.5 * (1.0 + math.cos(math.pi * min((step - warmup) / max(total - warmup, 1), 1.0)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def train(cfg: TrainConfig, data: str | Path, out: str | Path, *, resume: bool = False, threads: Optional[int] = None,
          quiet: bool = False, progress: Progress = "epochs", stop_after: Optional[int] = None) -> Optional[dict]:
    """Run a training config on a dataset directory into run directory ``out`` (see the module
    docstring); returns the test metrics on rank 0.

    Console (stderr, rank 0): ``progress="epochs"`` shows a line per epoch (losses, validation
    AUC, time left) and, on a terminal, a bar per epoch; ``"stages"`` only the lines of each
    stage (its model, when it is done and how well, the test result); ``quiet`` nothing.
    train.log gets every line either way."""
    if progress not in PROGRESS:
        raise ValueError(f"progress must be one of {', '.join(PROGRESS)}, got {progress!r}")
    out = Path(out)
    d = Dist.from_env()
    lock = None
    if d.main:
        out.mkdir(parents=True, exist_ok=True)
        lock = _lock_run(out)
    if d.world > 1:
        dist.barrier()
    handlers = _log_handlers(RunPaths(out).log, quiet, progress) if d.main else []
    try:
        return Trainer(cfg, data, out, threads=threads, quiet=quiet, progress=progress).run(
            resume=resume, stop_after=stop_after)
    finally:
        for handler in handlers:
            log.removeHandler(handler)
            handler.close()
        if lock is not None:
            lock.close()  # releases the lock
        if d.world > 1:
            dist.barrier()


def _lock_run(out: Path):
    """Hold ``out/.lock`` for the run: a second `edgeact train` into the same directory would
    race the first on last.pt and the logs. Released when the returned file closes (or the process
    dies). POSIX advisory lock; elsewhere, no lock."""
    try:
        import fcntl
    except ImportError:  # Windows
        return None
    handle = open(out / ".lock", "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise ConfigError(f"{out} is in use by another edgeact train (pid {holder}); give this run its own --out, "
                          "or wait for that one to finish.") from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def _log_handlers(path: Path, quiet: bool, progress: Progress = "epochs") -> list[logging.Handler]:
    log.setLevel(logging.INFO)
    log.propagate = False
    file = logging.FileHandler(path)
    file.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    handlers: list[logging.Handler] = [file]
    if not quiet:
        console = _TqdmHandler()
        if progress == "stages":
            console.addFilter(lambda record: record.name != epoch_log.name)
        handlers.append(console)
    for handler in handlers:
        log.addHandler(handler)
    return handlers


class _TqdmHandler(logging.Handler):
    """Console lines that do not break a progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        tqdm.write(self.format(record), file=sys.stderr)
