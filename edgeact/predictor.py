"""Predictor: one ``push(frame)`` per frame, one prediction per push, in constant time.

Each stream (camera, tracked person) has its own state, owned by the backend and swapped
between steps; nothing accumulates per frame. Thread safety: the Predictor may be shared
between threads. Pushes on *different* streams run concurrently; pushes on the same stream are
serialised by that stream's lock (their order is then the order the locks are taken, so one
thread per stream is the sensible design). ``push_many`` holds the locks of all its streams.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeact.backends import Backend, load_backend
from edgeact.errors import InputError, InputTypeError, StreamError
from edgeact.preprocess import check_frame, preprocess_frame, preprocess_keypoints
from edgeact.spec import FRAMES, KEYPOINTS, ModelSpec

DEFAULT_STREAM = "default"


@dataclass(frozen=True)
class DecisionPolicy:
    """When a stream's prediction counts as decided (early recognition).

    Decided when the top class has probability >= ``threshold``, leads the runner-up by
    >= ``margin``, after at least ``min_frames`` frames, and the same class has met both for
    ``consecutive`` steps in a row (hysteresis). With ``latch`` the decision then holds until
    ``reset()``; without it, the decision is re-evaluated every step.
    """

    threshold: float = 0.8
    margin: float = 0.0
    consecutive: int = 3
    min_frames: int = 1
    latch: bool = True

    def __post_init__(self) -> None:
        if not 0.0 <= self.threshold <= 1.0:
            raise InputError(f"DecisionPolicy.threshold must be in [0, 1], got {self.threshold}.")
        if not 0.0 <= self.margin <= 1.0:
            raise InputError(f"DecisionPolicy.margin must be in [0, 1], got {self.margin}.")
        if self.consecutive < 1 or self.min_frames < 1:
            raise InputError(
                f"DecisionPolicy.consecutive and min_frames must be >= 1, got {self.consecutive} and {self.min_frames}."
            )


@dataclass(frozen=True)
class Prediction:
    label: str  # current top-1 class name
    index: int  # current top-1 class index
    score: float  # its probability
    probs: np.ndarray  # [num_classes] float32
    logits: np.ndarray  # [num_classes] float32, as the model output them
    frames_seen: int  # frames pushed to this stream since its start/reset, this one included
    steps: int  # model steps run (frames_seen / stride, rounded up)
    stepped: bool  # False: this frame fell between strided samples; the prediction is carried over
    decided: bool
    decision_label: str | None  # the decided class, once decided
    decision_index: int | None
    decision_frame: int | None  # frames_seen at the moment of decision
    stream: Hashable
    timestamp: float | None
    timings_ms: dict[str, float] = field(default_factory=dict)  # preprocess, inference, postprocess


class _Stream:
    __slots__ = ("lock", "state", "frames_seen", "steps", "probs", "logits", "candidate", "run_length",
                 "decision", "decision_frame", "last_timestamp")

    def __init__(self, state: list) -> None:
        self.lock = threading.Lock()
        self.restart(state)

    def restart(self, state: list) -> None:
        self.state = state
        self.frames_seen = 0
        self.steps = 0
        self.probs: np.ndarray | None = None
        self.logits: np.ndarray | None = None
        self.candidate = -1
        self.run_length = 0
        self.decision: int | None = None
        self.decision_frame: int | None = None
        self.last_timestamp: float | None = None


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


class Predictor:
    """Streaming action prediction from a ``.onnx``, ``.pt`` or ``.engine`` model.

    >>> with Predictor("model.onnx") as p:             # doctest: +SKIP
    ...     for frame in camera:
    ...         pred = p.push(frame)
    ...         if pred.decided:
    ...             react(pred.decision_label)
    """

    def __init__(
        self,
        model: str | Path | Backend,
        backend: str = "auto",
        *,
        device: str = "auto",
        policy: DecisionPolicy | None = None,
        threads: int | None = None,
        **options: Any,
    ) -> None:
        if isinstance(model, Backend):
            self._backend = model  # an already loaded backend (or a test double of one)
        elif isinstance(model, (str, Path)):
            self._backend = load_backend(model, backend, device=device, threads=threads, **options)
        else:
            raise InputTypeError(
                f"model must be a path to a .onnx, .pt or .engine file or a loaded Backend, got {type(model).__name__}."
            )
        self.policy = policy or DecisionPolicy()
        self.spec: ModelSpec = self._backend.spec
        self._streams: dict[Hashable, _Stream] = {}
        self._streams_lock = threading.Lock()
        self._closed = False

    # -- properties ----------------------------------------------------------------------------
    @property
    def classes(self) -> tuple[str, ...]:
        return self.spec.classes

    @property
    def backend(self) -> str:
        return self._backend.name

    @property
    def streams(self) -> tuple[Hashable, ...]:
        with self._streams_lock:
            return tuple(self._streams)

    def describe(self) -> dict[str, Any]:
        return {**self._backend.describe(), "spec": self.spec.to_dict()}

    # -- streams -------------------------------------------------------------------------------
    def _stream(self, key: Hashable, *, create: bool) -> _Stream:
        self._check_open()
        with self._streams_lock:
            stream = self._streams.get(key)
            if stream is None:
                if not create:
                    raise StreamError(f"unknown stream {key!r}; known streams: {list(self._streams)}.")
                stream = self._streams[key] = _Stream(self._backend.init_state(1))
            return stream

    def reset(self, stream: Hashable = DEFAULT_STREAM) -> None:
        """Start ``stream`` afresh (zero state, no frames seen, no decision).

        A stream that has seen no frame yet is already fresh: resetting it does nothing (robot
        code resets at the start of every action, before its first push)."""
        self._check_open()
        with self._streams_lock:
            s = self._streams.get(stream)
        if s is None:
            return
        with s.lock:
            s.restart(self._backend.init_state(1))

    def close_stream(self, stream: Hashable) -> None:
        """Forget ``stream`` and free its state."""
        self._check_open()
        with self._streams_lock:
            if stream not in self._streams:
                raise StreamError(f"unknown stream {stream!r}; known streams: {list(self._streams)}.")
            del self._streams[stream]

    # -- pushing frames --------------------------------------------------------------------------
    def push(
        self,
        frame: np.ndarray | None = None,
        *,
        keypoints: np.ndarray | None = None,
        timestamp: float | None = None,
        stream: Hashable = DEFAULT_STREAM,
    ) -> Prediction:
        """Feed one frame (and/or keypoints) of ``stream``; returns the prediction after it."""
        return self.push_many({stream: {"frame": frame, "keypoints": keypoints, "timestamp": timestamp}})[stream]

    def push_many(self, items: Mapping[Hashable, Any]) -> dict[Hashable, Prediction]:
        """Feed one frame to each of several streams; the due streams run as one batched step.

        ``items`` maps stream -> frame, or stream -> {"frame":..., "keypoints":..., "timestamp":...}.
        Every input is validated before any stream changes: one bad frame rejects the call and
        leaves all streams as they were.
        """
        if not isinstance(items, Mapping) or not items:
            raise InputError("push_many needs a non-empty mapping of stream -> frame.")
        t0 = time.perf_counter()
        self._check_open()
        keys = list(items)
        parsed = [self._parse_item(k, items[k]) for k in keys]  # before any stream is touched
        streams = [self._stream(k, create=True) for k in keys]
        for s in sorted(streams, key=id):  # a fixed lock order: no deadlock between calls
            s.lock.acquire()
        try:
            for key, s, (_, _, ts) in zip(keys, streams, parsed):
                if ts is not None and s.last_timestamp is not None and ts <= s.last_timestamp:
                    raise InputError(
                        f"timestamp must increase within stream {key!r}: got {ts} after {s.last_timestamp}."
                    )
            due = [i for i, s in enumerate(streams) if s.frames_seen % self.spec.stride == 0]
            inputs = {name: [] for name in self._data_inputs()}
            for i in due:
                frame, keypoints, _ = parsed[i]
                if frame is not None and FRAMES in inputs:
                    inputs[FRAMES].append(preprocess_frame(frame, self.spec.frames))
                if KEYPOINTS in inputs:
                    inputs[KEYPOINTS].append(keypoints)  # already preprocessed by _parse_item
            t1 = time.perf_counter()
            if due:
                batch = {name: np.stack(arrays) for name, arrays in inputs.items()}
                state = self._backend.stack_states([streams[i].state for i in due])
                logits, next_state = self._backend.step(batch, state)
                split = self._backend.split_state(next_state, [1] * len(due))
            t2 = time.perf_counter()
            out: dict[Hashable, Prediction] = {}
            due_pos = {i: n for n, i in enumerate(due)}
            for i, (key, s) in enumerate(zip(keys, streams)):
                s.frames_seen += 1
                s.last_timestamp = parsed[i][2] if parsed[i][2] is not None else s.last_timestamp
                if i in due_pos:
                    n = due_pos[i]
                    s.state = split[n]
                    s.steps += 1
                    s.logits = logits[n]
                    s.probs = _softmax(s.logits)
                    self._update_decision(s)
                out[key] = self._prediction(key, s, stepped=i in due_pos, timestamp=parsed[i][2])
            t3 = time.perf_counter()
        finally:
            for s in streams:
                s.lock.release()
        timings = {
            "preprocess": (t1 - t0) * 1e3 / len(keys),
            "inference": (t2 - t1) * 1e3 / len(keys),
            "postprocess": (t3 - t2) * 1e3 / len(keys),
        }
        for pred in out.values():
            pred.timings_ms.update(timings)
        return out

    def _data_inputs(self) -> list[str]:
        return [n for n in (FRAMES, KEYPOINTS) if (self.spec.frames if n == FRAMES else self.spec.keypoints)]

    def _parse_item(self, key: Hashable, item: Any) -> tuple[np.ndarray | None, np.ndarray | None, float | None]:
        if isinstance(item, Mapping):
            unknown = set(item) - {"frame", "keypoints", "timestamp"}
            if unknown:
                raise InputError(
                    f"stream {key!r}: unknown item keys {sorted(unknown)}; expected frame, keypoints, timestamp."
                )
            frame, keypoints, timestamp = item.get("frame"), item.get("keypoints"), item.get("timestamp")
        else:
            frame, keypoints, timestamp = item, None, None
        if self.spec.frames is not None:
            check_frame(frame)
        elif frame is not None:
            check_frame(frame)  # not used by a keypoint model, but a malformed one is still a bug
        if self.spec.keypoints is not None:
            if keypoints is None:
                raise InputError(
                    f"this model takes keypoints of shape (people, {self.spec.keypoints.joints}, 2 or 3); "
                    "pass keypoints=... with each frame."
                )
            keypoints = preprocess_keypoints(keypoints, self.spec.keypoints)  # validates now
        if timestamp is not None and not (isinstance(timestamp, (int, float)) and np.isfinite(timestamp)):
            raise InputError(f"timestamp must be a finite number, got {timestamp!r}.")
        return frame, keypoints, timestamp

    def _update_decision(self, s: _Stream) -> None:
        p = self.policy
        if s.decision is not None and p.latch:
            return
        order = np.argsort(s.probs)[::-1]
        top = int(order[0])
        runner_up = float(s.probs[order[1]]) if len(order) > 1 else 0.0
        confident = s.probs[top] >= p.threshold and s.probs[top] - runner_up >= p.margin
        s.run_length = s.run_length + 1 if confident and top == s.candidate else int(confident)
        s.candidate = top if confident else -1
        if confident and s.run_length >= p.consecutive and s.frames_seen >= p.min_frames:
            if s.decision != top:
                s.decision, s.decision_frame = top, s.frames_seen
        elif not p.latch:
            s.decision = s.decision_frame = None

    def _prediction(self, key: Hashable, s: _Stream, *, stepped: bool, timestamp: float | None) -> Prediction:
        index = int(np.argmax(s.probs))
        decided = s.decision is not None
        return Prediction(
            label=self.classes[index],
            index=index,
            score=float(s.probs[index]),
            probs=s.probs,
            logits=s.logits,
            frames_seen=s.frames_seen,
            steps=s.steps,
            stepped=stepped,
            decided=decided,
            decision_label=self.classes[s.decision] if decided else None,
            decision_index=s.decision,
            decision_frame=s.decision_frame,
            stream=key,
            timestamp=timestamp,
        )

    # -- lifetime ------------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise InputError("this Predictor is closed.")

    def close(self) -> None:
        """Release the backend and every stream; calling it again does nothing."""
        if not self._closed:
            self._closed = True
            self._streams.clear()
            self._backend.close()

    def __enter__(self) -> Predictor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Predictor(backend={self.backend!r}, classes={len(self.classes)}, streams={len(self._streams)})"
