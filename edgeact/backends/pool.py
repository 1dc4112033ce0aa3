"""The state pool: every stream's state in one slot of persistent, runner-owned buffers.

Per state tensor the pool keeps two ``[capacity, ...]`` buffers (ping-pong halves) in the
runner's memory (``Runner.allocate``: numpy, torch tensors, device memory). A stream holds a
slot index; each slot has a parity bit saying which half holds its current state. A step over
some slots hands the runner the current half as ``state_in`` and the other half as
``state_out``, then flips those slots' parity: the next state is written in place and nothing
is allocated or copied per step.

That is exact when the stepped slots are one run of consecutive slots with the same parity
(a single stream always is; streams admitted together and stepped together stay so). Any
other set of slots is gathered into per-thread staging buffers, stepped there and scattered
back: two small copies, still no allocation after the first step of that size.

Slots are zeroed on ``acquire`` and ``reset``, returned on ``release``. The buffers are made
on the first ``acquire`` (a lazy runner is not built before) and grow by doubling
(``max_streams`` bounds them); growth waits for steps in flight, which share a gate.
Steps on disjoint slots may run concurrently (the Predictor serialises each stream's steps);
staging and input buffers are per thread. ``runner.max_batch`` (an engine profile) splits a
step into chunks.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from edgeact.backends.base import Runner
from edgeact.errors import StreamError


class _Gate:
    """Shared for steps, exclusive for growth. ``with gate:`` holds it shared (every step takes
    it: plain methods on a plain lock, not a generator context manager)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._active = 0
        self._exclusive = False
        self._growers = 0  # waiting for exclusive use: only then does a step's exit notify

    def __enter__(self) -> None:
        with self._lock:
            while self._exclusive:
                self._cond.wait()
            self._active += 1

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._active -= 1
            if not self._active and self._growers:  # only growth waits on the count
                self._cond.notify_all()

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            self._growers += 1
            self._cond.wait_for(lambda: not self._exclusive and not self._active)
            self._growers -= 1
            self._exclusive = True
        try:
            yield
        finally:
            with self._cond:
                self._exclusive = False
                self._cond.notify_all()


class StatePool:
    def __init__(self, runner: Runner, *, capacity: int = 4, max_streams: int | None = None):
        if max_streams is not None and (isinstance(max_streams, bool) or not isinstance(max_streams, int)
                                        or max_streams < 1):
            raise StreamError(f"max_streams must be a positive int or None, got {max_streams!r}.")
        self.runner = runner
        self.specs = runner.spec.state
        self.max_streams = max_streams
        self._gate = _Gate()
        self._lock = threading.Lock()  # the free list and growth
        self._local = threading.local()  # staging and input buffers of this thread
        self._generation = 0  # bumped when the buffers move (growth): cached bindings expire
        self._capacity = 0
        self._halves: list[list[Any]] = [[], []]
        self._parity = bytearray()  # per slot: which half holds its current state (0 or 1)
        self._free: list[int] = []
        self._views: dict[tuple, tuple[list[Any], list[Any]]] = {}
        self._first_capacity = min(capacity, max_streams or capacity)  # allocated on the first acquire


    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def in_use(self) -> int:
        return self._capacity - len(self._free)

    # -- slots ------------------------------------------------------------------------------------
    def available(self) -> int | None:
        """How many more streams fit (None: no bound)."""
        return None if self.max_streams is None else self.max_streams - self.in_use

    def acquire(self) -> int:
        """A zeroed slot for a new stream (the pool grows when full, up to ``max_streams``)."""
        with self._lock:
            if not self._free:
                if self.max_streams is not None and self._capacity >= self.max_streams:
                    raise StreamError(f"this Predictor holds at most {self.max_streams} streams (max_streams); "
                                      "close a stream before opening another.")
                target = max(2 * self._capacity, self._first_capacity)
                self._grow(target if self.max_streams is None else min(target, self.max_streams))
            slot = self._free.pop()
        self.zero(slot)
        return slot

    def release(self, slot: int) -> None:
        with self._lock:
            self._free.append(slot)

    def zero(self, slot: int) -> None:
        """Zero one slot's current state (a reset); other slots may be stepping meanwhile."""
        with self._gate:
            for buffer in self._halves[self._parity[slot]]:
                buffer[slot] = 0

    def state(self, slot: int) -> list[Any]:
        """Views of one slot's current state (for tests and debugging)."""
        return [buffer[slot] for buffer in self._halves[self._parity[slot]]]

    def _grow(self, capacity: int) -> None:
        with self._gate.exclusive():
            old = self._capacity
            halves = [[self.runner.allocate(spec, capacity) for spec in self.specs] for _ in range(2)]
            for new_half, old_half in zip(halves, self._halves):
                for new, previous in zip(new_half, old_half):
                    new[:old] = previous
            self._halves = halves
            self._parity += bytearray(capacity - old)
            self._free = list(range(capacity - 1, old - 1, -1)) + self._free  # lowest slots first out
            self._capacity = capacity
            self._generation += 1
            self._views: dict[tuple, tuple[list[Any], list[Any]]] = {}  # slot-run views of these buffers

    # -- stepping ---------------------------------------------------------------------------------
    def input_buffers(self, rows: int) -> dict[str, np.ndarray]:
        """This thread's buffers for ``rows`` streams' data inputs (fill them, then :meth:`step`)."""
        views = getattr(self._local, "input_views", None)
        if views is not None and rows in views:  # the same row counts come again and again
            return views[rows]
        buffers = getattr(self._local, "inputs", None)
        if buffers is None or len(next(iter(buffers.values()), np.empty(0))) < rows:
            size = max(rows, 1)
            buffers = {s.name: np.zeros((size, *s.shape), dtype=s.dtype) for s in self.runner.spec.data_inputs}
            self._local.inputs = buffers
            self._local.inputs_id = getattr(self._local, "inputs_id", 0) + 1
            self._local.input_views = views = {}
        views[rows] = {name: array[:rows] for name, array in buffers.items()}
        return views[rows]

    def step(self, slots: Sequence[int], inputs: dict[str, np.ndarray]) -> np.ndarray:
        """One step of the streams in ``slots`` (inputs batch-first in the same order); their
        next states replace their current ones; returns the logits [len(slots), K]."""
        chunk = self.runner.max_batch or len(slots)
        self.runner.runtime  # noqa: B018 (a lazy runner builds on its first step)
        if len(slots) > chunk:
            return np.concatenate([self.step(slots[i:i + chunk], {n: a[i:i + chunk] for n, a in inputs.items()})
                                   for i in range(0, len(slots), chunk)])
        with self._gate:
            n, first = len(slots), slots[0]
            parity = self._parity[first]
            inputs_key = getattr(self._local, "inputs_id", 0)
            if n == 1 or all(s == first + i and self._parity[s] == parity for i, s in enumerate(slots)):
                run = (self._generation, first, n, parity)
                views = self._views.get(run)
                if views is None:  # the same run of slots steps again and again: keep its views
                    views = self._views[run] = (
                        [buffer[first:first + n] for buffer in self._halves[parity]],
                        [buffer[first:first + n] for buffer in self._halves[1 - parity]])
                logits = self.runner._run(inputs, *views, ("slots", *run, inputs_key))
                for s in slots:
                    self._parity[s] ^= 1
                return logits
            else:
                state_in, state_out = self._staging(n)
                for i, s in enumerate(slots):
                    for staged, buffer in zip(state_in, self._halves[self._parity[s]]):
                        staged[i] = buffer[s]
                key = ("staging", self._local.staging_id, n, inputs_key)
                logits = self.runner._run(inputs, state_in, state_out, key)
                for i, s in enumerate(slots):
                    for staged, buffer in zip(state_out, self._halves[1 - self._parity[s]]):
                        buffer[s] = staged[i]
                    self._parity[s] ^= 1
        return logits

    def _staging(self, rows: int) -> tuple[list[Any], list[Any]]:
        staging = getattr(self._local, "staging", None)
        if staging is None or staging[2] < rows:
            size = max(rows, 4)
            staging = ([self.runner.allocate(s, size) for s in self.specs],
                       [self.runner.allocate(s, size) for s in self.specs], size)
            self._local.staging = staging
            self._local.staging_id = getattr(self._local, "staging_id", 0) + 1
        return [a[:rows] for a in staging[0]], [a[:rows] for a in staging[1]]
