"""Every command describes itself, and the package maps the folders into fmb.*."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest

from fmb.cli import cli


def all_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = [prefix]
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            out += all_commands(command, (*prefix, name))
        else:
            out.append((*prefix, name))
    return out


@pytest.mark.parametrize("path", all_commands(cli), ids=lambda p: " ".join(p) or "fmb")
def test_every_command_has_help(cli_runner, path: tuple[str, ...]) -> None:
    result = cli_runner.invoke(cli, [*path, "--help"])
    assert result.exit_code == 0
    assert "Usage:" in result.output
    # The first line of the docstring is the summary; it must say something.
    body = result.output.split("\n\n", 2)[1].strip()
    assert len(body) > 20


def test_expected_commands_exist() -> None:
    names = {" ".join(p) for p in all_commands(cli)}
    assert {"config check", "prepare", "collect", "mock-server"} <= names


def test_the_fmb_entry_point_runs() -> None:
    done = subprocess.run([sys.executable, "-m", "fmb", "--version"], capture_output=True, text=True, check=True)
    assert done.stdout.startswith("fmb, version")


def test_folders_are_mapped_into_the_fmb_namespace(tmp_path) -> None:
    """Installed, the folders are fmb.collector etc.; no generic top-level `collector` module."""
    code = (
        "import fmb.collector.targets.openai, fmb.deployers, fmb.reports, importlib.util, sys;"
        "sys.exit(0 if importlib.util.find_spec('collector') is None else 3)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    ("key", "secret"),
    [
        ("api_key", True),
        ("x-api-key", True),
        ("Authorization", True),
        ("custom_authentication_token", True),
        ("hf_token", True),
        ("token", True),
        ("aws_secret_access_key", True),
        ("password", True),
        ("max_tokens", False),
        ("max_new_tokens", False),
        ("tokenizer", False),
        ("min_length_in_tokens", False),
        ("stop_token", False),
        ("start_token", False),
        ("prompt_tokens", False),
        ("content-type", False),
    ],
)
def test_secret_keys(key: str, secret: bool) -> None:
    from fmb.redact import is_secret_key

    assert is_secret_key(key) is secret


def test_redactor_masks_known_values_and_key_shapes() -> None:
    from fmb.redact import Redactor

    redact = Redactor(["hunter2-token-value"])
    text = redact("bad auth hunter2-token-value; Bearer abc.def; key AKIAABCDEFGHIJKLMNOP; sk-abcdefghijkl")
    assert "hunter2" not in text and "abc.def" not in text and "AKIA" not in text and "sk-abc" not in text


def test_secrets_are_masked_wherever_they_hide() -> None:
    from fmb.redact import Redactor, redact_mapping

    config = {
        "local": {"command": ["vllm", "serve", "--api-key", "abc123", "--port", "8000"]},
        "endpoint_url": "https://user:pass@host/v1?api_key=zzz&model=m",
        "cli_params": "--max-model-len 4096 --api-key=qwerty",
        "tags": ["sk-abcdefghijklmnop", "plain"],
        "headers": {"Ocp-Apim-Subscription-Key": "value1", "x-trace": "known-secret-1"},
        "max_tokens": 100,
    }
    masked = redact_mapping(config, Redactor(["known-secret-1"]))
    text = repr(masked)
    for secret in ("abc123", "user:pass", "zzz", "qwerty", "sk-abcdefghijklmnop", "value1", "known-secret-1"):
        assert secret not in text, secret
    assert masked["local"]["command"][-1] == "8000" and masked["max_tokens"] == 100
    assert "model=m" in masked["endpoint_url"] and "4096" in masked["cli_params"]
