"""Counting tokens on the client: a real tokenizer, or FMBench's 750 words = 1000 tokens rule.

A tokenizer is a Hugging Face ``tokenizer.json``: a local file or folder, or a hub model's
(``hf_tokenizer_model_id``), fetched through the hub's cache by :mod:`fmb.prepare.hub`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from fmb.errors import PrepareError
from fmb.prepare.hub import HubModel


class TokenCounter(Protocol):
    name: str

    def count(self, text: str) -> int:
        """Tokens in a prompt, as the server would count them (special tokens included)."""

    def count_completion(self, text: str) -> int:
        """Tokens in generated text (no special tokens added)."""

    def count_many(self, texts: list[str]) -> list[int]:
        """``count`` for many prompts at once."""

    def count_completions(self, texts: list[str]) -> list[int]:
        """``count_completion`` for many texts at once."""


@dataclass
class WordRule:
    """FMBench's fallback: ceil(words x 1000 / 750), words split on whitespace."""

    name: str = "words*4/3"

    def count(self, text: str) -> int:
        return math.ceil(len(text.split()) * 1000 / 750)

    def count_completion(self, text: str) -> int:
        return self.count(text)

    def count_many(self, texts: list[str]) -> list[int]:
        return [self.count(t) for t in texts]

    def count_completions(self, texts: list[str]) -> list[int]:
        return [self.count(t) for t in texts]


class HFTokenizer:
    """A Hugging Face ``tokenizer.json`` loaded with the ``tokenizers`` library (from a local file)."""

    def __init__(self, path: Path) -> None:
        from tokenizers import Tokenizer

        file = path / "tokenizer.json" if path.is_dir() else path
        try:
            self._tok = Tokenizer.from_file(str(file))
        except Exception as exc:  # the tokenizers library raises bare Exceptions
            raise PrepareError(
                f"cannot load the tokenizer {file}: {exc}",
                hint="Give a Hugging Face tokenizer.json file or a folder that holds one.",
            ) from None
        self.name = f"tokenizer:{path.name if path.is_dir() else path.parent.name or path.name}"
        self.path = file

    def count(self, text: str) -> int:
        return len(self._tok.encode(text).ids)

    def count_completion(self, text: str) -> int:
        return len(self._tok.encode(text, add_special_tokens=False))

    def count_many(self, texts: list[str]) -> list[int]:
        return [len(e.ids) for e in self._tok.encode_batch(texts)]

    def count_completions(self, texts: list[str]) -> list[int]:
        return [len(e.ids) for e in self._tok.encode_batch(texts, add_special_tokens=False)]


def load_counter(candidates: list[tuple[str, Path | HubModel]]) -> tuple[TokenCounter, str]:
    """The first candidate that holds a tokenizer.json, else the word rule.

    ``candidates`` are (origin, path or hub model) pairs in order of preference; an explicitly
    named tokenizer (origin ``datasets.tokenizer``) that does not exist is an error. A hub model
    that cannot be had (not cached and the hub unreachable, gated, missing) is passed over, and
    the note says why.
    Returns the counter and a sentence saying where it came from.
    """
    passed_over: list[str] = []
    for origin, where in candidates:
        if isinstance(where, HubModel):
            try:
                file = where.hub.tokenizer(where.model_id, f"{origin} {where.model_id!r}")
            except PrepareError as exc:
                passed_over.append(" ".join(str(exc).split()))
                continue
            tokenizer = HFTokenizer(file)
            tokenizer.name = f"tokenizer:{where.model_id}"
            return tokenizer, f"tokens counted with {where.model_id}'s tokenizer.json from the hub ({file})"
        file = where / "tokenizer.json" if where.is_dir() else where
        if file.is_file():
            return HFTokenizer(where), f"tokens counted with {file} (from {origin})"
        if origin == "datasets.tokenizer":
            raise PrepareError(
                f"datasets.tokenizer: {where} does not exist or holds no tokenizer.json.",
                hint="Point it at a tokenizer.json file or a folder that holds one, or remove it "
                "to count tokens with FMBench's rule of 750 words = 1000 tokens.",
            )
    rule = "tokens counted with FMBench's rule of 750 words = 1000 tokens"
    if passed_over:
        return WordRule(), " ".join(passed_over) + f" So {rule}."
    return WordRule(), f"no tokenizer found; {rule}"
