"""Progress output for jobs: timestamped lines on stderr. Never pass member or job text here."""

from __future__ import annotations

import datetime as dt
import sys
import uuid


def log(message: str) -> None:
    stamp = dt.datetime.now().strftime("%H:%M:%S")
    print(f"[policyrank {stamp}] {message}", file=sys.stderr, flush=True)


def new_run_id(run_date: dt.date | None = None) -> str:
    prefix = run_date.isoformat() if run_date else "adhoc"
    return f"{prefix}-{uuid.uuid4().hex[:12]}"
