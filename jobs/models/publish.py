"""Make a write visible in one rename, so a process killed at any point leaves the old state.

A model is saved into ``<root>/.staging/<run>-<pid>`` (:func:`staging_folder`), then
:func:`publish` writes its card and renames the folder to ``<root>/<version>``: a version folder
is complete or absent. Staging sits under ``root`` (the same file system, so the rename is
atomic) one level down, where no lookup of ``<root>/*/policyrank_model.json`` sees it. Each
staging folder's owner holds an flock on ``<run>-<pid>.lock`` beside it; the kernel releases it
when the owner dies, and the next :func:`staging_folder` removes every folder whose lock is free.

Small files (a pointer, a list) are replaced whole by :func:`replace_file`.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from pathlib import Path
from typing import IO

from jobs.models.cards import CARD, ModelCard
from jobs.runtime.faults import crash_point

STAGING = ".staging"
_HELD: dict[Path, IO] = {}  # staging folder -> its open, locked lock file


def fsync_dir(folder: Path) -> None:
    """Make the renames and new names in ``folder`` durable (a power cut, not only a kill)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_file(path: Path, text: str, *, point: str | None = None) -> None:
    """Write ``text`` to ``path`` atomically: a temp file beside it, fsync, then rename over.
    A kill leaves the old file (and maybe a stale temp file, overwritten next time). Callers
    that may run concurrently serialize with a lock: the temp name is fixed."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    if point:
        crash_point(point)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def _sweep(area: Path) -> None:
    """Remove the staging folders of runs that died (their lock is free)."""
    for lock_path in area.glob("*.lock"):
        with open(lock_path, "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live run's
            shutil.rmtree(area / lock_path.stem, ignore_errors=True)
            lock_path.unlink(missing_ok=True)


def staging_folder(root: str | Path, run_id: str) -> Path:
    """A new, empty folder to save a model into before :func:`publish`; held by this process."""
    area = Path(root) / STAGING
    area.mkdir(parents=True, exist_ok=True)
    _sweep(area)
    name = f"{run_id}-{os.getpid()}"
    lock_path = area / f"{name}.lock"
    while True:
        lock = open(lock_path, "a")  # noqa: SIM115 -- held until publish or process end
        fcntl.flock(lock, fcntl.LOCK_EX)
        # a sweeper that took the lock first unlinked the file: lock a fresh one
        if lock_path.exists() and os.stat(lock_path).st_ino == os.fstat(lock.fileno()).st_ino:
            break
        lock.close()
    folder = area / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    _HELD[folder] = lock
    return folder


def publish(staging: Path, card: ModelCard) -> Path:
    """Write ``card`` into ``staging`` and rename it to ``<root>/<version>``; when that version
    exists already (same content, same version) discard ``staging``. Returns the version folder.
    """
    root = staging.parent.parent
    dest = root / card.model_version
    card.write(staging)
    for path in staging.iterdir():  # the files reach the disk before their name does
        if path.is_file():
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())
    crash_point("student-publish")
    try:
        if dest.exists():
            raise FileExistsError(dest)
        staging.rename(dest)  # an existing non-empty dest fails here, never merges
    except OSError:
        if not (dest / CARD).is_file():
            raise
        shutil.rmtree(staging)  # another run published the same version first
    fsync_dir(root)
    if lock := _HELD.pop(staging, None):
        (staging.parent / f"{staging.name}.lock").unlink(missing_ok=True)
        lock.close()
    return dest
