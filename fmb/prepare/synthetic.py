"""Built-in datasets that need no download, generated deterministically from a seed.

``synthetic:longbench``: question-over-context records in LongBench's format
(``input``, ``context``, ``answers``, ``length``, ``dataset``, ``language``,
``all_classes``, ``_id``). Each context is a list of made-up facts about made-up
places, padded with filler sentences; the question asks for one of the facts and
``answers`` holds it, so answers can be checked later.

``synthetic:exact-lengths``: for every filter, prompts whose token count (with the
config's tokenizer and prompt template) is exactly a length drawn from a distribution
over the filter's range.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator
from typing import Any

from fmb.config.schema import Filter, Synthetic

# Short, common English words: one token each in the usual BPE and SentencePiece
# vocabularies when preceded by a space, so n words add n tokens.
WORDS = [
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "that",
    "for",
    "it",
    "as",
    "was",
    "with",
    "be",
    "by",
    "on",
    "not",
    "he",
    "this",
    "are",
    "or",
    "his",
    "from",
    "at",
    "which",
    "but",
    "have",
    "an",
    "they",
    "you",
    "were",
    "her",
    "she",
    "there",
    "been",
    "one",
    "all",
    "we",
    "their",
    "has",
    "would",
    "when",
    "if",
    "so",
    "no",
    "will",
    "can",
    "more",
    "about",
    "said",
    "time",
    "only",
    "new",
    "some",
    "could",
    "these",
    "two",
    "may",
    "first",
    "then",
    "do",
    "any",
    "like",
    "my",
    "now",
    "over",
    "such",
    "our",
    "man",
    "me",
    "even",
    "most",
    "made",
    "after",
    "also",
    "did",
    "many",
    "before",
    "must",
    "through",
    "back",
    "years",
    "where",
    "much",
    "your",
    "way",
    "well",
    "down",
    "should",
    "because",
    "each",
    "just",
    "those",
    "people",
    "how",
    "too",
    "little",
    "state",
    "good",
    "very",
    "make",
    "world",
    "still",
    "own",
    "see",
    "men",
    "work",
    "long",
    "get",
    "here",
    "between",
    "both",
    "life",
    "being",
    "under",
    "never",
    "day",
    "same",
    "another",
    "know",
    "while",
    "last",
    "might",
    "us",
    "great",
    "old",
    "year",
    "off",
    "come",
    "since",
    "against",
    "go",
    "came",
    "right",
    "used",
    "take",
    "three",
]

_SYLLABLES = [
    "ka",
    "lo",
    "mi",
    "ra",
    "ve",
    "tu",
    "na",
    "si",
    "po",
    "re",
    "da",
    "fe",
    "lu",
    "mo",
    "zi",
    "qua",
    "ren",
    "tal",
    "vor",
    "bel",
]
_ATTRIBUTES = [
    ("capital", "The capital of {place} is {value}."),
    ("river", "The longest river in {place} is the {value}."),
    ("founder", "{place} was founded by a sailor named {value}."),
    ("festival", "Every spring {place} celebrates the festival of {value}."),
    ("export", "The main export of {place} is {value}."),
]
_QUESTIONS = {
    "capital": "What is the capital of {place}?",
    "river": "What is the longest river in {place}?",
    "founder": "Who founded {place}?",
    "festival": "Which festival does {place} celebrate every spring?",
    "export": "What is the main export of {place}?",
}


def _name(rng: random.Random, parts: int) -> str:
    return "".join(rng.choice(_SYLLABLES) for _ in range(parts)).capitalize()


def _filler(rng: random.Random, words: int) -> list[str]:
    out: list[str] = []
    while len(out) < words:
        n = rng.randint(6, 14)
        sentence = [rng.choice(WORDS) for _ in range(n)]
        sentence[0] = sentence[0].capitalize()
        sentence[-1] += "."
        out.extend(sentence)
    return out[:words]


def longbench_records(spec: Synthetic) -> list[dict[str, Any]]:
    """``spec.records`` question-over-context records; context lengths log-uniform in words."""
    rng = random.Random(spec.seed)
    low, high = math.log(spec.min_context_words), math.log(max(spec.max_context_words, spec.min_context_words))
    records = []
    for i in range(spec.records):
        target_words = round(math.exp(rng.uniform(low, high)))
        places = [_name(rng, rng.randint(2, 3)) for _ in range(rng.randint(2, 5))]
        facts = []
        for place in places:
            attr, sentence = rng.choice(_ATTRIBUTES)
            value = _name(rng, rng.randint(2, 3))
            facts.append((place, attr, value, sentence.format(place=place, value=value)))
        place, attr, answer, _ = rng.choice(facts)
        fact_words = sum(len(f[3].split()) for f in facts)
        filler = _filler(rng, max(target_words - fact_words, 0))
        # Spread the facts through the filler.
        chunks: list[str] = []
        step = max(len(filler) // (len(facts) + 1), 1)
        for j, fact in enumerate(facts):
            chunks.extend(filler[j * step : (j + 1) * step])
            chunks.append(fact[3])
        chunks.extend(filler[len(facts) * step :])
        context = " ".join(chunks)
        records.append(
            {
                "input": _QUESTIONS[attr].format(place=place),
                "context": context,
                "answers": [answer],
                "length": len(context.split()),
                "dataset": "fmb-synthetic-longbench",
                "language": "en",
                "all_classes": None,
                "_id": f"synthetic-{spec.seed}-{i:05d}",
            }
        )
    return records


def _draw_lengths(rng: random.Random, spec: Synthetic, low: int, high: int) -> Iterator[int]:
    """Target lengths in [low, high], drawn from ``spec.length_distribution``."""
    mid, spread = (low + high) / 2, max((high - low) / 6, 1)
    for _ in range(spec.prompts_per_filter):
        if spec.length_distribution == "uniform":
            value = rng.uniform(low, high)
        elif spec.length_distribution == "normal":
            value = rng.gauss(mid, spread)
        else:
            value = math.exp(rng.gauss(math.log(max(mid, 1)), 0.35))
        yield int(min(max(round(value), low), high))


def exact_length_records(
    spec: Synthetic,
    filters: list[Filter],
    keys: list[str],
    render: Callable[[dict[str, str]], str],
    count: Callable[[str], int],
) -> tuple[list[dict[str, Any]], list[str]]:
    """Records whose rendered prompt has exactly the drawn number of tokens.

    ``render`` fills the prompt template from a record, ``count`` counts its tokens.
    The body key (``context`` if the template has it, else its first key) receives the
    filler words; other keys get a short fixed question. Returns the records and notes
    for lengths that could not be hit exactly (the nearest length is kept then).
    """
    rng = random.Random(spec.seed)
    keys = keys or ["input"]
    body = "context" if "context" in keys else keys[0]
    fixed = {k: "What is the main topic of the text above?" for k in keys if k != body}
    notes: list[str] = []
    records: list[dict[str, Any]] = []
    for flt in filters:
        # Stay clear of the exclusive upper bound so the prompt lands in its own filter.
        low, high = flt.min_length_in_tokens, flt.max_length_in_tokens - 1
        for i, target in enumerate(_draw_lengths(rng, spec, max(low, 1), max(high, 1))):
            words = [rng.choice(WORDS) for _ in range(target + 8)]

            def size(n: int, words: list[str] = words) -> int:
                return count(render(fixed | {body: " ".join(words[:n])}))

            if size(0) > target:
                notes.append(
                    f"filter {flt.file_name()}: the prompt template alone has {size(0)} tokens, "
                    f"more than the drawn length {target}"
                )
                continue
            lo, hi = 0, len(words)
            while lo < hi:  # smallest n with size(n) >= target
                n = (lo + hi) // 2
                if size(n) >= target:
                    hi = n
                else:
                    lo = n + 1
            got = size(lo)
            if got != target and lo > 0 and target - size(lo - 1) < got - target:
                lo -= 1
                got = size(lo)
            if got != target:
                notes.append(f"filter {flt.file_name()}: length {target} cannot be hit exactly; used {got}")
            record = fixed | {
                body: " ".join(words[:lo]),
                "language": flt.language or "en",
                "dataset": "fmb-synthetic-exact-lengths",
                "_id": f"exact-{spec.seed}-{flt.file_name()}-{i:05d}",
                "target_tokens": target,
            }
            records.append(record)
    return records, notes
