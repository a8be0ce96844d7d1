"""Secrets: which parameters are secret, and the one scrubber that keeps their values out of every record.

A parameter whose name looks secret (``api_token``, ``db_password``) is masked
in the run's parameters. Its *value* can still leave the stage another way: a
``print``, an exception message, a metric name, a check message. The driver
builds one :class:`Scrubber` per run from the secret values and passes every
string it records through it (errors, executed notebooks, stage records), so
every surface (CLI, server, report) reads masked data from the store.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, quote_plus

from nbops.plan.params import MASK, SECRET_RE, is_secret, mask_secrets

__all__ = ["MASK", "MIN_SECRET_LENGTH", "SECRET_RE", "Scrubber", "is_secret", "mask_secrets"]

# Shorter values would mask ordinary words and numbers everywhere ("1", "yes");
# a real credential is longer than this.
MIN_SECRET_LENGTH = 4


def _forms(value: str) -> set[str]:
    """The ways ``value`` shows up in text: as is, escaped inside a Python or JSON
    string, as a bytes repr, URL-encoded, HTML-escaped. Each form is the inside of
    its quotes, so ``'tok'`` becomes ``'***'`` and ``b'tok'`` becomes ``b'***'``."""
    forms = {
        value,
        repr(value)[1:-1],
        repr(value + "'\"")[1:-4],  # inside single quotes, as repr writes it when both quotes occur
        repr(value.encode("utf-8", "backslashreplace"))[2:-1],
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        quote(value, safe=""),
        quote_plus(value, safe=""),
        html.escape(value),
    }
    return {f for f in forms if len(f) >= MIN_SECRET_LENGTH}


class Scrubber:
    """Replaces every occurrence of each secret value (and its quoted, bytes,
    URL-encoded and HTML forms) with ``***``. No values: everything passes as is."""

    def __init__(self, values: Iterable[str]):
        forms: set[str] = set()
        for value in values:
            if isinstance(value, str) and len(value) >= MIN_SECRET_LENGTH:
                forms |= _forms(value)
        # Longest first: a form that contains another is replaced whole.
        self._pattern = re.compile("|".join(re.escape(f) for f in sorted(forms, key=lambda f: (-len(f), f)))) if forms else None

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Scrubber:
        """The scrubber of a run: the values of its secret parameters, as text."""
        return cls(str(v) for k, v in params.items() if is_secret(k) and v is not None)

    def __bool__(self) -> bool:
        return self._pattern is not None

    def text(self, s: str) -> str:
        if self._pattern is None or not isinstance(s, str):
            return s
        return self._pattern.sub(MASK, s)

    def json(self, obj: Any) -> Any:
        """A copy of ``obj`` with every string in it scrubbed, dict keys included."""
        return obj if self._pattern is None else self._walk(obj)

    def _walk(self, obj: Any) -> Any:
        if isinstance(obj, str):
            return self.text(obj)
        if isinstance(obj, Mapping):
            return {self.text(k) if isinstance(k, str) else k: self._walk(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [self._walk(v) for v in obj]
        if isinstance(obj, tuple):
            return tuple(self._walk(v) for v in obj)
        return obj
