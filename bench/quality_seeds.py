"""The cookbook's quality on several world seeds: every ordering against held-out gold, with
intervals, and the spread across seeds (issue 20).

    python bench/quality_seeds.py                         # seeds 7 11 13, the default sample
    python bench/quality_seeds.py --seeds 7 11 13 17 --out /tmp/quality world.members=3000

For each seed it runs `policyrank run-daily --date D world.seed=S` on a fresh warehouse under
``--out`` (one Spark session for all seeds; the catalog registration is skipped), then reads what
the run wrote: ``eval_metrics`` (each ordering's NDCG@10 and its member-bootstrap interval),
``eval_comparisons`` (the student against each baseline, paired intervals), the judge's kappa
(``judge_calibration``, held-out gold) and its tuning (``judge.json``, validation gold), the
student's epoch chosen on validation gold, and the gate's decision. From the simulator's truth it
adds what no production step may read: candidate recall of grade >= 3 pairs, how often the rules
baseline's grade is the true grade on the candidate pairs, and how often a decision tree over the
rules' own dimensions (fit to the truth of non-held-out members' candidates) gets it on the
held-out members' candidates -- the best a hand rule over declared fields could do.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd

ORDER = ("student", "teacher", "rules", "prefilter", "random")


def run_seed(seed: int, out: Path, day: str, overrides: list[str]) -> dict:
    from jobs.cli import main

    warehouse = out / f"seed-{seed}"
    args = [f"warehouse={warehouse}", f"world.seed={seed}", "catalog.database=null", *overrides]
    start = time.perf_counter()
    main(["run-daily", "--date", day, *args])
    seconds = time.perf_counter() - start
    return {"seed": seed, "seconds": round(seconds, 1), **read_results(warehouse, day, args)}


def _read(warehouse: Path, name: str, day: str | None = None) -> pd.DataFrame:
    import datetime as dt

    import pyarrow.dataset as ds
    from deltalake import DeltaTable

    dataset = DeltaTable(str(warehouse / name)).to_pyarrow_dataset()
    if day is None:
        return dataset.to_table().to_pandas()
    when = ds.field("run_date") == ds.scalar(dt.date.fromisoformat(day))
    return dataset.to_table(filter=when).to_pandas()


def read_results(warehouse: Path, day: str, args: list[str]) -> dict:
    from jobs.config.settings import load_settings
    from jobs.models.registry import Registry

    settings = load_settings(None, args)
    metrics = _read(warehouse, "eval_metrics", day)
    overall = metrics[metrics.slice == "overall"]
    orderings = {
        f"{r.label_source}:{r.model}": [r.ndcg_at_10, r.ndcg_at_10_ci_low, r.ndcg_at_10_ci_high]
        for r in overall.itertuples()
    }
    compared = _read(warehouse, "eval_comparisons", day)
    comparisons = {
        f"{r.label_source}:student {'/' if r.statistic == 'ratio' else '-'} {r.baseline}": [
            r.estimate,
            r.ci_low,
            r.ci_high,
        ]
        for r in compared.itertuples()
    }
    calibration = _read(warehouse, "judge_calibration", day).set_index("slice")
    tuned = warehouse / "models" / "simulated-llm-judge" / "judge.json"
    # another teacher (teacher.backend=cross_encoder): no simulated judge, no tuning figures
    judge = json.loads(tuned.read_text()) if tuned.is_file() else None
    production = Registry(warehouse / "models" / "registry").production()
    history = Registry(warehouse / "models" / "registry").history()
    card = json.loads(
        (
            warehouse / "models" / "students" / compared.model_version.iloc[0]
            / "policyrank_model.json"
        ).read_text()
    )  # fmt: skip
    chosen = [h for h in card["history"] if h.get("selected")]
    return {
        "members": int(overall.members.max()),
        "orderings": orderings,
        "comparisons": comparisons,
        "judge_kappa_heldout": float(calibration.loc["overall", "weighted_kappa"]),
        "judge_kappa_heldout_sampled": float(calibration.loc["sampled", "weighted_kappa"]),
        "judge_kappa_heldout_clean": float(calibration.loc["clean", "weighted_kappa"]),
        "judge_kappa_validation": judge["tuning"]["kappa"] if judge else None,
        "judge_error_scale": judge["profile"]["scale"] if judge else None,
        "student_validation_ndcg": chosen[0]["validation"] if chosen else None,
        "promoted": bool(production) and history[-1]["event"] == "promoted",
        **truth_figures(warehouse, day, settings),
    }


def truth_figures(warehouse: Path, day: str, settings) -> dict:
    """Figures only the simulator's truth gives: recall, and how far rules on declared fields
    get to the true grade."""
    from sklearn.tree import DecisionTreeClassifier

    from sim import world
    from udfs.policy_rules import PolicyRules, rule_parts

    members = _read(warehouse, "members").drop_duplicates("member_id").set_index("member_id")
    jobs = _read(warehouse, "jobs").drop_duplicates("job_id").set_index("job_id")
    truth = _read(warehouse, "truth").set_index("entity_id")
    cands = _read(warehouse, "candidates", day)
    cands = cands[cands.member_id.isin(members.index) & cands.job_id.isin(jobs.index)]
    cands = cands.reset_index(drop=True)
    m, j = members.loc[cands.member_id].reset_index(), jobs.loc[cands.job_id].reset_index()
    true = world.true_grade(truth.loc[cands.member_id].reset_index(), truth.loc[cands.job_id])
    rules_grade = PolicyRules().grade_rows(m, j).grade
    valid_m = [i for i in members.index if i in truth.index]
    valid_j = [i for i in jobs.index if i in truth.index]
    good = world.good_pairs(truth.reset_index(), valid_m, valid_j)
    recall = len(good.merge(cands[["member_id", "job_id"]])) / max(len(good), 1)

    parts = rule_parts(m, j)
    features = np.column_stack([parts[k].astype(float) for k in sorted(parts)])
    heldout = heldout_flags(cands.member_id, settings)
    tree = DecisionTreeClassifier(max_depth=8, min_samples_leaf=20, random_state=0)
    tree.fit(features[~heldout], true[~heldout])
    return {
        "candidate_pairs": len(cands),
        "recall_grade_ge_3": recall,
        "good_pairs": len(good),
        "rules_exact_on_candidates": float((rules_grade == true).mean()),
        "tree_exact_on_heldout_candidates": float(
            (tree.predict(features[heldout]) == true[heldout]).mean()
        ),
    }


def heldout_flags(member_ids: pd.Series, settings) -> np.ndarray:
    """``jobs.quality.splits.is_heldout`` for these ids (the same Spark hash)."""
    from pyspark.sql import SparkSession

    from jobs.quality.splits import is_heldout

    spark = SparkSession.getActiveSession()
    ids = spark.createDataFrame(pd.DataFrame({"member_id": member_ids.unique()}))
    flags = ids.select("member_id", is_heldout(settings.eval).alias("h")).toPandas()
    return member_ids.map(flags.set_index("member_id").h).to_numpy(bool)


def _cell(triple) -> str:
    value, low, high = triple
    return f"{value:.3f} [{low:.3f}, {high:.3f}]"


def report(results: list[dict]) -> str:
    seeds = [r["seed"] for r in results]
    lines = ["### NDCG@10 against held-out gold (member-bootstrap 95% interval)", ""]
    lines += ["| ordering | " + " | ".join(f"seed {s}" for s in seeds) + " | mean | spread |"]
    lines += ["| --- |" + " --- |" * len(seeds) + " ---: | ---: |"]
    for model in ORDER:
        key = f"gold:{model}"
        values = [r["orderings"][key][0] for r in results]
        lines.append(
            f"| {model} | "
            + " | ".join(_cell(r["orderings"][key]) for r in results)
            + f" | {statistics.mean(values):.3f} | {max(values) - min(values):.3f} |"
        )
    lines += ["", "### The student against each baseline, gold (paired 95% interval)", ""]
    lines += ["| comparison | " + " | ".join(f"seed {s}" for s in seeds) + " |"]
    lines += ["| --- |" + " --- |" * len(seeds)]
    for baseline in ("rules", "prefilter", "random", "teacher"):
        key = f"gold:student - {baseline}"
        lines.append(
            f"| student - {baseline} | "
            + " | ".join(f"{v:+.3f} [{lo:+.3f}, {hi:+.3f}]" for v, lo, hi in (
                r["comparisons"][key] for r in results)) + " |"
        )  # fmt: skip
    key = "gold:student / teacher"
    lines.append(
        "| student / teacher | " + " | ".join(_cell(r["comparisons"][key]) for r in results) + " |"
    )
    lines += ["", "### Per seed", ""]
    columns = (
        ("held-out members", "members", "{:d}"),
        ("judge kappa, validation gold (tuned)", "judge_kappa_validation", "{:.3f}"),
        ("judge kappa, held-out gold as sampled", "judge_kappa_heldout_sampled", "{:.3f}"),
        ("judge kappa, held-out gold + red-team slice", "judge_kappa_heldout", "{:.3f}"),
        ("judge kappa, held-out gold, clean", "judge_kappa_heldout_clean", "{:.3f}"),
        ("judge error scale", "judge_error_scale", "{:.3f}"),
        ("student NDCG@10, validation gold (chosen epoch)", "student_validation_ndcg", "{:.3f}"),
        ("candidate recall of grade >= 3", "recall_grade_ge_3", "{:.3f}"),
        ("rules grade = true grade, candidate pairs", "rules_exact_on_candidates", "{:.3f}"),
        ("best tree on rule dimensions = true grade", "tree_exact_on_heldout_candidates", "{:.3f}"),
        ("promoted by the gate", "promoted", "{}"),
        ("run-daily seconds", "seconds", "{:.0f}"),
    )
    lines += ["| figure | " + " | ".join(f"seed {s}" for s in seeds) + " |"]
    lines += ["| --- |" + " ---: |" * len(seeds)]
    for label, key, fmt in columns:
        cells = ["n/a" if r[key] is None else fmt.format(r[key]) for r in results]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[7, 11, 13])
    parser.add_argument("--date", default="2026-12-03")
    parser.add_argument("--out", type=Path, default=Path("bench-quality"))
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="settings overrides")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    results = []
    for seed in args.seeds:
        results.append(run_seed(seed, args.out, args.date, args.overrides))
        (args.out / "quality_seeds.json").write_text(json.dumps(results, indent=2))
    print(f"\nmachine: {platform.processor() or platform.machine()}, seeds {args.seeds}")
    print(report(results))


if __name__ == "__main__":
    main()
