"""What every teacher returns: a distribution over the policy's 0-4 grades, per pair."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

GRADES = (0, 1, 2, 3, 4)


@dataclass(frozen=True)
class GradeDistribution:
    """Per pair: ``probs[i, g]`` = p(grade g), plus the summaries derived from it."""

    probs: np.ndarray  # (n, 5) float32, rows sum to 1

    @classmethod
    def from_logits(cls, logits: np.ndarray) -> GradeDistribution:
        """Softmax over the grade logits only (stable in float64, stored as float32)."""
        z = logits.astype(np.float64)
        z = np.exp(z - z.max(axis=1, keepdims=True))
        return cls((z / z.sum(axis=1, keepdims=True)).astype(np.float32))

    @property
    def expected(self) -> np.ndarray:
        """Expected grade ``sum_g g * p(g)``: the soft score distillation learns from."""
        return self.probs.astype(np.float64) @ np.arange(len(GRADES), dtype=np.float64)

    @property
    def grade(self) -> np.ndarray:
        """The most likely grade (argmax)."""
        return self.probs.argmax(axis=1).astype(np.int32)

    @property
    def entropy(self) -> np.ndarray:
        """Shannon entropy in nats: 0 when sure, ln 5 ~ 1.609 when uniform."""
        p = self.probs.astype(np.float64)
        return -(p * np.log(np.clip(p, 1e-12, 1.0))).sum(axis=1)

    def __len__(self) -> int:
        return len(self.probs)
