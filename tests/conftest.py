"""Shared fixtures: paths, a config writer, and the CLI runner."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parent.parent
MISTRAL_TOKENIZER = ROOT / "tests" / "fixtures" / "tokenizers" / "mistral-7b" / "tokenizer.json"
# FMBench's configs and prompt templates, laid beside the checkout by CI (see shared/fixtures/README.md).
SHARED_FIXTURES = ROOT.parent / "shared" / "fixtures"


def pytest_configure(config: pytest.Config) -> None:
    # fmb fetches CloudWatch metrics after a SageMaker or Bedrock run; a test that points its
    # clients at local servers and not CloudWatch gets a local port nothing listens on (a
    # note in the run), never AWS itself.
    os.environ.setdefault("AWS_ENDPOINT_URL_CLOUDWATCH", "http://127.0.0.1:9")


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
