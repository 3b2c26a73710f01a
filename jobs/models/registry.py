"""The model registry: a folder with a pointer to the production model and its history.

    <warehouse>/registry/production.json   {"model_version", "model_dir", "promoted_at", ...}
    <warehouse>/registry/history.jsonl      one line per promotion or refusal, append-only

Crash safety (a process killed at any point, SIGKILL included):

- the pointer is replaced atomically (temp file, fsync, rename, fsync of the folder): a reader
  sees the old pointer or the new one, never half of one. The rename is the promotion's commit
  point: killed before it, nothing was promoted (a stale ``production.json.tmp`` is overwritten
  by the next promotion);
- the pointer carries everything its history line holds (``promotion_id``, ``replaced``, the
  caller's context), and the line is appended after the rename. Killed in between, the
  promotion is committed and its line missing: :meth:`Registry.history` lists it from the
  pointer, and the next write (``record`` or ``promote``) appends it, so pointer and history
  always agree. Promoting the production model again for the same ``run_date`` (a rerun)
  changes nothing but that repair;
- a line cut off by a crash (no newline at the end) is skipped by ``history`` and removed by
  the next write before it appends. Writers hold ``.lock`` (flock) so the repair and the append
  are one step among concurrent runs.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from jobs.models.publish import replace_file
from jobs.runtime.errors import PolicyrankError
from jobs.runtime.faults import crash_point


class Registry:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    @property
    def pointer(self) -> Path:
        return self.root / "production.json"

    @property
    def history_file(self) -> Path:
        return self.root / "history.jsonl"

    def production(self) -> dict | None:
        """The production entry, or None when nothing was promoted yet."""
        entry = self._pointer()
        if entry is None:
            return None
        if not (Path(entry["model_dir"]) / "config.json").is_file():
            raise PolicyrankError(
                f"registry {self.pointer} points at {entry['model_dir']}, which has no model; "
                "promote another model or remove the pointer"
            )
        return entry

    def history(self) -> list[dict]:
        """Every event, oldest first, with the production promotion even when a crash cut its
        line off (see the module's docstring)."""
        events = self._logged()
        missing = self._unlogged(events)
        return events + [missing] if missing else events

    def record(self, event: dict) -> dict:
        """Append an event (promotion or refusal) to the history."""
        event = {"at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), **event}
        with self._locked():
            self._append(event)
        return event

    def promote(
        self, model_version: str, model_dir: str | Path, checks: list[dict], **context
    ) -> dict:
        """Point production at ``model_dir`` and record it (with ``context``, e.g. the run's
        date and id, in the history entry)."""
        model_dir = str(Path(model_dir).resolve())
        with self._locked():
            self._append()  # a crash's missing line first, so the history stays in order
            previous = self._pointer()
            if (
                previous
                and (previous["model_version"], previous["model_dir"]) == (model_version, model_dir)
                and previous.get("run_date") == context.get("run_date")
            ):
                return previous  # promoted already by this date's earlier (killed) run
            entry = {
                "model_version": model_version,
                "model_dir": model_dir,
                "promoted_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "checks": checks,
                "promotion_id": uuid.uuid4().hex[:12],
                "replaced": previous["model_version"] if previous else None,
                **context,
            }
            replace_file(self.pointer, json.dumps(entry, indent=2), point="promote-pointer")
            crash_point("promote-history")
            self._append()
        return entry

    # ------------------------------------------------------------------ internals

    def _pointer(self) -> dict | None:
        return json.loads(self.pointer.read_text()) if self.pointer.is_file() else None

    def _logged(self) -> list[dict]:
        if not self.history_file.is_file():
            return []
        text = self.history_file.read_text()
        lines = text.split("\n")[:-1]  # the part after the last newline is a torn line, or ""
        return [json.loads(line) for line in lines if line]

    def _unlogged(self, events: list[dict]) -> dict | None:
        """The pointer's promotion as a history event, when its line is missing."""
        entry = self._pointer()
        if not entry or "promotion_id" not in entry:  # none, or from before promotion ids
            return None
        if any(e.get("promotion_id") == entry["promotion_id"] for e in events):
            return None
        fields = {k: v for k, v in entry.items() if k != "promoted_at"}
        return {"at": entry["promoted_at"], "event": "promoted", **fields}

    def _append(self, event: dict | None = None) -> None:
        """Under the lock: drop a torn last line, append the pointer's missing line, then
        ``event``; fsync."""
        lines = [self._unlogged(self._logged()), event]
        text = "".join(json.dumps(e, sort_keys=True) + "\n" for e in lines if e)
        with open(self.history_file, "a+b") as fh:
            fh.seek(0)
            whole = fh.read()
            if whole and not whole.endswith(b"\n"):
                fh.truncate(whole.rfind(b"\n") + 1)  # appends go to the (new) end
            if text:
                fh.write(text.encode())
                fh.flush()
                os.fsync(fh.fileno())

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released by the kernel if this process dies
            yield
