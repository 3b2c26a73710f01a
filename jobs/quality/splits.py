"""Which members are held out for evaluation: a hash of the member id, stable across days.

Held-out members never reach training: the teacher's daily sample skips them, the fine-tuned
judge and the student drop them, and evaluation scores only them. A hash (not a stored split
column) means a real warehouse's gold table needs no split of its own.
"""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F

from jobs.config.settings import EvalSettings

_BUCKETS = 10_000


def is_heldout(conf: EvalSettings, member_id: str | Column = "member_id") -> Column:
    """True for the ``conf.heldout_share`` of members whose hash falls below the share."""
    col = F.col(member_id) if isinstance(member_id, str) else member_id
    bucket = F.pmod(F.xxhash64(col, F.lit(conf.split_seed)), F.lit(_BUCKETS))
    return bucket < int(round(conf.heldout_share * _BUCKETS))


def drawn(member_id: str, seed: int, share: float, salt: str = "") -> Column:
    """True for about ``share`` of members, chosen by a hash of (member, seed, salt)."""
    bucket = F.pmod(F.xxhash64(F.col(member_id), F.lit(seed), F.lit(salt)), F.lit(_BUCKETS))
    return bucket < int(round(share * _BUCKETS))
