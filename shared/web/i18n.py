"""Languages of the pages: message catalogues and the choice of a request's language.

Catalogues are TOML files, one per language (``zh.toml``, ``en.toml``, ``ru.toml``), flat or
in tables (``[form] title = "…"`` is the key ``form.title``). The shared catalogue
(``shared/web/messages/``) is read first, a service's own one (``services/<svc>/messages/``)
second, so a service may add keys and override shared ones. Every language must have the same
keys (:func:`missing_keys`; a unit test checks it).
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, get_args

Language = Literal["zh", "en", "ru"]
LANGUAGES: Final[tuple[Language, ...]] = get_args(Language)
DEFAULT_LANGUAGE: Final[Language] = "zh"
LANG_COOKIE: Final = "lang"
# The name each language has in itself, for the language switch.
NATIVE_NAMES: Final[dict[Language, str]] = {"zh": "中文", "en": "English", "ru": "Русский"}
HTML_LANG: Final[dict[Language, str]] = {"zh": "zh-Hans", "en": "en", "ru": "ru"}


def as_language(value: str | None) -> Language | None:
    """``value`` if it names a page language (``zh``, ``zh-CN``, ``en-GB``, ``RU``…), else None."""
    if not value:
        return None
    primary = value.strip().lower().replace("_", "-").split("-", 1)[0]
    return primary if primary in LANGUAGES else None


def parse_accept_language(header: str | None) -> list[Language]:
    """The page languages an ``Accept-Language`` header asks for, best first (q=0 excluded)."""
    if not header:
        return []
    ranked: list[tuple[float, int, Language]] = []
    for index, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        lang = as_language(tag)
        if lang is not None and quality > 0:
            ranked.append((-quality, index, lang))
    seen: list[Language] = []
    for _, _, lang in sorted(ranked):
        if lang not in seen:
            seen.append(lang)
    return seen


def negotiate(
    *, query: str | None = None, cookie: str | None = None, accept_language: str | None = None
) -> Language:
    """The page's language: ``?lang=``, then the ``lang`` cookie, then Accept-Language, then zh."""
    for choice in (as_language(query), as_language(cookie)):
        if choice is not None:
            return choice
    asked = parse_accept_language(accept_language)
    return asked[0] if asked else DEFAULT_LANGUAGE


def _flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{name}."))
        else:
            out[name] = str(value)
    return out


@dataclass(frozen=True)
class Catalogue:
    """Messages by language and key."""

    messages: Mapping[Language, Mapping[str, str]]

    @classmethod
    def load(cls, directories: Iterable[Path]) -> Catalogue:
        """Reads ``<lang>.toml`` from each directory in turn; later ones add and override."""
        merged: dict[Language, dict[str, str]] = {lang: {} for lang in LANGUAGES}
        for directory in directories:
            for lang in LANGUAGES:
                path = directory / f"{lang}.toml"
                if path.exists():
                    merged[lang].update(_flatten(tomllib.loads(path.read_text("utf-8"))))
        return cls(messages=merged)

    def gettext(self, lang: Language, key: str, **values: object) -> str:
        """The message ``key`` in ``lang`` (else in zh, else the key itself), formatted."""
        text = self.messages[lang].get(key) or self.messages[DEFAULT_LANGUAGE].get(key) or key
        return text.format(**values) if values else text

    def translator(self, lang: Language) -> Translator:
        return Translator(self, lang)

    def missing_keys(self) -> dict[Language, set[str]]:
        """Keys some language has and another lacks, by the language lacking them."""
        every = set().union(*(set(m) for m in self.messages.values()))
        return {
            lang: every - set(self.messages[lang])
            for lang in LANGUAGES
            if every - set(self.messages[lang])
        }


@dataclass(frozen=True)
class Translator:
    """``_("form.title")`` or ``_("tracking.code", code=…)`` in one language (templates' ``_``)."""

    catalogue: Catalogue
    lang: Language

    def __call__(self, key: str, **values: object) -> str:
        return self.catalogue.gettext(self.lang, key, **values)

    def has(self, key: str) -> bool:
        return key in self.catalogue.messages[self.lang]
