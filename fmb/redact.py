"""Keep secrets (API keys, tokens, credentials) out of Parquet, logs and reports."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

MASK = "***"

SECRET_KEY = re.compile(
    r"(secret|passw|api[_-]?key|authori[sz]ation|credential|cookie|bearer|auth[a-z]*[_-]?token|access[_-]?token"
    r"|session[_-]?token|(^|[_-])token$)",
    re.I,
)
# Keys that end in "token" but name a piece of generated text, not a credential.
_TEXT_TOKENS = re.compile(r"^(start|stop|eos|bos|pad|unk|sep|cls|mask)[_-]?token$", re.I)
_SECRET_SHAPES = [
    re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]+"),
    re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
    re.compile(r"\bsk-[A-Za-z0-9_-]{8,}\b"),
    re.compile(r"\bhf_[A-Za-z0-9]{8,}\b"),
]


def is_secret_key(key: str) -> bool:
    return bool(SECRET_KEY.search(key)) and not _TEXT_TOKENS.match(key)


def redact_mapping(value: Any) -> Any:
    """A copy of nested dicts/lists with the values of secret-looking keys masked."""
    if isinstance(value, dict):
        return {
            k: (MASK if is_secret_key(str(k)) and v not in (None, "") else redact_mapping(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact_mapping(v) for v in value]
    return value


class Redactor:
    """Masks known secret values, and anything shaped like a key, in free text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def __call__(self, text: str | None) -> str | None:
        if text is None:
            return None
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        for shape in _SECRET_SHAPES:
            text = shape.sub(MASK, text)
        return text
