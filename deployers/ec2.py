"""The `ec2` hosting option: inference containers on this host, through the Docker Engine API.

FMBench's ``deployment_script: ec2_deploy.py``. The containers are worked out by
:mod:`fmb.deployers.containers` and started with the Docker SDK for Python (the engine's
own API; no shell scripts, no ``docker compose``). Every container carries fmb's labels
(benchmark, experiment, deployment id, copy, and the run id under `fmb run`) and is
recorded the moment it exists, before it starts, so `fmb cleanup` removes exactly the
containers fmb made, even after a crash; a container fmb did not start is never touched.
When a container is removed its log is kept under ``RESULTS/deployments/logs/``.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.markup import escape

from fmb.config import LoadedConfig, ResolvedExperiment
from fmb.deployers.base import DeployContext, DeployPlan
from fmb.deployers.containers import (
    EC2_SCRIPT,
    LABEL_PREFIX,
    ContainerPlan,
    ContainerSpec,
    build_plan,
    container_type,
    plan_lines,
)
from fmb.deployers.registry import Deployment
from fmb.errors import FmbError
from fmb.paths import slug

POLL_S = 2.0  # between readiness probes (FMBench waits 60 s)
PROBE_TIMEOUT_S = 60.0
MAX_RESTARTS = 3  # a copy restarted this often before answering has failed
LOG_LINES = 15


def _docker() -> Any:
    """A client for the Docker engine (DOCKER_HOST, else the local socket), or FmbError saying why not."""
    try:
        import docker
    except ImportError:
        raise FmbError(
            "deployment_script ec2_deploy.py starts containers through the Docker SDK, which is not installed.",
            hint="Install fmb's ec2 extra: pip install 'fmb[ec2]'.",
        ) from None
    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except docker.errors.DockerException as exc:
        raise FmbError(
            f"cannot reach the Docker engine ({exc}).",
            hint="Start dockerd (or set DOCKER_HOST), and check that this user may use its socket.",
        ) from None
    return client


def _errors() -> Any:
    import docker.errors

    return docker.errors


def _engine_errors() -> tuple[type[BaseException], ...]:
    """What a call to the engine raises when it fails: the SDK's errors and the HTTP client's under them."""
    import docker.errors
    import requests

    return (docker.errors.DockerException, requests.RequestException)


def _workdir(results: Path, loaded: LoadedConfig, exp: ResolvedExperiment, deploy_id: str) -> Path:
    return (results / "deployments" / slug(loaded.name) / slug(exp.name) / deploy_id).resolve()


def _log_tail(container: Any, lines: int = LOG_LINES) -> str:
    try:
        text = container.logs(tail=lines).decode("utf-8", errors="replace").rstrip()
    except Exception as exc:  # the engine may have lost it already
        return f"(no log: {exc})"
    return text or "(the log is empty)"


def _ensure_image(client: Any, image: str, console: Console) -> None:
    errors = _errors()
    try:
        client.images.get(image)
        return
    except errors.ImageNotFound:
        pass
    except _engine_errors() as exc:
        raise FmbError(f"the Docker engine could not look up image {image} ({exc}).") from None
    console.print(f"Pulling {image} (not on this host yet)...", highlight=False, markup=False)
    try:
        client.images.pull(image)
    except _engine_errors() as exc:
        raise FmbError(
            f"image {image} is not on this host and could not be pulled ({exc}).",
            hint="Log in to its registry (for ECR images: aws ecr get-login-password | docker login ...) "
            "or load the image (docker load), then deploy again.",
        ) from None


def _create_kwargs(spec: ContainerSpec, plan: ContainerPlan, name: str, labels: dict[str, str]) -> dict[str, Any]:
    from docker.types import DeviceRequest

    ports: dict[str, tuple[str, int | None]] = {f"{spec.container_port}/tcp": (plan.host_ip, spec.host_port)}
    for inside, outside in spec.extra_ports.items():
        ports[f"{inside}/tcp"] = (plan.host_ip, outside)
    kwargs: dict[str, Any] = {
        "image": spec.image,
        "command": spec.command or None,
        "name": name,
        "environment": spec.env,
        "ports": ports,
        "labels": labels,
        "detach": True,
        "privileged": spec.privileged,
    }
    if spec.ipc_mode:
        kwargs["ipc_mode"] = spec.ipc_mode
    if spec.shm_size:
        kwargs["shm_size"] = spec.shm_size
    if spec.user:
        kwargs["user"] = spec.user
    if spec.devices:
        kwargs["devices"] = [f"{d}:rwm" for d in spec.devices]
    if spec.gpus == "all":
        kwargs["device_requests"] = [DeviceRequest(count=-1, capabilities=[["gpu"]])]
    elif spec.gpus:
        kwargs["device_requests"] = [DeviceRequest(device_ids=[str(g) for g in spec.gpus], capabilities=[["gpu"]])]
    if spec.volumes:
        kwargs["volumes"] = {host: {"bind": inside, "mode": mode} for host, (inside, mode) in spec.volumes.items()}
    if spec.restart_on_failure:
        kwargs["restart_policy"] = {"Name": "on-failure"}
    if spec.ulimits:
        from docker.types import Ulimit

        kwargs["ulimits"] = [Ulimit(name=n, soft=soft, hard=hard) for n, (soft, hard) in spec.ulimits.items()]
    return kwargs


def _published_port(container: Any, container_port: int) -> int:
    container.reload()
    bindings = (container.attrs.get("NetworkSettings") or {}).get("Ports") or {}
    for binding in bindings.get(f"{container_port}/tcp") or []:
        if binding.get("HostPort"):
            return int(binding["HostPort"])
    raise FmbError(f"container {container.name}: Docker published no host port for port {container_port}.")


def _status(container: Any) -> tuple[str, int]:
    container.reload()
    return container.status, int(container.attrs.get("RestartCount") or 0)


def _answers(url: str, payload: dict[str, Any]) -> tuple[bool, str]:
    try:
        response = httpx.post(url, json=payload, timeout=PROBE_TIMEOUT_S)
    except httpx.HTTPError as exc:
        return False, type(exc).__name__
    return response.status_code == 200, f"HTTP {response.status_code}"


def _pull_ollama_model(base: str, model: str, deadline: float) -> None:
    """Ask Ollama's API to pull the model (what FMBench's `ollama pull` does); FmbError if it cannot."""
    try:
        response = httpx.post(
            f"{base}/api/pull", json={"model": model, "stream": False}, timeout=max(1.0, deadline - time.monotonic())
        )
    except httpx.HTTPError as exc:
        raise FmbError(f"Ollama could not pull {model} ({type(exc).__name__}: {exc}).") from None
    if response.status_code != 200:
        raise FmbError(f"Ollama could not pull {model}: HTTP {response.status_code} {response.text[:300]}")


class Ec2Deployer:
    """Inference containers on this host (FMBench's ec2_deploy.py), through the Docker Engine API."""

    kind = "ec2"

    def handles(self, exp: ResolvedExperiment) -> bool:
        return (exp.spec.deployment_script or "").strip() == EC2_SCRIPT

    def plan(self, exp: ResolvedExperiment, loaded: LoadedConfig, host_port: str | None = None) -> DeployPlan:
        workdir = Path("RESULTS") / "deployments" / slug(loaded.name) / slug(exp.name) / "DEPLOYMENT"
        plan = build_plan(exp, loaded, workdir, host_port=host_port)
        problems = list(plan.problems)
        try:
            import docker  # noqa: F401
        except ImportError:
            problems.append("the Docker SDK is not installed (pip install 'fmb[ec2]')")
        count = len(plan.containers)
        how = (
            f"EC2: {count} {plan.container_type} container{'s' if count != 1 else ''} from "
            f"{plan.containers[0].image if plan.containers else '-'} on this host (Docker Engine API)"
        )
        return DeployPlan(self.kind, how, plan_lines(plan, exp.spec.instance_type), problems)

    def deploy(self, exp: ResolvedExperiment, context: DeployContext) -> Deployment:
        started = time.monotonic()
        loaded, console = context.loaded, context.console
        deploy_id = datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)
        workdir = _workdir(context.results, loaded, exp, deploy_id)
        plan = build_plan(exp, loaded, workdir, host_port=context.host_port)
        if plan.problems:
            raise FmbError(
                f"experiment {exp.name!r}: fmb cannot start its {container_type(exp)} container: "
                + "; ".join(plan.problems)
                + ".",
                hint="`fmb deploy --dry-run CONFIG` shows what fmb would start.",
            )
        client = _docker()
        for note in plan.notes:
            console.print(f"{exp.name}: note: {note}", highlight=False, markup=False, soft_wrap=True)
        log_dir = (context.results / "deployments" / "logs" / slug(loaded.name)).resolve()
        deployment = Deployment(
            experiment=exp.name,
            kind=self.kind,
            endpoint="",
            created_at=datetime.now(UTC).isoformat(),
            deploy_seconds=0.0,
            log_path=str(log_dir),
            attached=False,
            resources={"deploy_id": deploy_id, "workdir": str(workdir), "containers": []},
        )
        try:
            self._start(exp, plan, client, deployment, context, deploy_id)
            # FMBench's clock starts once the containers run: pulling an image does not count.
            self._wait_ready(exp, plan, client, deployment, console, time.monotonic())
        except _engine_errors() as exc:
            self._undo(exp, deployment, context)
            raise FmbError(
                f"experiment {exp.name!r}: the Docker engine failed ({type(exc).__name__}: {exc})."
            ) from None
        except BaseException:
            self._undo(exp, deployment, context)
            raise
        deployment.deploy_seconds = time.monotonic() - started
        context.registry.add(deployment)
        copies = deployment.resources.get("copy_urls") or [deployment.endpoint]
        console.print(
            f"{exp.name}: {len(plan.containers)} container(s) ready ({deployment.deploy_seconds:.1f} s); "
            f"requests go to {', '.join(copies)}",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
        return deployment

    def _undo(self, exp: ResolvedExperiment, deployment: Deployment, context: DeployContext) -> None:
        """Remove what a failed deploy created; if that fails too, the record stays for `fmb cleanup`."""
        try:
            self.remove(deployment, context.loaded)
            context.registry.remove(exp.name)
        except FmbError as exc:
            context.console.print(f"[bold red]Cleanup failed:[/] {escape(exc.message)}", highlight=False)

    def _start(
        self,
        exp: ResolvedExperiment,
        plan: ContainerPlan,
        client: Any,
        deployment: Deployment,
        context: DeployContext,
        deploy_id: str,
    ) -> None:
        errors = _errors()
        for image in dict.fromkeys(spec.image for spec in plan.containers):
            _ensure_image(client, image, context.console)
        for spec in plan.containers:
            for path, text in spec.files.items():
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                Path(path).write_text(text, encoding="utf-8")
                if text.startswith("#!"):
                    Path(path).chmod(0o755)
            for host_path, (_, mode) in spec.volumes.items():
                if host_path.startswith(str(deployment.resources["workdir"])):
                    Path(host_path).mkdir(parents=True, exist_ok=True)
                    if mode == "rw":  # the server may run as another user (DJL's runs as djl)
                        Path(host_path).chmod(0o777)
        urls: list[str] = []
        for spec in plan.containers:
            name = f"fmb-{slug(exp.name)[:40]}-{deploy_id}-{spec.copy}"
            labels = {
                f"{LABEL_PREFIX}benchmark": context.loaded.name,
                f"{LABEL_PREFIX}experiment": exp.name,
                f"{LABEL_PREFIX}deployment": deploy_id,
                f"{LABEL_PREFIX}copy": str(spec.copy),
                f"{LABEL_PREFIX}results": str(context.results.resolve()),
            }
            if context.run_id:
                labels[f"{LABEL_PREFIX}run_id"] = context.run_id
            try:
                container = client.containers.create(**_create_kwargs(spec, plan, name, labels))
            except _engine_errors() as exc:
                raise FmbError(f"experiment {exp.name!r}: Docker could not create container {name} ({exc}).") from None
            deployment.resources["containers"].append({"id": container.id, "name": name, "copy": spec.copy})
            context.registry.add(deployment)  # recorded before it runs: cleanup can always find it
            try:
                container.start()
            except errors.APIError as exc:
                text = str(exc.explanation or exc)
                hint = None
                if spec.privileged and ("caps" in text or "privileged" in text or "not permitted" in text):
                    hint = (
                        "The engine refused a privileged container (ec2.privileged_mode: yes), as rootless and "
                        "nested engines do. Run fmb where dockerd runs as root on the host, or set "
                        "privileged_mode: no if the server does not need it."
                    )
                elif "allocated" in text or "in use" in text:
                    hint = (
                        f"Host port {spec.host_port} is taken. Stop what uses it, or let Docker pick free ports: "
                        "set ec2.host_port: auto in the experiment, or pass --host-port auto."
                    )
                raise FmbError(
                    f"experiment {exp.name!r}: container {name} did not start ({text}).", hint=hint
                ) from None
            first = _published_port(container, spec.container_port)
            urls.append(plan.url(first))
            for i in range(1, plan.urls_per_container):
                urls.append(plan.url(_published_port(container, spec.container_port + 3 * i)))
        deployment.endpoint = urls[0]
        if len(urls) > 1:
            deployment.resources["copy_urls"] = urls
        context.registry.add(deployment)

    def _wait_ready(
        self,
        exp: ResolvedExperiment,
        plan: ContainerPlan,
        client: Any,
        deployment: Deployment,
        console: Console,
        started: float,
    ) -> None:
        deadline = started + plan.timeout_s
        containers = [client.containers.get(c["id"]) for c in deployment.resources["containers"]]
        urls = deployment.resources.get("copy_urls") or [deployment.endpoint]
        owner = [containers[min(i, len(containers) - 1)] for i in range(len(urls))]
        pending = dict(enumerate(urls))
        pulled = plan.pull_model is None
        with _progress(console, f"{escape(exp.name)}: starting") as status:
            while pending:
                for container in containers:
                    try:
                        state, restarts = _status(container)
                    except _errors().NotFound:
                        raise FmbError(
                            f"experiment {exp.name!r}: container {container.name} was removed (not by fmb) before "
                            "it answered."
                        ) from None
                    if state in ("exited", "dead") or restarts >= MAX_RESTARTS:
                        what = (
                            f"exited (code {container.attrs['State'].get('ExitCode')})"
                            if state
                            in (
                                "exited",
                                "dead",
                            )
                            else f"restarted {restarts} times"
                        )
                        raise FmbError(
                            f"experiment {exp.name!r}: container {container.name} {what} before it answered. "
                            f"The end of its log:\n{_log_tail(container)}",
                            hint="Its whole log is kept under the results folder's deployments/logs.",
                        )
                if not pulled and plan.pull_model:
                    base = urls[0].split(plan.path, 1)[0] if plan.path else urls[0]
                    if httpx_ok(f"{base}/api/tags"):
                        status.update(f"{escape(exp.name)}: pulling {escape(plan.pull_model)} into Ollama")
                        _pull_ollama_model(base, plan.pull_model, deadline)
                        pulled = True
                for index, url in list(pending.items()):
                    if not pulled:
                        break
                    ok, why = _answers(url, plan.probe)
                    if ok:
                        del pending[index]
                    else:
                        last = _log_tail(owner[index], 1).splitlines()[-1:] or [""]
                        elapsed = time.monotonic() - started
                        status.update(
                            f"{escape(exp.name)}: waiting for copy {index + 1} of {len(urls)} ({why}, {elapsed:.0f} s)"
                            f": {escape(last[0][:100])}"
                        )
                if not pending:
                    break
                if time.monotonic() > deadline:
                    waiting = ", ".join(urls[i] for i in pending)
                    raise FmbError(
                        f"experiment {exp.name!r}: {waiting} did not answer within {plan.timeout_s:g} s "
                        f"(ec2.model_loading_timeout). The end of the log:\n{_log_tail(owner[min(pending)])}",
                        hint="The containers were removed and their logs kept; raise model_loading_timeout for "
                        "models that load slowly.",
                    )
                time.sleep(POLL_S)

    def is_running(self, deployment: Deployment) -> bool:
        try:
            client = _docker()
        except FmbError:
            return True  # cannot tell: keep the record, so cleanup can try again
        errors = _errors()
        for recorded in deployment.resources.get("containers", []):
            try:
                if client.containers.get(recorded["id"]).status in ("running", "restarting", "created"):
                    return True
            except errors.NotFound:
                continue
            except _engine_errors():
                return True
        return False

    def describe(self, deployment: Deployment) -> str:
        names = ", ".join(c["name"] for c in deployment.resources.get("containers", [])) or "no container"
        return f"ec2, Docker container(s) {names}"

    def remove(self, deployment: Deployment, loaded: LoadedConfig) -> None:
        """Keep each recorded container's log, then stop and remove it; never touch another container."""
        recorded = list(deployment.resources.get("containers", []))
        deploy_id = deployment.resources.get("deploy_id")
        if not recorded and not deploy_id:
            return
        client = _docker()
        errors = _errors()
        problems = []
        try:  # a container created but not yet recorded when the deploy was interrupted carries the id too
            labelled = client.containers.list(all=True, filters={"label": f"{LABEL_PREFIX}deployment={deploy_id}"})
        except _engine_errors() as exc:
            labelled = []
            problems.append(f"listing the containers of deployment {deploy_id}: {exc}")
        known = {entry["id"] for entry in recorded}
        recorded += [
            {"id": c.id, "name": c.name, "copy": (c.labels or {}).get(f"{LABEL_PREFIX}copy", "?")}
            for c in labelled
            if c.id not in known
        ]
        log_dir = Path(deployment.log_path) if deployment.log_path else None
        for entry in recorded:
            try:
                container = client.containers.get(entry["id"])
            except errors.NotFound:
                continue
            except _engine_errors() as exc:
                problems.append(f"{entry['name']}: {exc}")
                continue
            if (container.labels or {}).get(f"{LABEL_PREFIX}deployment") != deploy_id:
                problems.append(f"{entry['name']}: its labels do not name deployment {deploy_id}; left alone")
                continue
            try:
                container.stop(timeout=10)
            except _engine_errors():
                pass  # removed below with force
            if log_dir is not None:
                try:
                    log_dir.mkdir(parents=True, exist_ok=True)
                    logs = container.logs(timestamps=True).decode("utf-8", errors="replace")
                    path = log_dir / f"{slug(deployment.experiment)}-{deploy_id}-copy-{entry['copy']}.log"
                    path.write_text(loaded.redactor()(logs) or "", encoding="utf-8")
                except (OSError, *_engine_errors()):  # type: ignore[misc]
                    pass  # a lost log never keeps a container running
            try:
                container.remove(force=True)
            except errors.NotFound:
                pass
            except _engine_errors() as exc:
                problems.append(f"{entry['name']}: {exc}")
        if problems:
            raise FmbError(
                f"could not remove everything fmb started for {deployment.experiment}: {'; '.join(problems)}.",
                hint="The record is kept; run `fmb cleanup CONFIG` again, or remove them with docker rm -f.",
            )


class _Lines:
    """Progress as a line every few seconds, where a live status cannot be shown (another live display is on)."""

    def __init__(self, console: Console, every_s: float = 15.0) -> None:
        self.console, self.every_s, self.last = console, every_s, 0.0

    def update(self, text: str) -> None:
        if time.monotonic() - self.last >= self.every_s:
            self.last = time.monotonic()
            self.console.print(text, highlight=False)


@contextmanager
def _progress(console: Console, text: str) -> Iterator[Any]:
    """A live status line, or plain lines when a live display (the collect progress) is already on."""
    from rich.errors import LiveError

    status = console.status(text)
    try:
        status.start()
    except LiveError:
        yield _Lines(console)
        return
    try:
        yield status
    finally:
        status.stop()


def httpx_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=5.0).status_code == 200
    except httpx.HTTPError:
        return False
