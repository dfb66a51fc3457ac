"""What fmb would start for FMBench's ec2_deploy.py experiments, worked out without Docker.

The plans are checked against the settings FMBench's container scripts use (image,
command line, env, ports, shared memory, GPUs or Neuron devices, the files DJL and Triton
read); `fmb config check` and `fmb deploy --dry-run` print them and create nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fmb.cli import cli
from fmb.config import load_config
from fmb.deployers import plan as deploy_plan
from fmb.deployers.containers import Accelerators, build_plan, plan_lines

NVIDIA_8 = Accelerators("nvidia", 8, "test")
NEURON_12 = Accelerators("neuron", 12, "test")
CPU = Accelerators("none", 0, "test")


def ec2_config(write_config, container_type: str | None, extra: str = "", ep_name: str | None = None) -> Path:
    ctype = f"container_type: {container_type}" if container_type else ""
    extra = extra.replace("\n", "\n" + " " * 12)  # the template's indentation before dedent
    ep = ep_name or {
        "vllm": "http://127.0.0.1:8000/v1/completions",
        "vllm_gpu": "http://127.0.0.1:8000/v1/completions",
        "sglang": "http://127.0.0.1:30000/v1/chat/completions",
        "ollama": "http://localhost:11434/api/generate",
        "triton": "http://localhost:8080/v2/models/ensemble/generate",
        "llama_server": "http://127.0.0.1:8080/completion",
    }.get(container_type or "", "http://127.0.0.1:8080/invocations")
    return write_config(
        f"""
        general:
          name: ec2-test
        experiments:
        - name: exp
          model_id: meta-llama/Meta-Llama-3-8B-Instruct
          ep_name: '{ep}'
          instance_type: g5.12xlarge
          image_uri: registry.example/server:1
          deploy: yes
          deployment_script: ec2_deploy.py
          inference_script: ec2_predictor.py
          ec2:
            model_loading_timeout: 600
          inference_spec:
            {ctype}
            {extra}
          serving.properties: |
            engine=MPI
            option.model_id=meta-llama/Meta-Llama-3-8B-Instruct
          payload_files: [payload_en_1-500.jsonl]
          concurrency_levels: [1]
          env:
            MAX_BATCH: 4
            MY_API_TOKEN: tok-abc-123
        """
    )


def test_vllm_gpu_gets_fmbench_settings_and_the_hf_token_from_the_scripts_folder(write_config, tmp_path) -> None:
    path = ec2_config(write_config, "vllm_gpu", "cli_params: --max-model-len 4096 --tensor-parallel-size 2")
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "hf_token.txt").write_text("hf_abcdefghijklmnop\n")
    loaded = load_config(path)
    plan = build_plan(loaded.experiments[0], loaded, tmp_path / "work", accelerators=NVIDIA_8)
    assert plan.problems == []
    (spec,) = plan.containers
    assert spec.image == "registry.example/server:1"
    assert spec.command == [
        "--model",
        "meta-llama/Meta-Llama-3-8B-Instruct",
        "--max-model-len",
        "4096",
        "--tensor-parallel-size",
        "2",
    ]
    assert (spec.container_port, spec.host_port) == (8000, 8000)
    assert spec.ipc_mode == "host" and spec.gpus == "all"
    assert spec.env["HF_TOKEN"] == "hf_abcdefghijklmnop" and spec.env["MAX_BATCH"] == "4"
    assert plan.path == "/v1/completions" and plan.timeout_s == 600
    assert plan.probe == {"model": "meta-llama/Meta-Llama-3-8B-Instruct", "prompt": plan.probe["prompt"]}
    shown = "\n".join(plan_lines(plan, "g5.12xlarge"))
    assert "hf_abcdefghijklmnop" not in shown and "tok-abc-123" not in shown
    assert "HF_TOKEN=****" in shown and "MY_API_TOKEN=****" in shown
    assert "--gpus all" in shown and "--ipc=host" in shown and "-p 127.0.0.1:8000:8000" in shown
    assert f"HF_TOKEN from {tmp_path / 'scripts' / 'hf_token.txt'}" in shown


def test_plain_vllm_gets_no_gpus_and_ignores_cli_params_as_fmbench_does(write_config, tmp_path) -> None:
    loaded = load_config(ec2_config(write_config, "vllm", "cli_params: --foo"))
    plan = build_plan(loaded.experiments[0], loaded, tmp_path, accelerators=NVIDIA_8)
    (spec,) = plan.containers
    assert spec.gpus is None and spec.command == ["--model", "meta-llama/Meta-Llama-3-8B-Instruct"]
    assert any("ignores cli_params" in n for n in plan.notes)


def test_djl_copies_split_the_gpus_and_each_gets_serving_properties(write_config, tmp_path) -> None:
    loaded = load_config(ec2_config(write_config, "djl", "model_copies: max\ntp_degree: 2\nshm_size: 12g"))
    plan = build_plan(loaded.experiments[0], loaded, tmp_path / "w", accelerators=NVIDIA_8)
    assert plan.problems == []
    assert [c.copy for c in plan.containers] == [1, 2, 3, 4]
    assert [c.gpus for c in plan.containers] == [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert [c.env["NVIDIA_VISIBLE_DEVICES"] for c in plan.containers] == ["0,1", "2,3", "4,5", "6,7"]
    assert [c.host_port for c in plan.containers] == [8080, 8081, 8082, 8083]
    second = plan.containers[1]
    assert second.user == "djl" and second.shm_size == "12g" and second.restart_on_failure
    assert second.volumes[str(tmp_path / "w" / "copy-2" / "model")] == ("/opt/ml/model", "ro")
    assert second.files[str(tmp_path / "w" / "copy-2" / "model" / "serving.properties")] == (
        "engine=MPI\noption.model_id=meta-llama/Meta-Llama-3-8B-Instruct\n"
    )
    conf = second.files[str(tmp_path / "w" / "copy-2" / "conf" / "config.properties")]
    assert "inference_address=http://0.0.0.0:8080" in conf and "model_store=/opt/ml/model" in conf
    assert plan.probe == {"inputs": plan.probe["inputs"]}


def test_container_params_tp_degree_comes_first_as_in_fmbench(write_config, tmp_path) -> None:
    extra = "model_copies: max\ntp_degree: 1\ncontainer_params:\n  tp_degree: 4"
    loaded = load_config(ec2_config(write_config, "djl", extra))
    plan = build_plan(loaded.experiments[0], loaded, tmp_path, accelerators=NVIDIA_8)
    assert [c.gpus for c in plan.containers] == [[0, 1, 2, 3], [4, 5, 6, 7]]


def test_a_copy_beyond_the_last_port_is_a_problem(write_config, tmp_path) -> None:
    path = ec2_config(write_config, "djl", "model_copies: 3", ep_name="http://127.0.0.1:65534/invocations")
    loaded = load_config(path)
    plan = build_plan(loaded.experiments[0], loaded, tmp_path, accelerators=CPU)
    assert any("host port 65536, above 65535" in p for p in plan.problems)


def test_djl_on_neuron_maps_devices_per_copy(write_config, tmp_path) -> None:
    loaded = load_config(ec2_config(write_config, None, "model_copies: max\ntp_degree: 8"))
    plan = build_plan(loaded.experiments[0], loaded, tmp_path, accelerators=NEURON_12)
    assert plan.container_type == "djl"  # FMBench's default container type
    assert len(plan.containers) == 3  # 12 devices, tp 8 = 4 devices (2 cores each) per copy
    assert plan.containers[1].devices == [f"/dev/neuron{4 + j}:/dev/neuron{j}" for j in range(4)]
    assert all(c.gpus is None for c in plan.containers)


@pytest.mark.parametrize(
    ("copies", "count", "problem"),
    [("2", 2, None), ("max", 1, None), ("auto", 1, None), ("three", 1, "model_copies 'three'")],
)
def test_model_copies_on_a_host_without_accelerators(write_config, tmp_path, copies, count, problem) -> None:
    loaded = load_config(ec2_config(write_config, "djl", f"model_copies: {copies}"))
    plan = build_plan(loaded.experiments[0], loaded, tmp_path, accelerators=CPU)
    assert len(plan.containers) == count
    assert (problem is None) == (plan.problems == [])
    if problem:
        assert problem in plan.problems[0]


def test_more_copies_than_the_gpus_hold_are_cut_as_fmbench_does(write_config, tmp_path) -> None:
    loaded = load_config(ec2_config(write_config, "djl", "model_copies: 6\ntp_degree: 4"))
    plan = build_plan(loaded.experiments[0], loaded, tmp_path, accelerators=NVIDIA_8)
    assert len(plan.containers) == 2
    assert any("starting 2" in n for n in plan.notes)


def test_sglang_ollama_and_llama_server(write_config, tmp_path) -> None:
    loaded = load_config(ec2_config(write_config, "sglang", "cli_params: --tp 2"))
    (spec,) = build_plan(loaded.experiments[0], loaded, tmp_path, accelerators=NVIDIA_8).containers
    # fmb turns SGLang's Prometheus metrics on to scrape them.
    assert spec.command[:3] == ["python3", "-m", "sglang.launch_server"]
    assert spec.command[-3:] == ["--tp", "2", "--enable-metrics"]
    assert spec.container_port == 30000 and spec.shm_size == "32g" and spec.env == {}
    path = ec2_config(write_config, "sglang", "cli_params: --tp 2")
    path.write_text(path.read_text().replace("  deploy: yes\n", "  deploy: yes\n  metrics_url: none\n"))
    quiet = load_config(path)
    (spec,) = build_plan(quiet.experiments[0], quiet, tmp_path, accelerators=NVIDIA_8).containers
    assert spec.command[-2:] == ["--tp", "2"]

    path = ec2_config(write_config, "ollama")
    text = path.read_text().replace("image_uri: registry.example/server:1", "image_uri: None")
    path.write_text(text)
    loaded = load_config(path)
    plan = build_plan(loaded.experiments[0], loaded, tmp_path, accelerators=CPU)
    assert plan.containers[0].image == "ollama/ollama:latest" and plan.containers[0].container_port == 11434
    assert plan.pull_model == "meta-llama/Meta-Llama-3-8B-Instruct" and plan.path == "/api/generate"

    loaded = load_config(ec2_config(write_config, "llama_server"))
    (spec,) = build_plan(loaded.experiments[0], loaded, tmp_path, accelerators=CPU).containers
    assert spec.command == [
        "--host",
        "0.0.0.0",
        "--port",
        "8080",
        "-hf",
        "meta-llama/Meta-Llama-3-8B-Instruct",
        "--metrics",
    ]


def test_triton_gpu_runs_one_container_with_a_server_per_copy(write_config, tmp_path) -> None:
    extra = "model_copies: 2\ncontainer_params:\n  tp_degree: 4\n  batch_size: 8"
    loaded = load_config(ec2_config(write_config, "triton", extra))
    plan = build_plan(loaded.experiments[0], loaded, tmp_path / "w", accelerators=NVIDIA_8)
    assert plan.problems == []
    (spec,) = plan.containers
    # The second server's HTTP port, and each server's metrics port (HTTP + 2), which fmb scrapes.
    assert plan.urls_per_container == 2 and spec.extra_ports == {8083: 8083, 8082: 8082, 8085: 8085}
    assert spec.command == [
        "bash",
        "/scripts/serve_model.sh",
        "meta-llama/Meta-Llama-3-8B-Instruct",
        "4",
        "8",
        "2",
        "8080",
    ]
    assert spec.ulimits == {"memlock": (-1, -1), "stack": (67108864, 67108864)}  # FMBench's, for TensorRT-LLM
    assert [c.gpus for c in plan.containers] == ["all"]
    assert plan.probe["max_tokens"] == 50


def test_triton_neuron_writes_a_vllm_model_repository(write_config, tmp_path) -> None:
    extra = "model_copies: 1\nbackend: vllm\ncontainer_params:\n  tp_degree: 8\n  max_num_seqs: 4"
    loaded = load_config(ec2_config(write_config, "triton", extra))
    plan = build_plan(loaded.experiments[0], loaded, tmp_path / "w", accelerators=NEURON_12)
    (spec,) = plan.containers
    model = tmp_path / "w" / "copy-1" / "models" / "Meta-Llama-3-8B-Instruct"
    assert 'backend: "vllm"' in spec.files[str(model / "config.pbtxt")]
    assert json.loads(spec.files[str(model / "1" / "model.json")]) == {
        "model": "meta-llama/Meta-Llama-3-8B-Instruct",
        "tensor_parallel_size": 8,
        "device": "neuron",
        "max_num_seqs": 4,
    }
    assert len(spec.devices) == 4 and "sampling_parameters" in plan.probe


def test_what_fmb_cannot_start_is_a_problem_not_a_guess(write_config, tmp_path) -> None:
    # TGI serves fine as a brought endpoint, but FMBench's ec2_deploy.py has no TGI container: neither has fmb.
    loaded = load_config(ec2_config(write_config, "tgi"))
    assert "container_type 'tgi'" in build_plan(loaded.experiments[0], loaded, tmp_path).problems[0]
    path = ec2_config(write_config, "djl")
    path.write_text(path.read_text().replace("serving.properties: |", "other: |"))
    loaded = load_config(path)
    assert any(
        "serving.properties is missing" in p for p in build_plan(loaded.experiments[0], loaded, tmp_path).problems
    )


def test_host_port_auto_and_the_ep_name_port(write_config, tmp_path) -> None:
    loaded = load_config(ec2_config(write_config, "vllm", ep_name="http://127.0.0.1:9123/v1/completions"))
    exp = loaded.experiments[0]
    assert build_plan(exp, loaded, tmp_path, accelerators=CPU).containers[0].host_port == 9123
    assert build_plan(exp, loaded, tmp_path, accelerators=CPU, host_port="auto").containers[0].host_port is None
    assert build_plan(exp, loaded, tmp_path, accelerators=CPU, host_port="7000").containers[0].host_port == 7000


def test_dry_run_prints_the_plan_and_creates_nothing(write_config, tmp_path, cli_runner) -> None:
    path = ec2_config(write_config, "djl", "model_copies: 2")
    results = tmp_path / "results"
    result = cli_runner.invoke(
        cli, ["deploy", "--dry-run", str(path), "--results", str(results)], env={"HF_TOKEN": "hf_zzzzzzzzzzzzzzzzzz"}
    )
    assert result.exit_code == 0, result.output
    out = result.output
    assert "EC2: 2 djl containers from registry.example/server:1" in out
    assert "option.model_id=meta-llama/Meta-Llama-3-8B-Instruct" in out  # the serving.properties fmb writes
    assert "hf_zzzzzzzzzzzzzzzzzz" not in out and "tok-abc-123" not in out and "HF_TOKEN=****" in out
    assert "Dry run: nothing was created." in out
    assert not results.exists()


def test_dry_run_fails_for_an_experiment_fmb_cannot_deploy(write_config, tmp_path, cli_runner) -> None:
    path = ec2_config(write_config, "tgi")
    result = cli_runner.invoke(cli, ["deploy", "--dry-run", str(path), "--results", str(tmp_path / "r")])
    assert result.exit_code == 1 and "cannot deploy" in result.output and "Traceback" not in result.output


def test_config_check_says_how_each_experiment_is_deployed(write_config, tmp_path, cli_runner) -> None:
    path = ec2_config(write_config, "vllm")
    result = cli_runner.invoke(cli, ["config", "check", str(path), "--results", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    assert "deploy: yes: EC2: 1 vllm container from registry.example/server:1" in result.output


SAMPLE_ASSIGNMENTS = {
    "region": "us-east-1",
    "model_id": "meta-llama/Llama-3.1-8B-Instruct",
    "instance_type": "g6e.2xlarge",
    "cli_params": "--max-model-len 8192",
    "tp_degree": "1",
    "batch_size": "4",
    "tokenizer_dir": "llama3_1_tokenizer",
    "prompt_template": "prompt_template_llama3.txt",
}


def test_every_fmbench_sample_with_a_deploy_script_fmb_knows_has_a_deploy_plan(fmbench_fixtures: Path) -> None:
    """ec2_deploy.py, eks_deploy.py, neuron_deploy.py, deploy_w_djl_serving.py, jumpstart.py, ...: each has a plan."""
    seen = 0
    for path in [
        *sorted((fmbench_fixtures / "configs").rglob("config*.yml")),
        fmbench_fixtures / "configs" / "generic" / "ec2" / "djl.yml",
    ]:
        loaded = load_config(path, SAMPLE_ASSIGNMENTS)
        for exp in loaded.experiments:
            if not exp.spec.deploy:
                continue
            seen += 1
            plan = deploy_plan(exp, loaded)
            assert plan.deployable, (path.name, exp.name, plan.problems)
            assert plan.details
    assert seen >= 10
