"""What an EC2 experiment's inference containers are, worked out before anything is created.

FMBench's ``ec2_deploy.py`` writes a shell script per container type (``docker run`` or
``docker compose``) and runs it. fmb works out the same settings as data, a
:class:`ContainerPlan`, from the experiment's keys (``inference_spec.container_type``,
``image_uri``, ``model_id``, ``ep_name``, ``env``, ``cli_params``, ``model_copies``,
``tp_degree``, ``shm_size``, ``serving.properties``, the ``ec2:`` section) and the host's
accelerators; :mod:`fmb.deployers.ec2` starts it through the Docker Engine API, and
`fmb deploy --dry-run` prints it. Nothing here creates or contacts anything.

Settings per container type, as FMBench has them:

- ``vllm``: ``IMAGE --model MODEL_ID``, port 8000, ``--ipc=host``, env with ``HF_TOKEN``.
- ``vllm_gpu``: the same with all GPUs and the experiment's ``cli_params`` appended.
- ``sglang``: ``python3 -m sglang.launch_server --model MODEL_ID --trust-remote-code
  --port 30000 CLI_PARAMS``, all GPUs, 32g shared memory, ``--ipc host``, the host's
  Hugging Face cache mounted. FMBench adds ``--network host``; fmb publishes port 30000
  instead, which serves the same port on the host and lets copies coexist.
- ``djl`` (and FMBench's default when ``container_type`` is absent): one container per
  model copy, user ``djl``, ``shm_size``, the experiment's ``serving.properties`` mounted
  at ``/opt/ml/model`` and a ``config.properties`` (inference address and port) at
  ``/opt/djl/conf``; GPUs (NVIDIA) or ``/dev/neuron*`` devices (Neuron) split between the
  copies; restarted on failure.
- ``triton``: on NVIDIA hosts one container that builds the TensorRT-LLM engine and
  starts one Triton server per copy (ports base + 3 i); on Neuron hosts one container per
  copy serving a model repository fmb writes for Triton's vLLM backend.
- ``ollama``: Ollama's own container (``ollama/ollama`` unless ``image_uri`` names
  another), port 11434; fmb pulls ``model_id`` through Ollama's API before the first
  request. (FMBench installs Ollama on the host instead.)
- ``llama_server``: the llama.cpp server image (``--host 0.0.0.0 --port 8080``), the model
  a GGUF file path (mounted) or a Hugging Face repository (``-hf``), plus ``cli_params``.

FMBench runs several copies only for ``djl`` and ``triton`` (behind an nginx load
balancer); fmb does the same, without the balancer: each copy has its own host port and
the collector spreads requests over them, recording which copy served each request.
"""

from __future__ import annotations

import glob
import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from fmb.config import LoadedConfig, ResolvedExperiment

EC2_SCRIPT = "ec2_deploy.py"
CONTAINER_TYPES = ("djl", "vllm", "vllm_gpu", "sglang", "triton", "ollama", "llama_server")
DEFAULT_CONTAINER_TYPE = "djl"  # FMBench's ec2_deploy.py when container_type is absent
LISTEN_PORT = 8080  # FMBench's port when ep_name names none
PROBE_TEXT = "tell me a story of the little red riding hood"
DEFAULT_IMAGES = {"ollama": "ollama/ollama:latest", "llama_server": "ghcr.io/ggml-org/llama.cpp:server"}
# Container ports fixed by FMBench's scripts; the others listen where ep_name says.
FIXED_PORTS = {"vllm": 8000, "vllm_gpu": 8000, "sglang": 30000, "ollama": 11434, "llama_server": 8080}
SECRET_NAME = re.compile(r"token|secret|password|passwd|api[_-]?key|credential|private", re.IGNORECASE)
LABEL_PREFIX = "fmb."


@dataclass(frozen=True)
class Accelerators:
    """The host's accelerators: what kind, how many devices, and how fmb found out."""

    kind: Literal["nvidia", "neuron", "none"]
    devices: int
    source: str

    def describe(self) -> str:
        if self.kind == "none":
            return f"no GPU or Neuron device ({self.source})"
        what = "NVIDIA GPU(s)" if self.kind == "nvidia" else "Neuron device(s)"
        return f"{self.devices} {what} ({self.source})"


def _nvidia_gpus() -> int | None:
    """The number of NVIDIA GPUs NVML sees; None when there is no NVML library or driver."""
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return None
    try:
        return int(pynvml.nvmlDeviceGetCount())
    except pynvml.NVMLError:
        return None
    finally:
        try:
            pynvml.nvmlShutdown()
        except pynvml.NVMLError:
            pass


def _neuron_devices() -> int:
    return len([p for p in glob.glob("/dev/neuron*") if re.fullmatch(r"/dev/neuron\d+", p)])


def detect_accelerators(setting: str = "auto") -> Accelerators:
    """The host's accelerators, as ``ec2.accelerator`` says: auto looks at NVML, then /dev/neuron*."""
    if setting == "none":
        return Accelerators("none", 0, "ec2.accelerator: none")
    gpus = _nvidia_gpus() if setting in ("auto", "nvidia") else None
    if setting == "nvidia" or (setting == "auto" and gpus):
        return Accelerators(
            "nvidia", gpus or 0, "NVML" if gpus is not None else "ec2.accelerator: nvidia; NVML found none"
        )
    neuron = _neuron_devices()
    if setting == "neuron" or neuron:
        return Accelerators("neuron", neuron, "/dev/neuron*")
    return Accelerators("none", 0, "NVML found no GPU and there is no /dev/neuron*")


@dataclass
class ContainerSpec:
    """One container to start: everything `docker run` would be given."""

    copy: int  # 1, 2, ...
    image: str
    command: list[str]  # the arguments after the image (the image's entrypoint runs them)
    container_port: int
    host_port: int | None  # None: Docker picks a free port
    env: dict[str, str] = field(default_factory=dict)
    secret_env: set[str] = field(default_factory=set)  # names whose values are never shown or written
    ipc_mode: str | None = None
    shm_size: str | None = None
    privileged: bool = False
    user: str | None = None
    gpus: list[int] | Literal["all"] | None = None  # a GPU device request
    devices: list[str] = field(default_factory=list)  # host:container device paths
    volumes: dict[str, tuple[str, str]] = field(default_factory=dict)  # host path -> (container path, rw|ro)
    files: dict[str, str] = field(default_factory=dict)  # host path -> text fmb writes before starting
    extra_ports: dict[int, int | None] = field(default_factory=dict)  # more container -> host ports
    restart_on_failure: bool = False
    ulimits: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (soft, hard)

    def shown_env(self) -> dict[str, str]:
        return {k: ("****" if k in self.secret_env else v) for k, v in self.env.items()}

    def docker_run(self, host_ip: str) -> str:
        """The equivalent `docker run` command line, secrets masked (for people, not for running)."""
        parts = ["docker run -d"]
        if self.privileged:
            parts.append("--privileged")
        if self.user:
            parts.append(f"--user {self.user}")
        if self.ipc_mode:
            parts.append(f"--ipc={self.ipc_mode}")
        if self.shm_size:
            parts.append(f"--shm-size {self.shm_size}")
        if self.gpus == "all":
            parts.append("--gpus all")
        elif self.gpus:
            parts.append(f"--gpus device={','.join(map(str, self.gpus))}")
        parts += [f"--device {d}" for d in self.devices]
        for container_port, host_port in {self.container_port: self.host_port, **self.extra_ports}.items():
            parts.append(f"-p {host_ip}:{host_port if host_port is not None else '(free)'}:{container_port}")
        parts += [f"-v {host}:{inside}:{mode}" for host, (inside, mode) in self.volumes.items()]
        parts += [f"-e {shlex.quote(f'{k}={v}')}" for k, v in self.shown_env().items()]
        parts += [f"--ulimit {name}={soft}:{hard}" for name, (soft, hard) in self.ulimits.items()]
        if self.restart_on_failure:
            parts.append("--restart on-failure")
        parts.append(self.image)
        parts += [shlex.quote(arg) for arg in self.command]
        return " ".join(parts)


@dataclass
class ContainerPlan:
    """Every container of one experiment, where it will answer, and how readiness is checked."""

    experiment: str
    container_type: str
    accelerators: Accelerators
    containers: list[ContainerSpec]
    scheme: str
    host: str  # where the collector reaches the containers
    host_ip: str  # the host address ports are published on
    path: str  # the API path of ep_name, e.g. /v1/completions
    probe: dict[str, Any]  # FMBench's readiness request
    timeout_s: float
    pull_model: str | None = None  # ollama: pulled through the API before the probe
    urls_per_container: int = 1  # triton on NVIDIA: one container, one server per copy
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def url(self, host_port: int) -> str:
        return f"{self.scheme}://{self.host}:{host_port}{self.path}"


def container_type(exp: ResolvedExperiment) -> str:
    ctype = (exp.spec.inference_spec.container_type or DEFAULT_CONTAINER_TYPE).strip()
    return "llama_server" if ctype == "llama.cpp" else ctype


def _model_copies(
    value: str | None, tp_degree: int, acc: Accelerators, problems: list[str], notes: list[str]
) -> tuple[int, int]:
    """(copies, devices per copy), as FMBench works them out for djl and triton."""
    wanted = (value or "1").strip().lower()
    if wanted not in ("auto", "max") and not wanted.isdigit():
        problems.append(f"inference_spec.model_copies {value!r} is not auto, max or a whole number")
        return 1, 0
    if acc.kind == "none":
        copies = 1 if wanted in ("auto", "max") else max(1, int(wanted))
        if wanted == "max":
            notes.append("model_copies: max on a host without accelerators: one copy")
        return copies, 0
    per_copy = tp_degree if acc.kind == "nvidia" else max(1, tp_degree // 2)
    if wanted == "auto":
        return 1, acc.devices
    possible = acc.devices // per_copy
    if possible < 1:
        problems.append(f"tp_degree {tp_degree} needs {per_copy} device(s) per copy but the host has {acc.describe()}")
        return 1, per_copy
    copies = possible if wanted == "max" else int(wanted)
    if copies > possible:
        notes.append(
            f"model_copies {copies} is more than the host holds ({possible}); starting {possible}, as FMBench does"
        )
        copies = possible
    return max(1, copies), per_copy


def _device_share(acc: Accelerators, index: int, per_copy: int) -> tuple[list[int] | None, list[str], dict[str, str]]:
    """(GPU ids, device paths, env) for copy ``index`` (0-based) when each copy has ``per_copy`` devices."""
    first = index * per_copy
    if acc.kind == "nvidia":
        ids = list(range(first, first + per_copy))
        return ids, [], {"NVIDIA_VISIBLE_DEVICES": ",".join(map(str, ids))}
    if acc.kind == "neuron":
        return None, [f"/dev/neuron{first + j}:/dev/neuron{j}" for j in range(per_copy)], {}
    return None, [], {}


def _djl_config_properties(port: int) -> str:
    return "\n".join(
        [
            f"inference_address=http://0.0.0.0:{port}",
            f"management_address=http://0.0.0.0:{port}",
            "cluster_address=http://0.0.0.0:8888",
            "model_store=/opt/ml/model",
            "load_models=ALL",
            "",
        ]
    )


def _triton_gpu_script() -> str:
    """The script the NVIDIA Triton container runs: build the TensorRT-LLM engine, start one server per copy.

    The same steps as FMBench's triton_serve_model.sh, written for fmb: arguments are the
    model folder, tensor parallel degree, batch size, copies and the first HTTP port.
    """
    return """#!/bin/bash
# Written by fmb: build a TensorRT-LLM engine for the model and serve it with Triton,
# one server per model copy (HTTP port, gRPC port + 1, metrics port + 2 for each).
set -euo pipefail
model_dir=/$1; tp=$2; batch=$3; copies=$4; first_port=$5
checkpoint=/tmp/checkpoint; engines=/engines; repo=/opt/tritonserver/inflight_batcher_llm
backend=/tensorrtllm_backend
python3 "$backend/tensorrt_llm/examples/llama/convert_checkpoint.py" --model_dir "$model_dir" \\
  --output_dir "$checkpoint" --dtype float16 --tp_size "$tp" --workers "$tp"
trtllm-build --checkpoint_dir "$checkpoint" --output_dir "$engines" --max_batch_size "$batch" --workers "$tp" \\
  --remove_input_padding enable --gpt_attention_plugin float16 --context_fmha enable --gemm_plugin float16
cp -R "$backend/all_models/inflight_batcher_llm" /opt/tritonserver/
fill="python3 $backend/tools/fill_template.py -i"
tok="tokenizer_dir:$model_dir/,tokenizer_type:auto,triton_max_batch_size:$batch"
$fill "$repo/preprocessing/config.pbtxt" "$tok,preprocessing_instance_count:1"
$fill "$repo/postprocessing/config.pbtxt" "$tok,postprocessing_instance_count:1"
$fill "$repo/tensorrt_llm_bls/config.pbtxt" "triton_max_batch_size:$batch,decoupled_mode:false,bls_instance_count:1"
$fill "$repo/ensemble/config.pbtxt" "triton_max_batch_size:$batch"
$fill "$repo/tensorrt_llm/config.pbtxt" "triton_backend:tensorrtllm,triton_max_batch_size:$batch,\\
decoupled_mode:false,engine_dir:$engines,max_queue_delay_microseconds:10000,\\
batching_strategy:inflight_fused_batching,exclude_input_in_output:True"
for ((i = 0; i < copies; i++)); do
  export CUDA_VISIBLE_DEVICES=$(seq -s, $((i * tp)) $((i * tp + tp - 1)))
  port=$((first_port + 3 * i))
  python3 "$backend/scripts/launch_triton_server.py" --world_size="$tp" --model_repo="$repo" \\
    --http_port "$port" --grpc_port $((port + 1)) --metrics_port $((port + 2))
  sleep 10
done
sleep infinity
"""


def _metrics_flag(flag: str, cli: list[str], scraped: bool, notes: list[str]) -> list[str]:
    """The flag that turns the server's Prometheus metrics on, when fmb scrapes them and cli_params lack it."""
    if not scraped or flag in cli:
        return []
    notes.append(f"fmb adds {flag} so that the server's Prometheus metrics can be scraped (telemetry.server_metrics)")
    return [flag]


def _plus(port: int | None, offset: int) -> int | None:
    """A host port ``offset`` above ``port``; None (a free one picked at run time) stays None."""
    return None if port is None else port + offset


def _probe(ctype: str, model_id: str, acc: Accelerators) -> dict[str, Any]:
    """FMBench's readiness request per container type."""
    if ctype == "djl":
        return {"inputs": PROBE_TEXT}
    if ctype in ("vllm", "vllm_gpu", "ollama"):
        return {"model": model_id, "prompt": PROBE_TEXT}
    if ctype == "triton":
        if acc.kind == "neuron":
            return {"text_input": PROBE_TEXT, "sampling_parameters": json.dumps({"top_k": 50})}
        return {"text_input": PROBE_TEXT, "max_tokens": 50}
    if ctype == "sglang":
        return {
            "model": "default",
            "messages": [
                {"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": "List 3 countries and their capitals."},
            ],
            "temperature": 0.1,
            "max_tokens": 100,
        }
    return {"prompt": PROBE_TEXT, "n_predict": 16}  # llama.cpp's /completion


def _shm_from_flags(flags: str | None) -> str | None:
    match = re.search(r"--shm-size[ =](\S+)", flags or "")
    return match.group(1) if match else None


def build_plan(
    exp: ResolvedExperiment,
    loaded: LoadedConfig,
    workdir: Path,
    *,
    accelerators: Accelerators | None = None,
    host_port: str | int | None = None,
) -> ContainerPlan:
    """The containers of an ec2_deploy.py experiment; ``workdir`` is where fmb writes their files.

    ``host_port`` overrides ``ec2.host_port`` (``fmb deploy --host-port``).
    """
    spec = exp.spec
    ispec = spec.inference_spec
    ctype = container_type(exp)
    acc = accelerators or detect_accelerators(spec.ec2.accelerator)
    problems: list[str] = []
    notes: list[str] = []
    if ctype not in CONTAINER_TYPES:
        problems.append(f"inference_spec.container_type {ctype!r} is not one of {', '.join(CONTAINER_TYPES)}")
    model_id = (spec.model_id or "").strip()
    if not model_id:
        problems.append("model_id is missing (the model the container serves)")
    image = (spec.image_uri or "").strip()
    if image in ("", "None"):
        image = DEFAULT_IMAGES.get(ctype, "")
        if not image:
            problems.append(f"image_uri is missing (the {ctype} container image)")
    ep = urlsplit(spec.ep_name or "")
    if spec.ep_name and (ep.scheme not in ("http", "https") or not ep.hostname):
        problems.append(f"ep_name {spec.ep_name!r} is not an http(s) URL")
    host = ep.hostname or "127.0.0.1"
    path = ep.path or {"vllm": "/v1/completions", "vllm_gpu": "/v1/completions", "ollama": "/api/generate"}.get(
        ctype, "/invocations"
    )
    try:
        ep_port = ep.port or LISTEN_PORT
    except ValueError:
        problems.append(f"ep_name {spec.ep_name!r} has a port that is not a number")
        ep_port = LISTEN_PORT
    chosen = spec.ec2.host_port if host_port is None else host_port
    if chosen == "auto":
        first_host_port: int | None = None
    elif chosen == "config":
        first_host_port = ep_port
    else:
        first_host_port = int(chosen)
    # Published on loopback when the collector reaches the containers there, else on every address (as FMBench).
    host_ip = "127.0.0.1" if host in ("127.0.0.1", "localhost") else "0.0.0.0"
    if host not in ("127.0.0.1", "localhost", "0.0.0.0"):
        notes.append(f"ep_name names host {host}: the containers are published on all addresses of this host")

    token = loaded.hf_token()
    env = {str(k): "" if v is None else str(v) for k, v in spec.env.items()}
    secret_env = {k for k in env if SECRET_NAME.search(k)}
    if token:
        env["HF_TOKEN"] = token[0]
        secret_env.add("HF_TOKEN")
        notes.append(f"HF_TOKEN from {token[1]}")
    else:
        notes.append(f"no Hugging Face token ({loaded.hf_token_file()} or $HF_TOKEN); gated models will not download")
    # FMBench's order: container_params.tp_degree, then inference_spec.tp_degree, then 1.
    tp_degree = (
        _whole((ispec.container_params or {}).get("tp_degree"), "inference_spec.container_params.tp_degree", problems)
        or _whole(ispec.tp_degree, "inference_spec.tp_degree", problems)
        or 1
    )
    shm = ispec.shm_size or _shm_from_flags(spec.ec2.gpu_or_neuron_setting)
    timeout = float(spec.ec2.model_loading_timeout or ispec.model_loading_timeout or spec.deploy_timeout_s)
    privileged = bool(spec.ec2.privileged_mode)
    cli = shlex.split(ispec.cli_params or "")
    # fmb scrapes the server's Prometheus metrics unless the config turns that off.
    telemetry = loaded.config.telemetry
    scraped = (telemetry is None or telemetry.server_metrics) and (spec.metrics_url or "").lower() != "none"
    gpus_all: Literal["all"] | None = "all" if acc.kind == "nvidia" else None
    if ctype in ("vllm_gpu", "sglang", "triton") and acc.kind != "nvidia":
        notes.append(f"FMBench gives {ctype} containers every GPU; this host has {acc.describe()}, so none")
    if acc.kind == "none" and (spec.instance_type or "").startswith(("g", "p", "inf", "trn")):
        notes.append(f"instance_type {spec.instance_type} has accelerators, but this host has {acc.describe()}")
    containers: list[ContainerSpec] = []
    pull_model = None
    urls_per_container = 1
    base = workdir

    def port_for(copy_index: int, step: int = 1) -> int | None:
        return None if first_host_port is None else first_host_port + step * copy_index

    if ctype in ("vllm", "vllm_gpu"):
        command = ["--model", model_id] + (cli if ctype == "vllm_gpu" else [])
        if ctype == "vllm" and cli:
            notes.append("FMBench's vllm container type ignores cli_params; so does fmb (vllm_gpu passes them)")
        containers.append(
            ContainerSpec(
                1,
                image,
                command,
                8000,
                port_for(0),
                env,
                secret_env,
                ipc_mode="host",
                privileged=privileged,
                gpus=gpus_all if ctype == "vllm_gpu" else None,
            )
        )
    elif ctype == "sglang":
        hf_cache = str(Path.home() / ".cache" / "huggingface")
        command = [
            "python3",
            "-m",
            "sglang.launch_server",
            "--model",
            model_id,
            "--trust-remote-code",
            "--port",
            "30000",
            *cli,
            *_metrics_flag("--enable-metrics", cli, scraped, notes),
        ]
        containers.append(
            ContainerSpec(
                1,
                image,
                command,
                30000,
                port_for(0),
                {},
                set(),
                ipc_mode="host",
                shm_size="32g",
                privileged=privileged,
                gpus=gpus_all,
                volumes={hf_cache: ("/root/.cache/huggingface", "rw")},
            )
        )
        if env:
            notes.append("FMBench starts SGLang without the experiment's env (HF_TOKEN included); so does fmb")
    elif ctype == "ollama":
        models = str(Path.home() / ".ollama")
        containers.append(
            ContainerSpec(
                1,
                image,
                [],
                11434,
                port_for(0),
                env,
                secret_env,
                privileged=privileged,
                gpus=gpus_all,
                volumes={models: ("/root/.ollama", "rw")},
            )
        )
        # Pull the model the requests will name: FMBench's Ollama samples name it in the parameter set
        # (model: llama3.1:8b) and give a Hugging Face id as model_id, which Ollama does not know.
        requested = exp.parameters.get("model")
        pull_model = str(requested) if requested else model_id
        if pull_model != model_id:
            notes.append(
                f"pulls {pull_model}, the model the requests name (inference_parameters); FMBench's script pulls "
                f"model_id ({model_id})"
            )
    elif ctype == "llama_server":
        command = ["--host", "0.0.0.0", "--port", "8080"]
        model_file = Path(model_id).expanduser()
        volumes: dict[str, tuple[str, str]] = {}
        if model_id.endswith(".gguf"):
            volumes[str(model_file.resolve().parent)] = ("/models", "ro")
            command += ["-m", f"/models/{model_file.name}"]
            if not model_file.is_file():
                problems.append(f"model_id {model_id} (a GGUF file) does not exist")
        else:
            command += ["-hf", model_id]
        containers.append(
            ContainerSpec(
                1,
                image,
                command + cli + _metrics_flag("--metrics", cli, scraped, notes),
                8080,
                port_for(0),
                env,
                secret_env,
                privileged=privileged,
                gpus=gpus_all,
                volumes=volumes,
            )
        )
    elif ctype == "djl":
        properties = spec.serving_properties or (ispec.container_params or {}).get("serving.properties")
        if not properties:
            problems.append("serving.properties is missing (DJL reads the model and engine settings from it)")
        copies, per_copy = _model_copies(ispec.model_copies, tp_degree, acc, problems, notes)
        for i in range(copies):
            gpus, devices, device_env = _device_share(acc, i, per_copy)
            folder = base / f"copy-{i + 1}"
            containers.append(
                ContainerSpec(
                    i + 1,
                    image,
                    [],
                    ep_port,
                    port_for(i),
                    env | device_env,
                    secret_env,
                    shm_size=shm,
                    privileged=privileged,
                    user="djl",
                    gpus=gpus,
                    devices=devices,
                    volumes={
                        str(folder / "model"): ("/opt/ml/model", "ro"),
                        str(folder / "conf"): ("/opt/djl/conf", "ro"),
                        str(folder / "logs"): ("/opt/djl/logs", "rw"),
                    },
                    files={
                        str(folder / "model" / "serving.properties"): (properties or "").rstrip("\n") + "\n",
                        str(folder / "conf" / "config.properties"): _djl_config_properties(ep_port),
                    },
                    restart_on_failure=True,
                )
            )
    elif ctype == "triton":
        params = dict(ispec.container_params or {})
        batch = _whole(params.get("batch_size", ispec.batch_size), "container_params.batch_size", problems) or 4
        copies, per_copy = _model_copies(ispec.model_copies, tp_degree, acc, problems, notes)
        if acc.kind == "neuron":
            backend = (ispec.backend or "vllm").lower()
            if backend != "vllm":
                problems.append(
                    f"inference_spec.backend {backend!r}: fmb writes Triton model repositories for the vllm backend "
                    "only on Neuron hosts"
                )
            for i in range(copies):
                _, devices, _ = _device_share(acc, i, per_copy)
                folder = base / f"copy-{i + 1}" / "models" / Path(model_id).name
                model_json = {"model": model_id, "tensor_parallel_size": tp_degree, "device": "neuron"}
                model_json.update({k: v for k, v in params.items() if k not in ("tp_degree", "serving.properties")})
                port = ep_port + 3 * i
                containers.append(
                    ContainerSpec(
                        i + 1,
                        image,
                        [
                            "tritonserver",
                            "--model-repository=/models",
                            f"--http-port={port}",
                            f"--grpc-port={port + 1}",
                            f"--metrics-port={port + 2}",
                        ],
                        port,
                        port_for(i, 3),
                        env,
                        secret_env,
                        shm_size=shm,
                        privileged=privileged,
                        devices=devices,
                        # Triton's Prometheus metrics, two ports above its HTTP port (as fmb scrapes them).
                        extra_ports={port + 2: _plus(port_for(i, 3), 2)},
                        volumes={str(base / f"copy-{i + 1}" / "models"): ("/models", "ro")},
                        files={
                            str(folder / "config.pbtxt"): 'backend: "vllm"\n'
                            "instance_group [\n  {\n    count: 1\n    kind: KIND_MODEL\n  }\n]\n",
                            str(folder / "1" / "model.json"): json.dumps(model_json, indent=2) + "\n",
                        },
                        restart_on_failure=True,
                    )
                )
        else:
            home = Path.home()
            folder = base / "copy-1"
            extra = {ep_port + 3 * i: port_for(i, 3) for i in range(1, copies)}
            # Each server's Prometheus metrics, two ports above its HTTP port (as fmb scrapes them).
            extra |= {ep_port + 3 * i + 2: _plus(port_for(i, 3), 2) for i in range(copies)}
            containers.append(
                ContainerSpec(
                    1,
                    image,
                    [
                        "bash",
                        "/scripts/serve_model.sh",
                        model_id,
                        str(tp_degree),
                        str(batch),
                        str(copies),
                        str(ep_port),
                    ],
                    ep_port,
                    port_for(0, 3),
                    env,
                    secret_env,
                    shm_size=shm,
                    privileged=privileged,
                    gpus=gpus_all,
                    volumes={
                        str(home / "tensorrtllm_backend"): ("/tensorrtllm_backend", "rw"),
                        str(home / model_id): (f"/{model_id}", "rw"),
                        str(folder / "engines"): ("/engines", "rw"),
                        str(folder / "scripts"): ("/scripts", "ro"),
                    },
                    files={str(folder / "scripts" / "serve_model.sh"): _triton_gpu_script()},
                    extra_ports=extra,
                    restart_on_failure=True,
                    ulimits={"memlock": (-1, -1), "stack": (67108864, 67108864)},  # what TensorRT-LLM needs
                )
            )
            urls_per_container = copies
            notes.append(
                f"Triton on NVIDIA needs the TensorRT-LLM backend in {home / 'tensorrtllm_backend'} and the model "
                f"downloaded to {home / model_id}, as FMBench's Triton setup does"
            )
    if ctype not in ("djl", "triton") and (ispec.model_copies or "1").strip() not in ("1", ""):
        notes.append(
            f"model_copies {ispec.model_copies}: FMBench runs one {ctype} container whatever model_copies says; "
            "so does fmb"
        )
    for container in containers:
        for wanted in [container.host_port, *container.extra_ports.values()]:
            if wanted is not None and wanted > 65535:
                problems.append(
                    f"copy {container.copy} would need host port {wanted}, above 65535; lower the port in ep_name, "
                    "model_copies, or use --host-port auto"
                )
    return ContainerPlan(
        exp.name,
        ctype,
        acc,
        containers,
        ep.scheme or "http",
        host if host != "0.0.0.0" else "127.0.0.1",
        host_ip,
        path,
        _probe(ctype, pull_model or model_id, acc),
        timeout,
        pull_model,
        urls_per_container,
        notes,
        problems,
    )


def _whole(value: Any, key: str, problems: list[str]) -> int | None:
    if value is None or value == "":
        return None
    try:
        number = int(str(value).strip())
    except ValueError:
        problems.append(f"{key} {value!r} is not a whole number")
        return None
    if number < 1:
        problems.append(f"{key} must be 1 or more, got {number}")
        return None
    return number


def plan_lines(plan: ContainerPlan, instance_type: str | None) -> list[str]:
    """What `fmb deploy --dry-run` prints for a plan (secrets masked)."""
    lines = [
        f"container type: {plan.container_type}; instance type: {instance_type or '-'}; "
        f"host accelerators: {plan.accelerators.describe()}",
        f"ready when: POST {plan.path} answers 200 (within {plan.timeout_s:g} s)",
    ]
    if plan.pull_model:
        lines.append(f"before that: pull {plan.pull_model} through Ollama's API")
    for spec in plan.containers:
        where = "a free port" if spec.host_port is None else f"port {spec.host_port}"
        lines.append(f"copy {spec.copy}: {spec.image}, answering on {where}")
        lines.append(f"  command: {shlex.join(spec.command) or '(the image default)'}")
        lines.append("  env: " + (", ".join(f"{k}={v}" for k, v in spec.shown_env().items()) or "-"))
        settings = [
            f"ipc={spec.ipc_mode}" if spec.ipc_mode else "",
            f"shm-size {spec.shm_size}" if spec.shm_size else "",
            "privileged" if spec.privileged else "",
            f"user {spec.user}" if spec.user else "",
            "GPUs: all" if spec.gpus == "all" else (f"GPUs: {spec.gpus}" if spec.gpus else ""),
            f"devices: {', '.join(spec.devices)}" if spec.devices else "",
            "restart on failure" if spec.restart_on_failure else "",
        ]
        lines.append("  settings: " + (", ".join(s for s in settings if s) or "-"))
        for host, (inside, mode) in spec.volumes.items():
            lines.append(f"  mount: {host} -> {inside} ({mode})")
        for path, text in spec.files.items():
            lines.append(f"  writes: {path}")
            if not text.startswith("#!"):  # a script is fmb's own; a settings file is the user's, so shown
                lines += [f"    {line}" for line in text.splitlines() if line.strip()]
        lines.append(f"  as: {spec.docker_run(plan.host_ip)}")
    lines += [f"note: {n}" for n in plan.notes]
    return lines
