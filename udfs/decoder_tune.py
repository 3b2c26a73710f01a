"""Fine-tune a causal LM into a grade-distribution judge: plain torch, no Spark.

The model reads exactly the prompt the ``llm`` backend gives it (:class:`udfs.llm_judge.
JudgePrompt`: the whole policy, the pair, the answer cue) and learns the gold grade
distribution at the cue: the loss is the soft cross-entropy of :func:`udfs.fine_tune.
soft_cross_entropy` over the five grade columns (each the log-sum-exp of the tokens that write
the grade), grade-balanced like the cross-encoder judge's. The result is an ordinary causal-LM
folder, so ``teacher.backend=llm`` grades with it unchanged, prefix reuse included.

``lora_rank`` > 0 trains low-rank adapters on the attention and MLP projections (peft) and
merges them into the weights before saving; 0 trains every weight.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from udfs.fine_tune import grade_balanced_batches, soft_cross_entropy
from udfs.grades import GRADES
from udfs.training import train_loop

# What a 2-core CPU trains in about an hour over ~1,000 gold pairs with a 5,000-token policy
# prompt: a forward and backward pass costs ~6 x parameters x tokens FLOPs per pair.
CPU_MAX_PARAMETERS = 20_000_000
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class DecoderTuneConfig:
    """The decoder judge's knobs: ``teacher.fine_tune`` in conf/local.yaml."""

    epochs: int
    batch_size: int
    learning_rate: float
    warmup_share: float
    seed: int
    balance_grades: bool
    lora_rank: int = 0  # 0: full fine-tuning
    lora_alpha: int = 16


def too_big_for_cpu(n_parameters: int, device: str, limit: int = CPU_MAX_PARAMETERS) -> str | None:
    """Why fine-tuning a model of ``n_parameters`` on ``device`` is refused (None: it is not)."""
    if device != "cpu" or n_parameters <= limit:
        return None
    return (
        f"the base has {n_parameters / 1e6:.3g}M parameters, over the {limit / 1e6:.3g}M that "
        "fine-tuning on a CPU can take in reasonable time (every gold pair carries the whole "
        "policy, ~5,000 tokens); run train-judge where torch sees a GPU, or raise "
        "teacher.fine_tune.cpu_max_parameters if you mean it"
    )


def grade_columns(vocab_logits, grade_variants: Sequence[Sequence[int]]):
    """(B, 5) grade logits from (B, vocab): per grade, the log-sum-exp of its tokens' logits
    (``"3"`` and ``" 3"`` both write grade 3), as :class:`udfs.llm_judge.LLMJudge` reads them."""
    import torch

    return torch.stack(
        [torch.logsumexp(vocab_logits[:, list(ids)].float(), dim=-1) for ids in grade_variants],
        dim=-1,
    )


def prompt_grade_logits(model, prompt, suffixes: list[list[int]], device: str):
    """Grade logits of whole prompts (prefix + each suffix), right-padded, at each last token."""
    import torch

    prompts = [prompt.prefix_ids + s for s in suffixes]
    width = max(len(p) for p in prompts)
    pad = prompt.tokenizer.pad_token_id
    pad = (prompt.tokenizer.eos_token_id or 0) if pad is None else pad  # pads are masked
    ids = torch.full((len(prompts), width), pad, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, p in enumerate(prompts):
        ids[row, : len(p)], mask[row, : len(p)] = torch.tensor(p), 1
    if hasattr(model, "get_base_model"):  # peft: the original model, adapters injected in place
        model = model.get_base_model()
    hidden = model.base_model(
        input_ids=ids.to(device), attention_mask=mask.to(device), use_cache=False
    ).last_hidden_state
    last = torch.tensor([len(p) - 1 for p in prompts], device=hidden.device)
    logits = model.get_output_embeddings()(hidden[torch.arange(len(prompts)), last])
    softcap = getattr(model.config, "final_logit_softcapping", None)
    if softcap:
        logits = torch.tanh(logits / softcap) * softcap
    return grade_columns(logits, prompt.grade_variants)


def with_lora(model, config: DecoderTuneConfig):
    """``model`` wrapped with LoRA adapters (peft), or itself when ``lora_rank`` is 0."""
    if config.lora_rank <= 0:
        return model
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as err:
        raise ImportError(
            "teacher.fine_tune.lora_rank > 0 needs peft: pip install 'policyrank[lora]'"
        ) from err
    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    targets = [t for t in LORA_TARGETS if t in present]
    lora = LoraConfig(r=config.lora_rank, lora_alpha=config.lora_alpha, target_modules=targets)
    return get_peft_model(model, lora)


def fine_tune_decoder(
    model,
    prompt,
    member_texts: Sequence[str],
    job_texts: Sequence[str],
    targets: np.ndarray,
    config: DecoderTuneConfig,
    *,
    device: str = "cpu",
    show_progress: bool = True,
):
    """Train ``model`` (a causal LM) to put ``targets`` (n, 5) on the grade tokens after
    ``prompt``'s cue. Returns ``(model, epoch losses)``: the model with any LoRA adapters merged
    in, ready for ``save_pretrained``."""
    import torch

    if not len(member_texts) == len(job_texts) == len(targets):
        raise ValueError("member_texts, job_texts and targets must have the same length")
    if np.shape(targets)[1] != len(GRADES):
        raise ValueError(f"targets need {len(GRADES)} columns, got {np.shape(targets)[1]}")
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    suffixes = prompt.suffix_ids(list(member_texts), list(job_texts))
    target_t = torch.as_tensor(targets, dtype=torch.float32)
    epoch_batches, weights = grade_balanced_batches(
        targets, config.batch_size, config.balance_grades, rng
    )
    weight_t = torch.as_tensor(weights, dtype=torch.float32)
    model = with_lora(model, config)
    model.to(device)
    if device != "cpu" and hasattr(model, "gradient_checkpointing_enable"):
        model.gradient_checkpointing_enable()  # every pair carries ~5,000 policy tokens

    def batch_loss(idx):
        logits = prompt_grade_logits(model, prompt, [suffixes[i] for i in idx], device)
        return soft_cross_entropy(logits, target_t[idx].to(device), weight_t[idx].to(device))

    history = train_loop(
        model,
        epoch_batches,
        batch_loss,
        epochs=config.epochs,
        steps_per_epoch=math.ceil(len(suffixes) / config.batch_size),
        learning_rate=config.learning_rate,
        warmup_share=config.warmup_share,
        desc="fine-tune decoder",
        show_progress=show_progress,
    )
    if config.lora_rank > 0:
        model = model.merge_and_unload()
    if hasattr(model, "gradient_checkpointing_disable"):
        model.gradient_checkpointing_disable()
    return model, [epoch["total"] for epoch in history]
