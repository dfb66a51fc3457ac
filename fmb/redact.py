"""Keep secrets (API keys, tokens, credentials) out of Parquet, logs, reports and the console.

What counts as secret (see :func:`config_secrets`):

- every HTTP header value, but for the few headers in :data:`HARMLESS_HEADERS`;
- the value read through ``api_key_env``;
- URL userinfo (``http://user:password@host``), both parts, and the HTTP basic
  credential a client builds from them;
- every ``-A key=value`` value, but for the names in :data:`HARMLESS_ASSIGNMENTS`
  and values that are plain numbers or booleans; a value that ends up in a header is
  always secret;
- the values of keys whose name looks secret (``api_key``, ``password``, ``hf_token``, ...)
  and strings shaped like well-known keys.

In config data (``config_json``, the report's config section) header values are masked by
position whatever their length. In free text (error messages, response text, console
output) a known value is replaced by ``***`` wherever it occurs when it is at least
:data:`MIN_SECRET_LENGTH` characters long (shorter values would wreck the text and are
not worth guessing); ``-A`` values whose meaning fmb cannot know are replaced only as
whole words, so that ``-A tier=gold`` does not turn "golden" into "***en".
Masking applies to what fmb writes and prints, never to what it sends.
"""

from __future__ import annotations

import base64
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from typing import IO, Any
from urllib.parse import unquote

MASK = "***"
# Known secret values shorter than this are not masked in free text.
MIN_SECRET_LENGTH = 4

# Headers whose values say nothing secret; every other header value is secret.
HARMLESS_HEADERS = frozenset(
    {
        "accept",
        "accept-charset",
        "accept-encoding",
        "accept-language",
        "cache-control",
        "connection",
        "content-encoding",
        "content-type",
        "keep-alive",
        "pragma",
        "user-agent",
    }
)
# FMBench's -A names for regions, buckets, roles, local folders and what is benchmarked:
# their values are names and paths that the report must be able to show.
HARMLESS_ASSIGNMENTS = frozenset(
    {
        "region",
        "write_bucket",
        "read_bucket",
        "role_arn",
        "write_tmpdir",
        "read_tmpdir",
        "results_dir",
        "tmp_dir",
        "model_id",
        "hf_model_id",
        "hf_tokenizer_model_id",
        "model_name",
        "instance_type",
        "image_uri",
        "container_type",
        "backend",
        "tp_degree",
        "model_copies",
        "batch_size",
        "cli_params",
        "shm_size",
    }
)
# -A values that cannot be secrets: numbers and booleans.
_PLAIN_VALUE = re.compile(r"^(?:[+-]?\d+(?:\.\d+)?|true|false|yes|no|on|off|none|null)$", re.I)
# A part of a header value ("Bearer <token>", "Basic <b64>") at least this long is secret on its own.
_HEADER_PART_LENGTH = 8

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
_URL_WITH_USERINFO = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://([^/?#@\s]+)@")
_URL_SECRET_PARAM = re.compile(
    r"(?i)([?&](?:api[_-]?key|key|[a-z_]*token|secret|password|sig|signature|x-amz-[a-z-]+)=)[^&\s#]+"
)
# ... and inside a command line written as one string ("--api-key KEY", "--token=T").
_INLINE_SECRET_FLAG = re.compile(r"(?i)(--?[a-z-]*(?:api[-_]?key|token|password|secret)(?:=|\s+))[^\s]+")
# A command-line flag whose next argument is a secret (--api-key KEY, --token T, ...).
_SECRET_FLAG = re.compile(r"(?i)^--?[a-z-]*(api[-_]?key|token|password|secret)$")


def is_secret_key(key: str) -> bool:
    return bool(SECRET_KEY.search(key)) and not _TEXT_TOKENS.match(key)


def is_harmless_header(name: str) -> bool:
    return str(name).strip().lower() in HARMLESS_HEADERS


def header_secrets(headers: Mapping[Any, Any]) -> list[str]:
    """The secret values of a header mapping: each value, and its long whitespace-separated parts."""
    values = []
    for name, value in headers.items():
        if value is None or is_harmless_header(str(name)):
            continue
        text = str(value)
        values.append(text)
        values.extend(part for part in text.split() if len(part) >= _HEADER_PART_LENGTH)
    return values


def url_secrets(text: str) -> tuple[list[str], list[str]]:
    """The userinfo of every URL in ``text``: (credentials, user names).

    Credentials are the password as written and decoded, and the HTTP basic credential
    (base64 of ``user:password``) a client sends for it; a userinfo without a password
    (``https://TOKEN@host``) is a credential as a whole. User names are masked as words.
    """
    credentials: list[str] = []
    users: list[str] = []
    for match in _URL_WITH_USERINFO.finditer(text):
        userinfo = match.group(1)
        user, sep, password = userinfo.partition(":")
        if not sep:
            credentials += [user, unquote(user)]
            continue
        credentials += [password, unquote(password)]
        users += [user, unquote(user)]
        basic = f"{unquote(user)}:{unquote(password)}".encode("latin-1", "replace")
        credentials.append(base64.b64encode(basic).decode("ascii"))
    return credentials, users


def assignment_secrets(assignments: Mapping[str, str], header_values: Iterable[str]) -> tuple[list[str], list[str]]:
    """-A values: (credentials, words). See the module's docstring for the rule."""
    headers = list(header_values)
    credentials: list[str] = []
    words: list[str] = []
    for name, raw in assignments.items():
        value = str(raw).strip()
        if not value:
            continue
        if is_secret_key(name) or any(value in h for h in headers):
            credentials.append(value)
        elif name not in HARMLESS_ASSIGNMENTS and not _PLAIN_VALUE.match(value):
            words.append(value)
    return credentials, words


def strings(value: Any) -> Iterator[str]:
    """Every string inside nested dicts and lists."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def redact_mapping(value: Any, redact: Redactor | None = None) -> Any:
    """A copy of nested dicts/lists with secrets masked: the values of secret-looking keys,
    header values (but for harmless headers), the argument after a secret-looking command-line
    flag, and (through ``redact``) known secret values and secret-shaped strings anywhere."""
    redact = redact or Redactor()
    if isinstance(value, dict):
        out: dict[Any, Any] = {}
        for k, v in value.items():
            if is_secret_key(str(k)) and v not in (None, ""):
                out[k] = MASK
            elif str(k) == "headers" and isinstance(v, dict):
                out[k] = {
                    h: (redact_mapping(hv, redact) if is_harmless_header(str(h)) or hv is None else MASK)
                    for h, hv in v.items()
                }
            else:
                out[k] = redact_mapping(v, redact)
        return out
    if isinstance(value, list):
        out_list = []
        for i, item in enumerate(value):
            after_flag = i > 0 and isinstance(value[i - 1], str) and bool(_SECRET_FLAG.match(value[i - 1]))
            out_list.append(MASK if after_flag else redact_mapping(item, redact))
        return out_list
    if isinstance(value, str):
        return redact(value)
    return value


def _longest_first(values: Iterable[str]) -> list[str]:
    return sorted({v for v in values if v and len(v) >= MIN_SECRET_LENGTH}, key=len, reverse=True)


class Redactor:
    """Masks known secret values, anything shaped like a key, and credentials in URLs, in free text.

    ``secrets`` are masked wherever they occur, ``words`` only where they stand as a whole word.
    """

    def __init__(self, secrets: Iterable[str] = (), words: Iterable[str] = ()) -> None:
        self.secrets = _longest_first(secrets)
        known = set(self.secrets)
        self.words = [w for w in _longest_first(words) if w not in known]
        self._words = (
            re.compile(r"(?<![A-Za-z0-9])(?:" + "|".join(map(re.escape, self.words)) + r")(?![A-Za-z0-9])")
            if self.words
            else None
        )

    def known(self, text: str | None) -> str | None:
        """Only the known values masked: cheap enough for the text of every response, and it
        leaves generated text that merely looks like a key alone."""
        if not text:
            return text
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        if self._words is not None and any(w in text for w in self.words):
            text = self._words.sub(MASK, text)
        return text

    def shortened(self, text: str, limit: int) -> str:
        """``text`` masked and cut to ``limit`` characters. A text that already reached the limit
        may have been cut before (an error body is): the beginning of a secret at its very end
        is masked too."""
        masked = self(text) or ""
        if len(text) >= limit:
            for secret in self.secrets + self.words:
                cut = next(
                    (k for k in range(len(secret) - 1, MIN_SECRET_LENGTH - 1, -1) if masked.endswith(secret[:k])), None
                )
                if cut is not None:
                    masked = masked[:-cut] + MASK
                    break
        return masked[:limit]

    def __call__(self, text: str | None) -> str | None:
        if text is None:
            return None
        text = self.known(text) or ""
        for shape in _SECRET_SHAPES:
            text = shape.sub(MASK, text)
        text = _INLINE_SECRET_FLAG.sub(r"\1" + MASK, text)
        text = _URL_USERINFO.sub(MASK + "@", text)
        return _URL_SECRET_PARAM.sub(r"\1" + MASK, text)


class RedactingStream:
    """A text stream for a rich Console that masks known secrets in everything written.

    It writes to ``sys.stdout`` (or ``sys.stderr``) as they are at the time of writing,
    so output captured by a test runner is masked too. The command line sets ``redact``
    as soon as it knows the secrets (from -A, then from the loaded config).
    """

    def __init__(self, stderr: bool = False) -> None:
        self.stderr = stderr
        self.redact = Redactor()

    @property
    def stream(self) -> IO[str]:
        stream = sys.stderr if self.stderr else sys.stdout
        # A live progress display swaps sys.stdout for a proxy that prints through the console.
        return getattr(stream, "rich_proxied_file", stream)

    def write(self, text: str) -> int:
        return self.stream.write(self.redact.known(text) or "")

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()

    @property
    def encoding(self) -> str:
        return getattr(self.stream, "encoding", None) or "utf-8"
