"""Shared fixtures: paths, a config writer, and the CLI runner."""

from __future__ import annotations

import os
import shutil
import tempfile
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parent.parent
MISTRAL_TOKENIZER = ROOT / "tests" / "fixtures" / "tokenizers" / "mistral-7b" / "tokenizer.json"
# FMBench's configs and prompt templates, laid beside the checkout by CI (see shared/fixtures/README.md).
SHARED_FIXTURES = ROOT.parent / "shared" / "fixtures"
_HF_HOME = pytest.StashKey[str]()


def pytest_configure(config: pytest.Config) -> None:
    # fmb fetches CloudWatch metrics after a SageMaker or Bedrock run; a test that points its
    # clients at local servers and not CloudWatch gets a local port nothing listens on (a
    # note in the run), never AWS itself.
    os.environ.setdefault("AWS_ENDPOINT_URL_CLOUDWATCH", "http://127.0.0.1:9")
    # No test reaches the real Hugging Face hub or writes into the user's cache: the hub is a
    # local port nothing listens on (tests that want one start tests/hf_hub.py's stand-in), and
    # huggingface_hub's cache and files live in a folder removed when the session ends.
    hf_home = tempfile.mkdtemp(prefix="fmb-tests-hf-")
    config.stash[_HF_HOME] = hf_home
    os.environ["HF_ENDPOINT"] = "http://127.0.0.1:9"
    os.environ["HF_HOME"] = hf_home
    os.environ["HF_HUB_CACHE"] = os.path.join(hf_home, "hub")


def pytest_unconfigure(config: pytest.Config) -> None:
    hf_home = config.stash.get(_HF_HOME, None)
    if hf_home:
        shutil.rmtree(hf_home, ignore_errors=True)


@pytest.fixture
def fmbench_fixtures() -> Path:
    path = SHARED_FIXTURES / "fmbench"
    if not path.is_dir():
        pytest.skip(f"FMBench fixture configs not found at {path} (they sit beside the checkout in CI)")
    return path


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    """Write a YAML config (dedented) into tmp_path and return its path."""

    def write(text: str, name: str = "config.yml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
        return path

    return write


@pytest.fixture
def cli_runner() -> CliRunner:
    return CliRunner()
