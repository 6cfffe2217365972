"""Removal of secrets from any text that leaves the process (pure)."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import quote, quote_plus

MASK = "***"


class Redactor:
    """Replaces every known secret, and its URL-encoded forms, with ***."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        forms: set[str] = set()
        for s in secrets:
            # Short values would mask ordinary words; config secrets are long in practice.
            if not s or len(s) < 4:
                continue
            forms.update({s, quote(s, safe=""), quote_plus(s)})
        # Longest first, so a secret that contains another is masked whole.
        self._forms = sorted(forms, key=len, reverse=True)

    def __call__(self, text: str | None) -> str | None:
        if text is None or not self._forms:
            return text
        for form in self._forms:
            if form in text:
                text = text.replace(form, MASK)
        return text

    def text(self, text: str) -> str:
        return self(text) or ""
