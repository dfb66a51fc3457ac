"""The seams that hold the layout together: one back-end registry, one set of statuses
shared by Python and SQL, one protocol for every hosting option."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from fmb.collector.schemas import REQUEST_STATUSES, RUN_STATUSES, TOKEN_COUNT_SOURCES
from fmb.collector.targets import target_class
from fmb.collector.targets.base import Target
from fmb.config.backends import _CONTAINER_TYPES, _PREDICTOR_SCRIPTS, BACKENDS
from fmb.deployers import DEPLOYERS, deployer_for, deployer_of
from fmb.deployers.registry import Deployment
from fmb.errors import CollectError, FmbError
from tests.conftest import ROOT


def accepted_values(model: str, column: str) -> list[str]:
    models = ROOT / "dbt_project" / "models"
    entries = [
        m
        for layer in ("staging/_staging.yml", "intermediate/_intermediate.yml")
        for m in yaml.safe_load((models / layer).read_text())["models"]
    ]
    (entry,) = [m for m in entries if m["name"] == model]
    (col,) = [c for c in entry["columns"] if c["name"] == column]
    (test,) = [t["accepted_values"] for t in col["data_tests"] if isinstance(t, dict) and "accepted_values" in t]
    return test["arguments"]["values"]


@pytest.mark.parametrize(
    ("model", "column", "python"),
    [
        ("stg_raw__requests", "status", REQUEST_STATUSES),
        ("stg_raw__runs", "run_status", RUN_STATUSES),
        ("int_requests_classified", "token_count_source", TOKEN_COUNT_SOURCES),
    ],
)
def test_statuses_are_the_same_in_python_and_sql(model: str, column: str, python: tuple[str, ...]) -> None:
    assert sorted(accepted_values(model, column)) == sorted(python)


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_every_back_end_has_a_target(backend: str) -> None:
    assert issubclass(target_class(backend), Target)


def test_every_back_end_fmbench_keys_resolve_to_is_registered() -> None:
    produced = set(_PREDICTOR_SCRIPTS.values()) | set(_CONTAINER_TYPES.values())
    assert produced <= set(BACKENDS)


def test_an_unknown_back_end_is_an_error_not_a_default() -> None:
    with pytest.raises(CollectError, match=re.escape("no collector target for back end 'bedrok'")):
        target_class("bedrok")


def test_every_hosting_option_is_one_deployer(write_config, tmp_path: Path) -> None:
    from fmb.config import load_config

    kinds = [d.kind for d in DEPLOYERS]
    assert len(kinds) == len(set(kinds))
    assert set(kinds) == {"local", "sagemaker", "ec2", "eks"}
    config = write_config(
        """
        general: {name: d}
        experiments:
        - {name: loc, api: openai-chat, deploy: true, deployment_script: local.py, local: {server: llama.cpp},
           payload_files: [p.jsonl], concurrency_levels: [1]}
        - {name: sm, inference_script: sagemaker_predictor.py, ep_name: x, deploy: true,
           deployment_script: deploy_w_hf_tgi.py, image_uri: img, instance_type: ml.g5.xlarge,
           payload_files: [p.jsonl], concurrency_levels: [1]}
        - {name: ec2, inference_script: ec2_predictor.py, ep_name: "http://127.0.0.1:8000", deploy: true,
           deployment_script: nothing_known.py, payload_files: [p.jsonl], concurrency_levels: [1]}
        """
    )
    loc, sm, ec2 = load_config(config, results_dir=tmp_path / "results").experiments
    assert deployer_for(loc).kind == "local" and deployer_for(sm).kind == "sagemaker"
    with pytest.raises(FmbError, match=re.escape("cannot deploy with deployment_script 'nothing_known.py'")):
        deployer_for(ec2)
    record = Deployment(experiment="x", kind="gone", endpoint="e", created_at="now", deploy_seconds=0)
    with pytest.raises(FmbError, match="unknown kind of deployment 'gone'"):
        deployer_of(record)
