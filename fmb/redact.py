"""Keep secrets (API keys, tokens, credentials) out of Parquet, logs and reports."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

MASK = "***"

SECRET_KEY = re.compile(
    r"(secret|passw|api[_-]?key|subscription[_-]?key|private[_-]?key|authori[sz]ation|credential|cookie|bearer"
    r"|auth[a-z]*[_-]?token|access[_-]?token"
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
# user:password@ in a URL, and secret-looking query parameters (?api_key=..., &token=..., &sig=...).
_URL_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")
_URL_SECRET_PARAM = re.compile(
    r"(?i)([?&](?:api[_-]?key|key|[a-z_]*token|secret|password|sig|signature|x-amz-[a-z-]+)=)[^&\s#]+")
# ... and inside a command line written as one string ("--api-key KEY", "--token=T").
_INLINE_SECRET_FLAG = re.compile(r"(?i)(--?[a-z-]*(?:api[-_]?key|token|password|secret)(?:=|\s+))[^\s]+")
# A command-line flag whose next argument is a secret (--api-key KEY, --token T, ...).
_SECRET_FLAG = re.compile(r"(?i)^--?[a-z-]*(api[-_]?key|token|password|secret)$")


def is_secret_key(key: str) -> bool:
    return bool(SECRET_KEY.search(key)) and not _TEXT_TOKENS.match(key)


def redact_mapping(value: Any, redact: Redactor | None = None) -> Any:
    """A copy of nested dicts/lists with secrets masked: the values of secret-looking keys,
    the argument after a secret-looking command-line flag, and (through ``redact``) known
    secret values and secret-shaped strings anywhere."""
    redact = redact or Redactor()
    if isinstance(value, dict):
        return {
            k: (MASK if is_secret_key(str(k)) and v not in (None, "") else redact_mapping(v, redact))
            for k, v in value.items()
        }
    if isinstance(value, list):
        out = []
        for i, item in enumerate(value):
            after_flag = i > 0 and isinstance(value[i - 1], str) and bool(_SECRET_FLAG.match(value[i - 1]))
            out.append(MASK if after_flag else redact_mapping(item, redact))
        return out
    if isinstance(value, str):
        return redact(value)
    return value


class Redactor:
    """Masks known secret values, anything shaped like a key, and credentials in URLs, in free text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def __call__(self, text: str | None) -> str | None:
        if text is None:
            return None
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        for shape in _SECRET_SHAPES:
            text = shape.sub(MASK, text)
        text = _INLINE_SECRET_FLAG.sub(r"\1" + MASK, text)
        text = _URL_USERINFO.sub(MASK + "@", text)
        return _URL_SECRET_PARAM.sub(r"\1" + MASK, text)
