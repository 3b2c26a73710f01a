"""Tiny Hugging Face models built at test time: small config, random weights, local tokenizer."""

from __future__ import annotations

import string
from pathlib import Path

from sim import lexicon

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def _vocab() -> list[str]:
    words = set(string.ascii_lowercase) | set(string.digits) | set(string.punctuation)
    words |= {"##" + c for c in string.ascii_lowercase + string.digits}
    for text in [*lexicon.ALL_SKILLS, *lexicon.COMPANIES, *(r for r, _ in lexicon.REGIONS)]:
        words |= set(text.lower().replace(",", " ").split())
    words |= {"senior", "junior", "staff", "principal", "engineer", "at", "skills", "location"}
    return SPECIAL + sorted(words - set(SPECIAL))


def build_tiny_cross_encoder(dest: Path, *, num_labels: int = 1, seed: int = 0) -> Path:
    """A 2-layer, 32-wide BERT cross-encoder with a WordPiece tokenizer over a small vocab."""
    from transformers import BertForSequenceClassification

    return _build(dest, BertForSequenceClassification, seed, num_labels=num_labels)


def build_tiny_encoder(dest: Path, *, seed: int = 0) -> Path:
    """A 2-layer, 32-wide ``BertModel`` (a sentence encoder, no task head), same tokenizer."""
    from transformers import BertModel

    return _build(dest, BertModel, seed)


def _build(dest: Path, model_class, seed: int, **config_kwargs) -> Path:
    import torch
    from transformers import BertConfig, BertTokenizerFast

    dest.mkdir(parents=True, exist_ok=True)
    vocab = dest / "vocab.txt"
    vocab.write_text("\n".join(_vocab()) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(vocab), do_lower_case=True)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(_vocab()),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
        **config_kwargs,
    )
    model_class(config).save_pretrained(dest)
    tokenizer.save_pretrained(dest)
    return dest
