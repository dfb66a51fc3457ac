"""A non-editable wheel install works outside the checkout: prepare, collect, build and report.

The slow test builds the wheel from a copy of the working tree, installs it with
``--no-deps`` into a fresh venv (no pip in it; this venv's pip installs into it), and
makes the dependencies importable with a .pth file naming this venv's site-packages. A
.pth file's folder lines are only appended to sys.path: the .pth files inside that
folder, among them the editable install's finder, are not run, so only the wheel's fmb
can be imported. The test checks that before it runs any command.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import venv
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from textwrap import dedent

import pyarrow.parquet as pq
import pytest

from fmb.collector.mock.process import mock_server
from tests.conftest import MISTRAL_TOKENIZER

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
# What the wheel build needs of the working tree is everything but these (top level, or any level for caches).
_NOT_COPIED = {".git", ".venv", ".hypothesis", ".pytest_cache", "results", "build", "dist", "tests", "bench"}


def test_every_package_of_the_tree_is_listed() -> None:
    """A package folder missing from [tool.setuptools] packages would be missing from the wheel."""
    found = set()
    for name, folder in PYPROJECT["package-dir"].items():
        if name == "fmb._project":  # data only, the repository root
            continue
        for init in (ROOT / folder).rglob("__init__.py"):
            if "__pycache__" not in init.parts:
                relative = init.parent.relative_to(ROOT / folder).parts
                found.add(".".join((name, *relative)))
    assert found == set(PYPROJECT["packages"]) - {"fmb._project"}


def test_package_data_covers_the_dbt_project_and_the_configs() -> None:
    """Every file of dbt_project/ and configs/, and the two root yml files, matches a package-data pattern."""
    patterns = PYPROJECT["package-data"]["fmb._project"]
    shipped = {path for pattern in patterns for path in ROOT.glob(pattern) if path.is_file()}
    wanted = {ROOT / "dbt_project.yml", ROOT / "profiles.yml"} | {
        path
        for folder in ("dbt_project", "configs")
        for path in (ROOT / folder).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and not path.name.startswith(".")
    }
    assert sorted(map(str, wanted - shipped)) == []


def _run(args: list[str | Path], *, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120) -> str:
    done = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{' '.join(map(str, args))} exited {done.returncode}:\n{output}"
    return output


def _can_build_here() -> bool:
    """Whether this venv has the build-system requirements of pyproject.toml (setuptools>=68, wheel)."""
    try:
        setuptools = tuple(int(part) for part in version("setuptools").split(".")[:2])
        version("wheel")
    except (PackageNotFoundError, ValueError):
        return False
    return setuptools >= (68, 0)


def _build_wheel(tmp: Path) -> Path:
    source = tmp / "source"
    shutil.copytree(
        ROOT,
        source,
        ignore=lambda folder, names: {
            n
            for n in names
            if n == "__pycache__" or n.endswith(".egg-info") or (Path(folder) == ROOT and n in _NOT_COPIED)
        },
    )
    dist = tmp / "dist"
    # With the build backend in this venv nothing is fetched (no build isolation, no index);
    # without it (a fresh `./dev test` venv has Python's setuptools 65 and no wheel) pip gets
    # it from the package index, as the editable install of `./dev test` does.
    offline = ["--no-build-isolation", "--no-index"] if _can_build_here() else []
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", *offline, "-q", "-w", dist, source], cwd=tmp)
    (wheel,) = dist.glob("fmb-*.whl")
    return wheel


def _fresh_venv(tmp: Path, wheel: Path) -> tuple[Path, Path]:
    """A venv holding the wheel's fmb, with this venv's site-packages (not its .pth files) for the dependencies."""
    env_dir = tmp / "venv"
    venv.create(env_dir, with_pip=False, symlinks=True)
    python = env_dir / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "-q", wheel], cwd=tmp)
    site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], cwd=tmp).strip())
    ours = dict.fromkeys([sysconfig.get_path("purelib"), sysconfig.get_path("platlib")])
    (site / "fmb_test_dependencies.pth").write_text("".join(f"{path}\n" for path in ours), encoding="utf-8")
    return env_dir, site


def _config(folder: Path, url: str) -> Path:
    """Synthetic prompts through fmb's bundled prompt template, priced by fmb's bundled pricing.yml."""
    folder.mkdir()
    tokenizer = folder / "tokenizer.json"
    shutil.copyfile(MISTRAL_TOKENIZER, tokenizer)
    config = folder / "config.yml"
    config.write_text(
        dedent(f"""
        general: {{name: wheel-bench, model_name: mock}}
        s3_read_data:
          source_data_files: ["synthetic:exact-lengths"]
          prompt_template_file: prompt_template_mistral.txt
        datasets:
          tokenizer: {tokenizer}
          prompt_template_keys: [input, context]
          min_iters_per_combination: 4
          max_iters_per_combination: 4
          synthetic: {{prompts_per_filter: 4}}
          filters:
          - {{language: en, min_length_in_tokens: 40, max_length_in_tokens: 60, payload_file: payload_en_40-60.jsonl}}
        inference_parameters:
          chat: {{max_tokens: 8, temperature: 0.1}}
        experiments:
        - name: mock-endpoint
          api: openai-chat
          endpoint_url: {url}/v1
          instance_type: local.1-vcpu
          stream: true
          inference_spec: {{parameter_set: chat}}
          payload_files: [payload_en_40-60.jsonl]
          concurrency_levels: [1, 2]
        """),
        encoding="utf-8",
    )
    return config


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_wheel_install_runs_prepare_collect_build_report_outside_the_checkout(tmp_path: Path) -> None:
    wheel = _build_wheel(tmp_path)
    env_dir, site = _fresh_venv(tmp_path, wheel)
    installed = site / "fmb"
    work = tmp_path / "work"  # empty, outside the checkout: the results go to ./results
    work.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV") and not k.startswith("FMB_")
    }
    env["PATH"] = f"{env_dir / 'bin'}{os.pathsep}{env['PATH']}"
    fmb = env_dir / "bin" / "fmb"

    where = _run(
        [
            env_dir / "bin" / "python",
            "-c",
            "import fmb, fmb.collector, fmb.reports, fmb.paths as p; "
            "print(fmb.__file__, fmb.collector.__file__, fmb.reports.__file__, p.PROJECT_ROOT, p.METRIC_DOCS, "
            "sep='\\n')",
        ],
        cwd=work,
        env=env,
    ).split()
    for path in where:  # the wheel's fmb runs, and finds its own files in the installed package
        assert Path(path).is_relative_to(installed), where
    assert Path(where[3]) == installed / "_project"

    def snapshot() -> set[str]:
        return {str(p.relative_to(installed)) for p in installed.rglob("*") if "__pycache__" not in p.parts}

    before = snapshot()
    with mock_server(fmb=[str(fmb)], cwd=work, env=env, ttft_ms=5, itl_ms=1, output_tokens=8) as url:
        config = _config(tmp_path / "inputs", url)
        _run([fmb, "prepare", config], cwd=work, env=env)
        (payload,) = (work / "results" / "payloads").glob("*/payload_en_40-60.jsonl")
        assert "[INST]" in payload.read_text(encoding="utf-8")  # fmb's bundled prompt_template_mistral.txt
        _run([fmb, "collect", config, "--quiet"], cwd=work, env=env)
    built = _run([fmb, "build"], cwd=work, env=env, timeout=240)
    reported = _run([fmb, "report"], cwd=work, env=env)
    assert sorted(snapshot() ^ before) == []  # nothing written into site-packages (no target/, logs/, dbt_packages/)
    assert not (work / "target").exists() and not (work / "logs").exists(), sorted(os.listdir(work))

    results = work / "results"
    assert "dbt build" in built
    for model in sorted((installed / "_project" / "dbt_project" / "models" / "marts").glob("*.sql")):
        if "materialized='view'" in model.read_text(encoding="utf-8"):
            continue  # a mart kept as a view (requests) is not copied out
        parts = list((results / "marts" / model.stem).glob("*.parquet"))
        assert parts, f"no Parquet for mart {model.stem}"
    cells = pq.read_table(results / "marts" / "cells").to_pylist()
    assert {(c["concurrency"], c["count_requests"]) for c in cells} == {(1, 4), (2, 8)}
    assert {c["price_status"] for c in cells} != {"unpriced"}, cells  # the bundled pricing.yml was read
    (report,) = (results / "reports").glob("*/report.md")
    assert str(report.relative_to(work)) in reported.replace("\n", ""), reported
    text = report.read_text(encoding="utf-8")
    assert "**ttft_ms**" in text  # the metric definitions, from the installed docs.md
    assert list(report.parent.glob("*.png"))
