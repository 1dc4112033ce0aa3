"""Build a directory (or a file) next to its destination and move it into place only when complete.

Readers never see a half-written dataset: work happens in a hidden temporary sibling (same
filesystem, so the final rename is atomic), which is deleted on any error or interrupt.
An existing destination is set aside only once the new directory is complete.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from edgeact.errors import DatasetError


@contextmanager
def atomic_directory(out: Path, replace: bool) -> Iterator[Path]:
    """Yield an empty temporary directory that becomes ``out`` when the block succeeds.

    Missing parent directories are created (and removed again if the block fails). An
    existing ``out`` is replaced only if ``replace``; otherwise it must be an empty directory.
    """
    parent = out.parent
    if parent.exists() and not parent.is_dir():
        raise DatasetError(f"Cannot write to {parent}: it is not a directory.")
    missing = []  # ancestors this call creates, deepest first
    p = parent
    while not p.exists():
        missing.append(p)
        p = p.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = _fresh_dir(parent, f".{out.name}.tmp-")
    except OSError as err:
        _remove_empty(missing)
        raise DatasetError(f"Cannot write to {parent}: {err.strerror or err}.") from err
    try:
        yield tmp
        _move_into_place(tmp, out, replace)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        _remove_empty(missing)
        raise


def _fresh_dir(parent: Path, prefix: str) -> Path:
    """Create a new, uniquely named directory; unlike tempfile.mkdtemp it honours the umask."""
    while True:
        path = parent / f"{prefix}{secrets.token_hex(4)}"
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue


def _move_into_place(tmp: Path, out: Path, replace: bool) -> None:
    if not (replace and out.exists()):
        try:
            os.rename(tmp, out)  # atomic; refuses a non-empty directory that appeared meanwhile
        except OSError as err:
            raise DatasetError(f"Cannot move the finished dataset to {out}: {err.strerror or err}.") from err
        return
    old = tmp.with_name(tmp.name.replace(".tmp-", ".old-", 1))
    os.rename(out, old)
    try:
        os.rename(tmp, out)
    except BaseException:
        os.rename(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _remove_empty(dirs: list[Path]) -> None:
    for d in dirs:
        try:
            d.rmdir()
        except OSError:
            return


@contextmanager
def atomic_file(out: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``out`` (same filesystem) that replaces ``out`` when the block
    succeeds; on any error or interrupt it is deleted and ``out`` is untouched."""
    if not out.parent.is_dir():
        raise DatasetError(f"Cannot write {out}: the directory {out.parent} does not exist.")
    tmp = out.with_name(f".{out.name}.tmp-{secrets.token_hex(4)}")
    try:
        yield tmp
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
