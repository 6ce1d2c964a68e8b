"""Triage: priority P1–P4 and the green channel, from ``config/triage.toml``.

Shared because two stages act on it and must agree: intake picks the fast lane
(``help.requests.submitted.priority``) for what triage calls urgent, and verify records the
priority. A rule fires on one of its phrases, or on all of its named terms found anywhere in
the text ("婴儿" … "发烧", "baby … fever"), where a written body temperature at or above the
fever threshold (39度5, 39.5℃, 39,5, "39.5 C") counts as the fever term.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared.schemas import CATEGORIES, PRIORITIES, SPECIAL_GROUPS, Priority, SpecialGroup
from shared.text import WordIndex, fold, word_pattern

# Urgent requests take the fast lanes (submitted and verified priority topics).
URGENT_PRIORITIES: frozenset[Priority] = frozenset({"P1", "P2"})


@dataclass(frozen=True, slots=True)
class KeywordRule:
    id: str
    priority: Priority | None
    groups: tuple[SpecialGroup, ...]
    needs_group: bool
    patterns: tuple[re.Pattern[str], ...]
    all_of: tuple[str, ...] = ()  # named terms that together fire the rule, anywhere


@dataclass(frozen=True, slots=True)
class Fever:
    """A written temperature at or above ``min_celsius`` counts as the term ``term``."""

    term: str = "fever"
    min_celsius: float = 38.0
    max_celsius: float = 43.5


@dataclass(frozen=True, slots=True)
class Triage:
    categories: dict[str, Priority]
    green_groups: frozenset[str]
    group_priority: Priority
    group_categories: frozenset[str]
    green_channel_priorities: frozenset[str]
    keywords: tuple[KeywordRule, ...]
    terms: Mapping[str, tuple[re.Pattern[str], ...]] = field(default_factory=dict)
    fever: Fever = Fever()
    # Every keyword rule's words (owned by the rule's position) and every term's (by its
    # name), found in one pass over a text.
    words: WordIndex[int | str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        owned: dict[int | str, tuple[re.Pattern[str], ...]] = {
            n: rule.patterns for n, rule in enumerate(self.keywords)
        }
        owned.update((name, patterns) for name, patterns in self.terms.items())
        object.__setattr__(self, "words", WordIndex(owned))


@dataclass(frozen=True, slots=True)
class TriageResult:
    priority: Priority
    green_channel: bool
    special_groups: tuple[SpecialGroup, ...]
    reasons: tuple[str, ...]

    @property
    def urgent(self) -> bool:
        """Whether the request takes the fast lanes: P1, P2 or the green channel."""
        return self.green_channel or self.priority in URGENT_PRIORITIES


def _priority(value: object, where: str) -> Priority:
    for priority in PRIORITIES:
        if value == priority:
            return priority
    raise ValueError(f"{where}: unknown priority {value!r}")


def _group(value: object, where: str) -> SpecialGroup:
    for group in SPECIAL_GROUPS:
        if value == group:
            return group
    raise ValueError(f"{where}: unknown special group {value!r}")


def _patterns(words: Iterable[object]) -> tuple[re.Pattern[str], ...]:
    return tuple(word_pattern(w) for w in (fold(str(word)) for word in words) if w)


def _keyword(raw: Mapping[str, Any], where: str, terms: Mapping[str, object]) -> KeywordRule:
    all_of = tuple(str(t) for t in raw.get("all_of", ()))
    unknown = [t for t in all_of if t not in terms]
    if unknown:
        raise ValueError(f"{where}: unknown terms {unknown} in all_of")
    return KeywordRule(
        id=str(raw["id"]),
        priority=_priority(raw["priority"], where) if "priority" in raw else None,
        groups=tuple(_group(g, where) for g in raw.get("groups", ())),
        needs_group=bool(raw.get("needs_group", False)),
        patterns=_patterns(raw.get("words", ())),
        all_of=all_of,
    )


def load_triage(path: Path) -> Triage:
    """The triage file; an unknown priority, group or term stops the service at start."""
    data: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    categories = {
        str(c): _priority(p, f"{path} [categories].{c}") for c, p in data["categories"].items()
    }
    missing = set(CATEGORIES) - set(categories)
    if missing:
        raise ValueError(f"{path}: no priority for categories {sorted(missing)}")
    fever_raw = data.get("fever", {})
    fever = Fever(
        term=str(fever_raw.get("term", "fever")),
        min_celsius=float(fever_raw.get("min_celsius", 38.0)),
        max_celsius=float(fever_raw.get("max_celsius", 43.5)),
    )
    terms = {str(name): _patterns(words) for name, words in data.get("terms", {}).items()}
    known = {**terms, fever.term: ()}
    groups = data.get("special_groups", {})
    keywords = tuple(
        _keyword(raw, f"{path} keyword {raw.get('id')!r}", known)
        for raw in data.get("keywords", ())
    )
    return Triage(
        categories=categories,
        green_groups=frozenset(_group(g, str(path)) for g in groups.get("green_channel", ())),
        group_priority=_priority(groups.get("priority", "P2"), f"{path} [special_groups]"),
        group_categories=frozenset(groups.get("categories", ())),
        green_channel_priorities=frozenset(
            _priority(p, str(path)) for p in data.get("green_channel_priorities", ())
        ),
        keywords=keywords,
        terms=terms,
        fever=fever,
    )


# A temperature as people write it (folded: full-width digits, "℃" → "°c", "，" → ","):
# 39度5 / 39.5度, 39.5°c, 39.5 c, 39,5 с (Cyrillic), 39.5 градус…, and a bare 39,5 or 39.5.
_TEMPERATURE = re.compile(
    r"(?<![\d.,])(\d{2})"
    r"(?:"
    r"\s*度\s*(\d)?(?!\d)"
    r"|(?:[.,](\d))?\s*(?:°\s*[cс]?|celsius|цельс|градус|[cс](?![a-zа-я]))"
    r"|[.,](\d)(?![\d.,]*\d)"
    r")"
)


def temperatures(text: str) -> list[float]:
    """The temperatures (°C) written in a folded text."""
    found = []
    for match in _TEMPERATURE.finditer(text):
        whole, after_du, fraction, bare = match.groups()
        tenths = after_du or fraction or bare or "0"
        found.append(int(whole) + int(tenths) / 10)
    return found


def has_fever(text: str, fever: Fever) -> bool:
    return any(fever.min_celsius <= t <= fever.max_celsius for t in temperatures(text))


def fired_rules(text: str, rules: Triage) -> list[KeywordRule]:
    """Keyword rules whose phrase, or all of whose terms, the folded text contains (the fever
    term also by a temperature)."""
    found = rules.words.owners_in(text)
    if has_fever(text, rules.fever):
        found.add(rules.fever.term)
    return [
        rule
        for n, rule in enumerate(rules.keywords)
        if n in found or (rule.all_of and found.issuperset(rule.all_of))
    ]


def assess(
    *,
    description: str,
    category: str,
    special_groups: Iterable[SpecialGroup],
    rules: Triage,
) -> TriageResult:
    """Priority and green channel from the category, special groups and keywords."""
    priority = rules.categories[category]
    reasons = [f"category:{category}"]
    groups: list[SpecialGroup] = list(dict.fromkeys(special_groups))
    fired = fired_rules(fold(description), rules)
    for rule in fired:
        groups.extend(g for g in rule.groups if g not in groups)
    for rule in fired:
        if rule.needs_group and not groups:
            continue
        reasons.append(f"keyword:{rule.id}")
        if rule.priority is not None:
            priority = min(priority, rule.priority)
    reasons.extend(f"special_group:{g}" for g in groups)
    special = [g for g in groups if g in rules.green_groups]
    if special and category in rules.group_categories:
        priority = min(priority, rules.group_priority)
    green = bool(special) or priority in rules.green_channel_priorities
    return TriageResult(priority, green, tuple(groups), tuple(reasons))
