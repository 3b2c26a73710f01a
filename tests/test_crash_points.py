"""Driver-side write points survive SIGKILL (``POLICYRANK_FAULT=kill:<point>``): the killed
write leaves the previous good state, and a rerun gives what a clean run gives.

Each kill is a real one, of a plain Python child that calls the write point directly (no Spark:
these writes are plain files); the torn history line is an in-process fault (a SIGKILL cannot
cut a small write in two, a power cut can). The catalog's kill is in tests/test_catalog.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from jobs.config.settings import load_settings
from jobs.models.cards import ModelCard
from jobs.models.publish import STAGING, publish, staging_folder
from jobs.models.registry import Registry
from jobs.models.roles import latest_student

ROOT = Path(__file__).resolve().parents[1]


def _killed(point: str, code: str, *args: object) -> None:
    """Run ``code`` in a child armed to die at ``point``; it must die there, by SIGKILL."""
    env = {**os.environ, "POLICYRANK_FAULT": f"kill:{point}"}
    child = subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr[-3000:]
    assert f"SIGKILL at {point}" in child.stderr


# ---------------------------------------------------------------- registry

CHECKS = [{"check": "ndcg", "value": 0.5, "threshold": 0.4, "passed": True}]
PROMOTE_M2 = (
    "import json, sys; from jobs.models.registry import Registry; "
    "Registry(sys.argv[1]).promote('m2', sys.argv[2], json.loads(sys.argv[3]), "
    "run_id='r2', run_date='2026-11-26')"
)


def _registry(root: Path, models: Path) -> Registry:
    """A registry with a refusal and m1 in production (the previous good state)."""
    for name in ("m1", "m2"):
        (models / name).mkdir(parents=True, exist_ok=True)
        (models / name / "config.json").write_text("{}")
    registry = Registry(root)
    registry.record({"event": "refused", "model_version": "m0", "run_date": "2026-11-25"})
    registry.promote("m1", models / "m1", CHECKS, run_id="r1", run_date="2026-11-25")
    return registry


def _promote_m2(registry: Registry, models: Path) -> None:
    registry.promote("m2", models / "m2", CHECKS, run_id="r2", run_date="2026-11-26")


def _state(registry: Registry) -> tuple[dict, list[dict]]:
    """Pointer and history as written on disk, without the times and ids a rerun changes."""
    varying = ("at", "promoted_at", "promotion_id")

    def plain(entry: dict) -> dict:
        return {k: v for k, v in entry.items() if k not in varying}

    lines = registry.history_file.read_text().splitlines()
    pointer = json.loads(registry.pointer.read_text())
    return plain(pointer), [plain(json.loads(line)) for line in lines]


def test_promote_killed_before_the_pointer_swap_changes_nothing(tmp_path):
    models = tmp_path / "models"
    registry, clean = _registry(tmp_path / "killed", models), _registry(tmp_path / "clean", models)
    pointer, history = registry.pointer.read_bytes(), registry.history_file.read_bytes()

    _killed("promote-pointer", PROMOTE_M2, registry.root, models / "m2", json.dumps(CHECKS))
    assert registry.pointer.read_bytes() == pointer  # m1 still, whole
    assert registry.history_file.read_bytes() == history
    assert registry.production()["model_version"] == "m1"
    assert _state(registry) == _state(clean)

    _promote_m2(registry, models)  # the rerun
    _promote_m2(clean, models)
    assert _state(registry) == _state(clean)
    assert registry.production()["model_version"] == "m2"
    assert not list(registry.root.glob("*.tmp"))


def test_promote_killed_before_its_history_line_is_repaired_by_the_rerun(tmp_path):
    models = tmp_path / "models"
    registry, clean = _registry(tmp_path / "killed", models), _registry(tmp_path / "clean", models)
    before = registry.history()

    _killed("promote-history", PROMOTE_M2, registry.root, models / "m2", json.dumps(CHECKS))
    # The swap is the commit point: m2 is production, and the history says so, from the pointer.
    assert registry.production()["model_version"] == "m2"
    history = registry.history()
    assert history[:-1] == before
    assert history[-1]["event"] == "promoted" and history[-1]["model_version"] == "m2"
    assert history[-1]["replaced"] == "m1" and history[-1]["run_date"] == "2026-11-26"

    _promote_m2(registry, models)  # the rerun writes the missing line, promotes nothing twice
    _promote_m2(clean, models)
    assert _state(registry) == _state(clean)
    assert [e["event"] for e in registry.history()] == ["refused", "promoted", "promoted"]


def test_a_torn_history_line_is_skipped_then_cut_by_the_next_write(tmp_path):
    models = tmp_path / "models"
    registry, clean = _registry(tmp_path / "torn", models), _registry(tmp_path / "clean", models)
    before = registry.history()
    with registry.history_file.open("a") as fh:  # a line a crash cut off: no newline
        fh.write('{"at": "2026-11-26T10:00:00+00:00", "event": "refu')

    assert registry.history() == before
    for r in (registry, clean):
        r.record({"event": "refused", "model_version": "m3", "run_date": "2026-11-26"})
    assert registry.history() == before + registry.history()[-1:]
    assert _state(registry) == _state(clean)


# ---------------------------------------------------------------- student save

PUBLISH = (
    "import shutil, sys; from pathlib import Path; "
    "from jobs.models.cards import ModelCard; "
    "from jobs.models.publish import publish, staging_folder; "
    "staging = staging_folder(sys.argv[1], 'run-1'); "
    "[shutil.copy(f, staging) for f in Path(sys.argv[2]).iterdir()]; "
    "publish(staging, ModelCard(sys.argv[3], role='student', base='tiny', trained=True))"
)


def _publish(root: Path, files: Path, version: str, run_id: str) -> Path:
    staging = staging_folder(root, run_id)
    for f in files.iterdir():
        (staging / f.name).write_bytes(f.read_bytes())
    return publish(staging, ModelCard(version, role="student", base="tiny", trained=True))


def _model_files(folder: Path, seed: int) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"seed": seed}))
    (folder / "model.safetensors").write_bytes(bytes(range(256)) * (seed + 1) * 64)
    return folder


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_student_publish_killed_before_the_rename_leaves_no_model(tmp_path):
    a, b = _model_files(tmp_path / "a", 0), _model_files(tmp_path / "b", 1)
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    settings = load_settings(None, [f"warehouse={killed}"])
    root = killed / "models" / "students"  # latest_student's folder for these settings
    for r in (root, clean):
        _publish(r, a, "student-a", "run-0")  # the previous good state
    listing = sorted(p.name for p in root.iterdir())

    _killed("student-publish", PUBLISH, root, b, "student-b")
    assert latest_student(settings) == root / "student-a"  # the half model is not a model
    assert not (root / "student-b").exists()
    assert sorted(p.name for p in root.iterdir()) == listing  # it is in staging

    _publish(root, b, "student-b", "run-2")  # the rerun: the dead run's staging is swept
    _publish(clean, b, "student-b", "run-2")
    assert _tree(root) == _tree(clean)
    assert latest_student(settings) == root / "student-b"
    assert not list((root / STAGING).iterdir())

    # A live run's staging folder (its lock held) is never swept by another run.
    live = staging_folder(root, "live")
    (live / "config.json").write_text("{}")
    _publish(root, a, "student-a", "run-3")  # publishes nothing new: same version
    assert (live / "config.json").is_file()
