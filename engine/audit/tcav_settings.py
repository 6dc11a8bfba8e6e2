"""The concept test's settings, importable without torch (the command line builds its parser
from them before any model is loaded)."""

from __future__ import annotations

from dataclasses import dataclass

#: The paper's significance test asks for at least this many random concepts.
MIN_RANDOM = 10


@dataclass(frozen=True)
class TcavSettings:
    """The test's settings.

    Attributes
    ----------
    alpha : float
        Significance level of the two-sided t-test.
    seed : int
        Seed of the CAV classifier.
    """

    alpha: float = 0.05
    seed: int = 0
