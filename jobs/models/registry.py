"""The model registry: a folder with a pointer to the production model and its history.

    <warehouse>/registry/production.json   {"model_version", "model_dir", "promoted_at", ...}
    <warehouse>/registry/history.jsonl      one line per promotion or refusal, append-only

Promotion replaces ``production.json`` atomically (write a temp file, then rename), so a reader
never sees half a pointer.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

from jobs.runtime.errors import PolicyrankError


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
        if not self.pointer.is_file():
            return None
        entry = json.loads(self.pointer.read_text())
        if not (Path(entry["model_dir"]) / "config.json").is_file():
            raise PolicyrankError(
                f"registry {self.pointer} points at {entry['model_dir']}, which has no model; "
                "promote another model or remove the pointer"
            )
        return entry

    def history(self) -> list[dict]:
        if not self.history_file.is_file():
            return []
        return [json.loads(line) for line in self.history_file.read_text().splitlines() if line]

    def record(self, event: dict) -> dict:
        """Append an event (promotion or refusal) to the history."""
        event = {"at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), **event}
        self.root.mkdir(parents=True, exist_ok=True)
        with self.history_file.open("a") as fh:
            fh.write(json.dumps(event, sort_keys=True) + "\n")
        return event

    def promote(
        self, model_version: str, model_dir: str | Path, checks: list[dict], **context
    ) -> dict:
        """Point production at ``model_dir`` and record it (with ``context``, e.g. the run's
        date and id, in the history entry)."""
        entry = {
            "model_version": model_version,
            "model_dir": str(Path(model_dir).resolve()),
            "promoted_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "checks": checks,
        }
        previous = self.pointer.exists() and json.loads(self.pointer.read_text())
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.pointer.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(entry, indent=2))
        os.replace(tmp, self.pointer)
        self.record(
            {
                "event": "promoted",
                "model_version": model_version,
                "model_dir": entry["model_dir"],
                "replaced": previous["model_version"] if previous else None,
                "checks": checks,
                **context,
            }
        )
        return entry
