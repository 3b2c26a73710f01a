"""The decoder judge's fine-tuning (udfs/decoder_tune.py): it trains on the llm backend's own
prompt, learns a grade rule the random model does not know, and saves a folder LLMJudge loads."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from tests.tiny_causal_lm import build_tiny_causal_lm
from udfs.decoder_tune import (
    DecoderTuneConfig,
    fine_tune_decoder,
    grade_columns,
    prompt_grade_logits,
    too_big_for_cpu,
)
from udfs.devices import Placement, load_pretrained
from udfs.llm_judge import JudgePrompt, LLMJudge

POLICY = "Grade by the member's craft: nurse 0, welder 1, chef 3, pilot 4, whatever the job."
CRAFTS = ["nurse", "welder", "chef", "pilot"]
GRADE_OF_CRAFT = [0, 1, 3, 4]  # a rule the random model cannot know
MEMBERS = [f"Experienced {c} for years" for c in CRAFTS]
JOBS = ["We hire now", "Open role in Lyon", "Night shifts"]
PAIRS = [(i, j) for i in range(len(MEMBERS)) for j in range(len(JOBS))]


def _targets() -> np.ndarray:
    out = np.zeros((len(PAIRS), 5), dtype=np.float32)
    for row, (i, _) in enumerate(PAIRS):
        out[row, GRADE_OF_CRAFT[i]] = 1.0
    return out


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return build_tiny_causal_lm(
        tmp_path_factory.mktemp("models") / "tiny-decoder",
        corpus=[POLICY, *MEMBERS, *JOBS],
        initializer_range=0.2,  # at 0.02 the last token barely sees the member: slow to learn
    )


def _texts():
    return [MEMBERS[i] for i, _ in PAIRS], [JOBS[j] for _, j in PAIRS]


def _config(**kw) -> DecoderTuneConfig:
    values = dict(
        epochs=30, batch_size=3, learning_rate=1e-2, warmup_share=0.1, seed=0, balance_grades=False
    )
    return DecoderTuneConfig(**{**values, **kw})


def _judged(folder) -> tuple[float, float]:
    """(Spearman of the judge's expected grade against the rule, exact agreement)."""
    judge = LLMJudge.load(folder, POLICY, Placement("cpu", "float32"), cpu_threads=1)
    dist = judge.grade(*_texts())
    rule = _targets().argmax(axis=1)
    return spearmanr(dist.expected, rule)[0], float(np.mean(dist.probs.argmax(axis=1) == rule))


def _tune(base, **config):
    model, tokenizer = load_pretrained("AutoModelForCausalLM", base, Placement("cpu", "float32"), 1)
    original = {k: v.clone() for k, v in model.state_dict().items()}
    prompt = JudgePrompt(tokenizer, POLICY, 512)
    tuned, losses = fine_tune_decoder(
        model, prompt, *_texts(), _targets(), _config(**config), show_progress=False
    )
    changed = {k for k, v in tuned.state_dict().items() if not torch.equal(v, original[k])}
    return tuned, tokenizer, prompt, losses, changed


def test_the_trainer_reads_grades_exactly_as_the_judge_does(base):
    model, tokenizer = load_pretrained("AutoModelForCausalLM", base, Placement("cpu", "float32"), 1)
    judge = LLMJudge.load(base, POLICY, Placement("cpu", "float32"), cpu_threads=1)
    members, jobs = _texts()
    prompt = JudgePrompt(tokenizer, POLICY, 512)
    with torch.no_grad():
        logits = prompt_grade_logits(model, prompt, prompt.suffix_ids(members, jobs), "cpu")
    ours = torch.softmax(logits, dim=-1).numpy()
    np.testing.assert_allclose(ours, judge.grade(members, jobs).probs, atol=1e-5)


def test_grade_columns_merge_each_grades_spellings():
    vocab = torch.tensor([[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]])
    out = grade_columns(vocab, [[0], [1, 2], [3], [4], [5]])
    assert out.shape == (1, 5)
    assert out[0, 1].item() == pytest.approx(np.logaddexp(1.0, 2.0))
    assert out[0, 3].item() == pytest.approx(4.0)


def test_full_fine_tuning_learns_the_rule_and_saves_a_judge_folder(base, tmp_path):
    rho_before, exact_before = _judged(base)
    tuned, tokenizer, _, losses, changed = _tune(base, epochs=40)
    assert losses[-1] < 0.5 * losses[0], losses
    assert "model.embed_tokens.weight" in changed
    tuned.save_pretrained(tmp_path / "tuned")
    tokenizer.save_pretrained(tmp_path / "tuned")
    rho, exact = _judged(tmp_path / "tuned")  # the llm backend's own loader and prompt
    assert rho > 0.9 and abs(rho_before) < 0.5, (rho_before, rho)
    assert exact >= 0.75 > exact_before, (exact_before, exact)


def test_lora_trains_only_adapters_and_merges_them_into_a_plain_model(base, tmp_path):
    # A 32-wide random model learns little through rank-8 adapters on frozen embeddings; this
    # proves the mechanics: adapters train, only the projections move, the merge is exact.
    tuned, tokenizer, prompt, losses, changed = _tune(base, lora_rank=8, learning_rate=0.1)
    assert type(tuned).__name__ == "LlamaForCausalLM"
    assert losses[-1] < 0.9 * losses[0], losses
    assert changed and all(k.endswith("proj.weight") for k in changed), sorted(changed)
    with torch.no_grad():
        merged = torch.softmax(
            prompt_grade_logits(tuned, prompt, prompt.suffix_ids(*_texts()), "cpu"), -1
        )
    tuned.save_pretrained(tmp_path / "tuned")
    tokenizer.save_pretrained(tmp_path / "tuned")
    judge = LLMJudge.load(tmp_path / "tuned", POLICY, Placement("cpu", "float32"), cpu_threads=1)
    np.testing.assert_allclose(judge.grade(*_texts()).probs, merged.numpy(), atol=1e-5)


def test_a_large_base_is_refused_on_cpu_only():
    why = too_big_for_cpu(135_000_000, "cpu", 20_000_000)
    assert why and "135M" in why and "cpu_max_parameters" in why
    assert too_big_for_cpu(135_000_000, "cuda", 20_000_000) is None
    assert too_big_for_cpu(1_000_000, "cpu", 20_000_000) is None


def test_targets_must_have_five_grades(base):
    model, tokenizer = load_pretrained("AutoModelForCausalLM", base, Placement("cpu", "float32"), 1)
    prompt = JudgePrompt(tokenizer, POLICY, 512)
    with pytest.raises(ValueError, match="5 columns"):
        fine_tune_decoder(
            model, prompt, ["a"], ["b"], np.ones((1, 3)), _config(), show_progress=False
        )
