"""A tiny random causal LM (Llama architecture) and a word-level tokenizer, built at test time.

Nothing is downloaded: the tokenizer's vocabulary is trained on an in-memory corpus (the judge
prompt's own words, the synthetic world's words, whatever the caller adds), digits are split one
per token, and the tokenizer adds a BOS token like Llama's does. Both are written with
``save_pretrained`` so ``AutoTokenizer`` / ``AutoModelForCausalLM`` load them from the folder.
"""

from __future__ import annotations

import string
from collections.abc import Iterable
from pathlib import Path

from sim import lexicon
from udfs.llm_judge import build_prefix, render_pair

SPECIAL = ["[PAD]", "[UNK]", "[BOS]", "[EOS]"]


def base_corpus() -> list[str]:
    """The judge prompt's fixed words, the synthetic world's words, digits and punctuation."""
    lines = [build_prefix("policy"), render_pair("", ""), "\u2039 \u203a"]
    lines += [*lexicon.ALL_SKILLS, *lexicon.COMPANIES, *(f"{r} {c}" for r, c in lexicon.REGIONS)]
    lines += [" ".join(string.digits), " ".join(string.punctuation), string.ascii_lowercase]
    lines += ["senior junior staff principal engineer at skills location years of experience"]
    return lines


def build_tokenizer(corpus: Iterable[str] = (), *, split_punctuation: bool = True):
    """A ``PreTrainedTokenizerFast`` over a WordLevel vocabulary of ``base_corpus() + corpus``.

    Lowercased, split on whitespace and (by default) between word characters and punctuation,
    one digit per token, so ``"(0-4):3"`` ends in the token ``"3"``. With
    ``split_punctuation=False`` only whitespace splits (digits included), so ``"(0-4):3"`` is
    one (unknown) word: a tokenizer whose grades are not single tokens after the answer cue.
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    if split_punctuation:
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Whitespace(), pre_tokenizers.Digits(individual_digits=True)]
        )
    else:
        tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    trainer = trainers.WordLevelTrainer(special_tokens=SPECIAL, min_frequency=1)
    tok.train_from_iterator([*base_corpus(), *corpus], trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="[BOS] $A", pair="[BOS] $A $B", special_tokens=[("[BOS]", tok.token_to_id("[BOS]"))]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="[PAD]",
        unk_token="[UNK]",
        bos_token="[BOS]",
        eos_token="[EOS]",
    )


def build_tiny_causal_lm(
    dest: Path,
    *,
    corpus: Iterable[str] = (),
    hidden_size: int = 32,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    intermediate_size: int = 64,
    initializer_range: float = 0.02,
    seed: int = 0,
) -> Path:
    """A random ``LlamaForCausalLM`` (grouped-query attention, RoPE) + tokenizer in ``dest``.

    A large ``initializer_range`` (e.g. 0.5) makes the random grade distributions far from
    uniform, so tests comparing them mean something.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    dest.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(corpus)
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        max_position_embeddings=16384,
        initializer_range=initializer_range,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
    )
    LlamaForCausalLM(config).save_pretrained(dest)
    tokenizer.save_pretrained(dest)
    return dest
