"""Triage of a request: the shared rules (``shared.triage``, the same ones intake's fast lane
reads) applied to its category, special groups and description."""

from __future__ import annotations

from shared.schemas import PRIORITIES, SPECIAL_GROUPS, HelpRequest
from shared.triage import (
    URGENT_PRIORITIES,
    Triage,
    TriageResult,
    assess,
)

__all__ = ["PRIORITIES", "SPECIAL_GROUPS", "URGENT_PRIORITIES", "TriageResult", "triage"]


def triage(request: HelpRequest, rules: Triage) -> TriageResult:
    """Priority and green channel from the category, special groups and keywords."""
    return assess(
        description=request.description,
        category=request.category,
        special_groups=request.special_groups,
        rules=rules,
    )
