"""Define-by-run search spaces: what a sweep may try. They suggest; they never train."""

from search_spaces.spaces import (
    SPACES,
    TrialLike,
    distill_or_annotate,
    fraction_grid,
    fraction_only,
    get_space,
)

__all__ = [
    "SPACES",
    "TrialLike",
    "distill_or_annotate",
    "fraction_grid",
    "fraction_only",
    "get_space",
]
