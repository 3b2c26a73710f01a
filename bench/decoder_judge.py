"""A fine-tuned decoder judge against the same model prompted, on the same held-out gold pairs
(issue 21, item 5). Two steps, so the training can run where there is a GPU but no Java:

    # here (Spark): the training members' gold pairs and the ladder's held-out pairs, rendered
    python bench/decoder_judge.py export --warehouse /tmp/ce --out bench-data/decoder-judge
    # on a GPU machine (no Spark): prompted, then fine-tuned, both graded on the held-out pairs
    python bench/decoder_judge.py train --data bench-data/decoder-judge \\
        --base SmolLM2-135M-Instruct.Q4_1.gguf --out decoder_judge.json

``train`` dequantizes a GGUF base once (udfs/gguf.py), grades the held-out pairs with the base
prompted (LLMJudge, the ``llm`` backend's loader and prompt), fine-tunes it with
:func:`udfs.decoder_tune.fine_tune_decoder` (what ``policyrank train-judge teacher.backend=llm``
runs) and grades them again: linear weighted kappa, exact agreement, Spearman, seconds.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np


def export(args) -> None:
    from jobs import judge
    from jobs.config.policy import load_policy
    from jobs.config.settings import load_settings
    from jobs.quality.splits import is_heldout
    from jobs.runtime.spark_session import build_spark
    from jobs.warehouse.tables import Warehouse

    settings = load_settings(None, [f"warehouse={args.warehouse}", *args.overrides])
    wh = Warehouse.of(settings, build_spark(settings.spark))
    args.out.mkdir(parents=True, exist_ok=True)
    gold, version = wh.read_pinned("gold_labels")
    heldout = judge.balanced_sample(gold.where(is_heldout(settings.eval)), args.pairs)
    for name, rendered in (
        ("train", judge._training_gold(wh, settings, None)),
        ("heldout", judge.rendered_gold(wh, settings, heldout, version, None)),
    ):
        out = {
            "member_text": rendered.members,
            "job_text": rendered.jobs,
            "targets": rendered.targets.tolist(),
            "gold_grade": rendered.gold_grade.tolist(),
        }
        (args.out / f"{name}.json").write_text(json.dumps(out))
        print(f"{name}: {len(rendered.gold_grade):,} gold pairs -> {args.out / name}.json")
    (args.out / "policy.md").write_text(load_policy(settings.teacher.policy_path).body)


def _scores(judge, test: dict) -> dict:
    from scipy.stats import spearmanr
    from sklearn.metrics import cohen_kappa_score

    start = time.perf_counter()
    dist = judge.grade(test["member_text"], test["job_text"])
    seconds = time.perf_counter() - start
    gold = np.asarray(test["gold_grade"])
    grades = dist.probs.argmax(axis=1)
    return {
        "weighted_kappa": float(cohen_kappa_score(gold, grades, weights="linear")),
        "exact_agreement": float(np.mean(gold == grades)),
        "spearman": float(spearmanr(dist.expected, gold)[0]),
        "grading_seconds": round(seconds, 1),
    }


def train(args) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from udfs.decoder_tune import DecoderTuneConfig, fine_tune_decoder
    from udfs.devices import Placement
    from udfs.gguf import dequantized_folder, find_gguf
    from udfs.llm_judge import JudgePrompt, LLMJudge

    device = "cuda" if torch.cuda.is_available() else "cpu"
    data = args.data
    policy = (data / "policy.md").read_text()
    tr = json.loads((data / "train.json").read_text())
    test = json.loads((data / "heldout.json").read_text())
    gguf = find_gguf(args.base)
    base = dequantized_folder(gguf, args.cache) if gguf else args.base
    placement = Placement(device, "bfloat16" if device == "cuda" else "float32")
    result = {"machine": torch.cuda.get_device_name() if device == "cuda" else platform.machine()}
    prompted = LLMJudge.load(base, policy, placement, max_pair_tokens=args.max_pair_tokens)
    result["prompted"] = _scores(prompted, test)
    print(f"prompted: {result['prompted']}", flush=True)
    del prompted
    tokenizer = AutoTokenizer.from_pretrained(base, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(base, local_files_only=True, dtype=torch.float32)
    prompt = JudgePrompt(tokenizer, policy, args.max_pair_tokens, prompt_format="auto")
    conf = DecoderTuneConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        warmup_share=0.1,
        seed=0,
        balance_grades=True,
        lora_rank=args.lora_rank,
    )
    start = time.perf_counter()
    with torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
        model, losses = fine_tune_decoder(
            model, prompt, tr["member_text"], tr["job_text"], np.asarray(tr["targets"]), conf,
            device=device,
        )  # fmt: skip
    seconds = round(time.perf_counter() - start, 1)
    result["training"] = {"seconds": seconds, "losses": losses, "config": vars(conf)}
    tuned_dir = args.cache / "tuned"
    model.to("cpu").save_pretrained(tuned_dir)
    tokenizer.save_pretrained(tuned_dir)
    tuned = LLMJudge.load(tuned_dir, policy, placement, max_pair_tokens=args.max_pair_tokens)
    result["fine_tuned"] = _scores(tuned, test)
    print(json.dumps(result, indent=2))
    args.out.write_text(json.dumps(result, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="step", required=True)
    ex = sub.add_parser("export")
    ex.add_argument("--warehouse", type=Path, required=True)
    ex.add_argument("--out", type=Path, default=Path("bench-data/decoder-judge"))
    ex.add_argument("--pairs", type=int, default=100)
    ex.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    tr = sub.add_parser("train")
    tr.add_argument("--data", type=Path, default=Path("bench-data/decoder-judge"))
    tr.add_argument("--base", type=Path, required=True, help="a causal LM folder or .gguf file")
    tr.add_argument("--cache", type=Path, default=Path("/tmp/decoder-judge"))
    tr.add_argument("--epochs", type=int, default=2)
    tr.add_argument("--batch-size", type=int, default=4)
    tr.add_argument("--learning-rate", type=float, default=2e-5)
    tr.add_argument("--lora-rank", type=int, default=0)
    tr.add_argument("--max-pair-tokens", type=int, default=256)
    tr.add_argument("--out", type=Path, default=Path("decoder_judge.json"))
    args = parser.parse_args()
    export(args) if args.step == "export" else train(args)


if __name__ == "__main__":
    main()
