"""Which members each step may see: held-out, validation or training, by a hash of the member id.

* **held-out** (``eval.heldout_share``): touched only by evaluation (`evaluate`, and `calibrate`,
  which reports the judge against their gold). Never sampled for the teacher, never trained on,
  never used to choose anything.
* **validation** (``eval.validation_share``): for tuning and model selection (the student's
  training picks its best epoch on their gold; the simulator sets its judge's error rates on
  non-held-out gold). Never sampled for the teacher and never trained on.
* **training**: the rest; the teacher labels them and the judge and the student learn from them.

A hash (not a stored split column) means a real warehouse's gold table needs no split of its own,
and a member stays in its split across days.
"""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F

from jobs.config.settings import EvalSettings

_BUCKETS = 10_000


def _bucket(conf: EvalSettings, member_id: str | Column) -> Column:
    col = F.col(member_id) if isinstance(member_id, str) else member_id
    return F.pmod(F.xxhash64(col, F.lit(conf.split_seed)), F.lit(_BUCKETS))


def is_heldout(conf: EvalSettings, member_id: str | Column = "member_id") -> Column:
    """True for the ``conf.heldout_share`` of members whose hash falls below the share."""
    return _bucket(conf, member_id) < int(round(conf.heldout_share * _BUCKETS))


def is_validation(conf: EvalSettings, member_id: str | Column = "member_id") -> Column:
    """True for the ``conf.validation_share`` of members whose hash falls just above the
    held-out members'."""
    low = int(round(conf.heldout_share * _BUCKETS))
    high = int(round((conf.heldout_share + conf.validation_share) * _BUCKETS))
    bucket = _bucket(conf, member_id)
    return (bucket >= low) & (bucket < high)


def is_training(conf: EvalSettings, member_id: str | Column = "member_id") -> Column:
    """True for members that are neither held out nor validation members."""
    high = int(round((conf.heldout_share + conf.validation_share) * _BUCKETS))
    return _bucket(conf, member_id) >= high


def drawn(member_id: str, seed: int, share: float, salt: str = "") -> Column:
    """True for about ``share`` of members, chosen by a hash of (member, seed, salt)."""
    bucket = F.pmod(F.xxhash64(F.col(member_id), F.lit(seed), F.lit(salt)), F.lit(_BUCKETS))
    return bucket < int(round(share * _BUCKETS))
