"""Predictor: one ``push(frame)`` per frame, one prediction per push, in constant time.

Each stream (camera, tracked person) owns a slot of the runner's state pool (backends/pool.py):
persistent buffers the step reads and writes in place; nothing accumulates per frame. A call
is validate -> admit -> step -> decide: every input is checked and every timestamp compared
before any stream is created or changed, so a rejected call leaves the streams, and the set of
streams, exactly as they were.

A keypoint model can be given a pose provider (``pose=``, edgeact/pose/, docs/pose.md): it runs on
each frame during validation, so a frame it fails on is rejected like any bad frame, and its
keypoints are mapped to the model's joint layout. Keypoints passed explicitly win over it.

Thread safety: the Predictor may be shared between threads. Pushes on *different* streams run
concurrently; pushes on the same stream are serialised by that stream's lock (their order is
then the order the locks are taken, so one thread per stream is the sensible design).
``push_many`` holds the locks of all its streams.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeact.backends import BACKENDS, Loader, Runner, backend_classes, load_backend
from edgeact.backends.pool import StatePool
from edgeact.errors import InputError, InputTypeError, StreamError
from edgeact.preprocess import check_frame, preprocess_frame, preprocess_keypoints
from edgeact.spec import FRAMES, KEYPOINTS, ModelSpec

if TYPE_CHECKING:
    from edgeact.pose import KeypointLayout, PoseFeed, PoseProvider

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
    timings_ms: dict[str, float] = field(default_factory=dict)  # [pose,] preprocess, inference, postprocess
    keypoints: np.ndarray | None = None  # keypoint models: this frame's keypoint input as the model saw it


class _Stream:
    __slots__ = ("lock", "slot", "closed", "frames_seen", "steps", "probs", "logits", "candidate", "run_length",
                 "decision", "decision_frame", "last_timestamp")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.slot: int | None = None  # None until admitted
        self.closed = False  # closed (or never admitted): a push that waited on its lock looks again
        self.restart()

    def restart(self) -> None:
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
    """One stream's logits [K] -> probabilities [K] float32 (a new array)."""
    # logits[argmax] is max's value (NaN included) at a fifth of a reduce's call cost
    e = np.exp(logits - logits[logits.argmax()])
    e /= np.add.reduce(e)  # the ufunc's reduce: what .sum() calls
    return e if e.dtype == np.float32 else e.astype(np.float32)


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
        model: str | Path | Runner | Loader,
        backend: str = "auto",
        *,
        device: str = "auto",
        policy: DecisionPolicy | None = None,
        threads: int | None = None,
        max_streams: int | None = None,
        preallocate: bool = False,
        pose: PoseProvider | str | None = None,
        keypoint_layout: KeypointLayout | str | None = None,
        **options: Any,
    ) -> None:
        if keypoint_layout is not None and pose is None:
            raise InputError("keypoint_layout= names the model's joints for a pose provider; it needs pose=.")
        if preallocate and max_streams is None:
            raise InputError("preallocate=True sizes the state pool for max_streams streams at the first push; "
                             "give max_streams=N too.")
        if isinstance(model, Runner):
            self._runner = model  # an already loaded runner (or a test double of one)
        elif isinstance(model, Loader):
            self._runner = backend_classes(BACKENDS[model.backend])[1](model)
        elif isinstance(model, (str, Path)):
            self._runner = load_backend(model, backend, device=device, threads=threads, **options)
        else:
            suffixes = sorted({suffix for entry in BACKENDS.values() for suffix in entry.suffixes})
            raise InputTypeError(f"model must be a path to a model file ({', '.join(suffixes)}), a Runner or a Loader, "
                                 f"got {type(model).__name__}.")
        self.policy = policy or DecisionPolicy()
        self.spec: ModelSpec = self._runner.spec
        self._pose: PoseFeed | None = None
        if pose is not None:
            from edgeact.pose import PoseFeed

            try:
                self._pose = PoseFeed.attach(pose, self.spec, keypoint_layout)
            except BaseException:
                if isinstance(model, (str, Path)):  # loaded here: nobody else will close it
                    self._runner.close()
                raise
        # preallocate: every slot at the first push, so streams join and leave without reallocation
        self._pool = StatePool(self._runner, max_streams=max_streams,
                               **({"capacity": max_streams} if preallocate else {}))
        self._streams: dict[Hashable, _Stream] = {}
        self._streams_lock = threading.Lock()
        self._closed = False

    # -- properties ----------------------------------------------------------------------------
    @property
    def classes(self) -> tuple[str, ...]:
        return self.spec.classes

    @property
    def backend(self) -> str:
        return self._runner.name

    @property
    def runner(self) -> Runner:
        """The runner that steps the model (its stateless ``step`` runs the bare runtime)."""
        return self._runner

    @property
    def max_streams(self) -> int | None:
        return self._pool.max_streams

    @property
    def streams(self) -> tuple[Hashable, ...]:
        """The open streams (admitted by a push, not closed)."""
        with self._streams_lock:
            return tuple(self._known())

    @property
    def pose(self) -> PoseProvider | None:
        """The pose provider that finds the keypoints of each frame, if any."""
        return self._pose.provider if self._pose is not None else None

    def describe(self) -> dict[str, Any]:
        pose = {} if self._pose is None else {"pose": self._pose.describe()}
        return {**self._runner.describe(), "spec": self.spec.to_dict(), "max_streams": self._pool.max_streams, **pose}

    # -- streams -------------------------------------------------------------------------------
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
            if s.slot is not None and not s.closed:
                self._pool.zero(s.slot)
                s.restart()

    def close_stream(self, stream: Hashable) -> None:
        """Forget ``stream`` and free its slot."""
        self._check_open()
        with self._streams_lock:
            s = self._streams.get(stream)
            if s is None or s.slot is None:  # unknown, or a push admitting it has not finished
                raise StreamError(f"unknown stream {stream!r}; known streams: {self._known()}.")
            del self._streams[stream]
        with s.lock:  # after any push in flight on it
            self._retire(s)

    def _known(self) -> list[Hashable]:
        return [k for k, s in self._streams.items() if s.slot is not None]

    def _retire(self, s: _Stream) -> None:
        """Under ``s.lock``: mark it closed and give its slot back."""
        s.closed = True
        if s.slot is not None:
            self._pool.release(s.slot)
            s.slot = None

    def _lock_one(self, key: Hashable) -> _Stream:
        """_lock_streams for one key."""
        while True:
            with self._streams_lock:
                s = self._streams.get(key)
                if s is None:
                    s = self._streams[key] = _Stream()
            s.lock.acquire()
            if not s.closed:
                return s
            s.lock.release()  # closed while we waited: look the key up again

    def _lock_streams(self, keys: list[Hashable]) -> list[_Stream]:
        """The streams of ``keys``, locked; unknown ones are registered unadmitted (no slot yet)."""
        while True:
            with self._streams_lock:
                streams = []
                for key in keys:
                    s = self._streams.get(key)
                    if s is None:
                        s = self._streams[key] = _Stream()
                    streams.append(s)
            for s in streams if len(streams) == 1 else sorted(streams, key=id):  # a fixed order: no deadlock
                s.lock.acquire()
            if not any(s.closed for s in streams):
                return streams
            self._unlock(streams)  # one was closed while we waited: look the keys up again

    @staticmethod
    def _unlock(streams: list[_Stream]) -> None:
        for s in streams:
            s.lock.release()

    def _forget(self, keys: list[Hashable], streams: list[_Stream]) -> None:
        """Under their locks: undo the admission of streams a rejected call admitted (or would
        have), so the set of streams is as it was; a push waiting on one of them looks again."""
        with self._streams_lock:
            for key, s in zip(keys, streams):
                if self._streams.get(key) is s:
                    del self._streams[key]
                self._retire(s)

    # -- pushing frames --------------------------------------------------------------------------
    def push(
        self,
        frame: np.ndarray | None = None,
        *,
        keypoints: np.ndarray | None = None,
        timestamp: float | None = None,
        stream: Hashable = DEFAULT_STREAM,
    ) -> Prediction:
        """Feed one frame (and/or keypoints) of ``stream``; returns the prediction after it.

        With a pose provider, ``frame`` alone feeds a keypoint model; ``keypoints`` given
        explicitly (in the model's layout) are used instead and the provider is not run."""
        hash(stream)  # an unhashable stream fails first, as the mapping push_many takes would
        t0 = time.perf_counter()
        self._check_open()
        return self._push_one(stream, self._parse(stream, frame, keypoints, timestamp), t0)

    def push_many(self, items: Mapping[Hashable, Any]) -> dict[Hashable, Prediction]:
        """Feed one frame to each of several streams; the due streams run as one batched step
        (split to the runner's ``max_batch`` where an engine profile bounds it).

        ``items`` maps stream -> frame, or stream -> {"frame":..., "keypoints":..., "timestamp":...}.
        Validate -> admit -> step -> decide: one bad frame, a timestamp going back, or more
        streams than ``max_streams`` rejects the call and leaves every stream as it was.
        """
        if not isinstance(items, Mapping) or not items:
            raise InputError("push_many needs a non-empty mapping of stream -> frame.")
        t0 = time.perf_counter()
        self._check_open()
        keys = list(items)
        return self._push(keys, [self._parse_item(k, items[k]) for k in keys], t0)

    def _push(self, keys: list[Hashable], parsed: list[tuple], t0: float) -> dict[Hashable, Prediction]:
        """Admit -> step -> decide, for items already validated (before any stream is touched)."""
        per_stream = 1e3 / len(keys)  # ms per stream of each stage's seconds
        pose_ms = sum(p[3] for p in parsed) * per_stream if self._pose is not None else 0.0
        streams = self._lock_streams(keys)
        new = [i for i, s in enumerate(streams) if s.slot is None]  # to admit (created by us or a waiting call)
        try:
            try:
                for key, s, (_, _, ts, _) in zip(keys, streams, parsed):
                    self._check_timestamp(key, s, ts)
                self._admit([streams[i] for i in new])
                stride = self.spec.stride
                due = [i for i, s in enumerate(streams) if s.frames_seen % stride == 0]
                if len(due) > 1:  # slot order: consecutive slots step in place
                    due.sort(key=lambda i: streams[i].slot)
                inputs = self._pool.input_buffers(len(due))
                for row, i in enumerate(due):
                    self._fill(inputs, row, parsed[i][0], parsed[i][1])
                t1 = time.perf_counter()
                logits = self._pool.step([streams[i].slot for i in due], inputs) if due else None
                t2 = time.perf_counter()
            except BaseException:
                self._forget([keys[i] for i in new], [streams[i] for i in new])
                raise
            row_of = {i: row for row, i in enumerate(due)}
            out = {key: self._advance(key, s, logits[row_of[i]] if i in row_of else None, parsed[i][2], parsed[i][1])
                   for i, (key, s) in enumerate(zip(keys, streams))}  # decide
            t3 = time.perf_counter()
        finally:
            self._unlock(streams)
        timings = self._timings(t0, t1, t2, t3, per_stream, pose_ms)
        for pred in out.values():
            pred.timings_ms.update(timings)
        return out

    def _push_one(self, key: Hashable, parsed: tuple, t0: float) -> Prediction:
        """_push for a single stream (push()): the same steps, without the lists a batch needs."""
        frame, keypoints, ts, pose_s = parsed
        s = self._lock_one(key)
        new = s.slot is None
        try:
            try:
                self._check_timestamp(key, s, ts)
                if new:
                    self._admit([s])
                logits = None
                if s.frames_seen % self.spec.stride == 0:
                    inputs = self._pool.input_buffers(1)
                    self._fill(inputs, 0, frame, keypoints)
                    t1 = time.perf_counter()
                    logits = self._pool.step((s.slot,), inputs)[0]
                else:
                    t1 = time.perf_counter()
                t2 = time.perf_counter()
            except BaseException:
                if new:
                    self._forget([key], [s])
                raise
            pred = self._advance(key, s, logits, ts, keypoints)
            t3 = time.perf_counter()
        finally:
            s.lock.release()
        pred.timings_ms.update(self._timings(t0, t1, t2, t3, 1e3, pose_s * 1e3 if self._pose is not None else 0.0))
        return pred

    def _check_timestamp(self, key: Hashable, s: _Stream, ts: float | None) -> None:
        if ts is not None and s.last_timestamp is not None and ts <= s.last_timestamp:
            raise InputError(f"timestamp must increase within stream {key!r}: got {ts} after {s.last_timestamp}.")

    def _admit(self, streams: list[_Stream]) -> None:
        """Give each of ``streams`` (not admitted yet) a slot, or none of them if they do not fit."""
        if not streams:
            return
        available = self._pool.available()
        if available is not None and len(streams) > available:
            raise StreamError(
                f"this Predictor holds at most {self._pool.max_streams} streams (max_streams) and "
                f"{self._pool.in_use} are open; {len(streams)} new ones do not fit. Close a stream first."
            )
        for s in streams:
            s.slot = self._pool.acquire()

    def _fill(self, inputs: dict[str, np.ndarray], row: int, frame: Any, keypoints: Any) -> None:
        """Row ``row`` of the step's data inputs from one validated item."""
        if FRAMES in inputs:
            # raw_size: the graph preprocesses (edgeact.preprocess_graph); the frame goes in as it is
            inputs[FRAMES][row] = frame if self.spec.frames.raw_size else preprocess_frame(frame, self.spec.frames)
        if KEYPOINTS in inputs:
            inputs[KEYPOINTS][row] = keypoints  # already preprocessed by _parse

    def _advance(self, key: Hashable, s: _Stream, logits: np.ndarray | None, ts: float | None,
                 keypoints: np.ndarray | None) -> Prediction:
        """After a push of ``s``: one more frame seen, a step taken when ``logits`` came, and the
        prediction."""
        s.frames_seen += 1
        if ts is not None:
            s.last_timestamp = ts
        if logits is not None:
            s.steps += 1
            s.logits = logits
            s.probs = _softmax(logits)
            self._update_decision(s)
        return self._prediction(key, s, stepped=logits is not None, timestamp=ts, keypoints=keypoints)

    def _timings(self, t0: float, t1: float, t2: float, t3: float, per_stream: float, pose_ms: float) -> dict:
        """Each stage's ms per stream; the pose provider ran within t0..t1."""
        timings = {
            "preprocess": (t1 - t0) * per_stream - pose_ms,
            "inference": (t2 - t1) * per_stream,
            "postprocess": (t3 - t2) * per_stream,
        }
        return timings if self._pose is None else {"pose": pose_ms, **timings}

    def _parse_item(self, key: Hashable, item: Any) -> tuple[np.ndarray | None, np.ndarray | None, float | None, float]:
        """(frame, preprocessed keypoints, timestamp, seconds the pose provider took)."""
        if isinstance(item, Mapping):
            unknown = set(item) - {"frame", "keypoints", "timestamp"}
            if unknown:
                raise InputError(
                    f"stream {key!r}: unknown item keys {sorted(unknown)}; expected frame, keypoints, timestamp."
                )
            return self._parse(key, item.get("frame"), item.get("keypoints"), item.get("timestamp"))
        return self._parse(key, item, None, None)

    def _parse(self, key: Hashable, frame: Any, keypoints: Any, timestamp: Any
               ) -> tuple[np.ndarray | None, np.ndarray | None, float | None, float]:
        """(frame, preprocessed keypoints, timestamp, seconds the pose provider took)."""
        if self.spec.frames is not None or frame is not None:
            check_frame(frame)  # a keypoint model does not use it, but a malformed one is still a bug
        raw = self.spec.frames.raw_size if self.spec.frames is not None else None
        if raw is not None and frame.shape[:2] != raw:
            raise InputError(
                f"this model preprocesses frames inside its graph and takes BGR uint8 frames of shape "
                f"({raw[0]}, {raw[1]}, 3) ({raw[1]}x{raw[0]}, fixed at export), got shape {frame.shape}; resize on "
                f"the camera side or export the model again with --frame-input {frame.shape[1]}x{frame.shape[0]}."
            )
        pose_s = 0.0
        if self.spec.keypoints is not None:
            if keypoints is None and self._pose is not None:
                started = time.perf_counter()
                keypoints = self._pose(frame)  # frame checked above
                pose_s = time.perf_counter() - started
            if keypoints is None:
                raise InputError(
                    f"this model takes keypoints of shape (people, {self.spec.keypoints.joints}, 2 or 3); "
                    "pass keypoints=... with each frame."
                )
            keypoints = preprocess_keypoints(keypoints, self.spec.keypoints)  # validates now
        if isinstance(timestamp, np.generic):  # numpy scalars, as arrays of timestamps give them
            timestamp = int(timestamp) if isinstance(timestamp, np.integer) else (
                float(timestamp) if isinstance(timestamp, np.floating) else timestamp)
        if timestamp is not None and not (isinstance(timestamp, (int, float)) and np.isfinite(timestamp)):
            raise InputError(f"timestamp must be a finite number, got {timestamp!r}.")
        return frame, keypoints, timestamp, pose_s

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

    def _prediction(self, key: Hashable, s: _Stream, *, stepped: bool, timestamp: float | None,
                    keypoints: np.ndarray | None) -> Prediction:
        index = int(s.probs.argmax())
        decided = s.decision is not None
        classes = self.spec.classes
        # Every field set at once: the frozen dataclass's __init__ sets them one object.__setattr__
        # at a time, ~1.3 us a push (tests/test_predictor.py checks that each field is here).
        prediction = object.__new__(Prediction)
        prediction.__dict__.update(
            label=classes[index],
            index=index,
            score=float(s.probs[index]),
            probs=s.probs,
            logits=s.logits,
            frames_seen=s.frames_seen,
            steps=s.steps,
            stepped=stepped,
            decided=decided,
            decision_label=classes[s.decision] if decided else None,
            decision_index=s.decision,
            decision_frame=s.decision_frame,
            stream=key,
            timestamp=timestamp,
            timings_ms={},
            keypoints=keypoints,
        )
        return prediction

    # -- lifetime ------------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise InputError("this Predictor is closed.")

    def close(self) -> None:
        """Release the runner and every stream; calling it again does nothing."""
        if not self._closed:
            self._closed = True
            with self._streams_lock:
                self._streams.clear()
            self._runner.close()
            if self._pose is not None:
                self._pose.close()

    def __enter__(self) -> Predictor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Predictor(backend={self.backend!r}, classes={len(self.classes)}, streams={len(self._known())})"
