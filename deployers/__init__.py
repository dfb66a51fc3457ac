"""Standing endpoints up and taking them down again: exactly what fmb created, nothing else."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from fmb.config import LoadedConfig, ResolvedExperiment
from fmb.deployers import local
from fmb.deployers.registry import Deployment, Registry
from fmb.errors import FmbError

SAGEMAKER_SCRIPTS = {"jumpstart.py", "deploy_w_hf_tgi.py", "deploy_w_djl_serving.py", "sagemaker_deploy.py"}


def kind_of(exp: ResolvedExperiment) -> str:
    """The hosting option of an experiment with `deploy: yes`, from its deployment_script."""
    script = (exp.spec.deployment_script or "").strip()
    if script in local.LOCAL_SCRIPTS or (not script and exp.spec.local is not None):
        return "local"
    if script in SAGEMAKER_SCRIPTS:
        return "sagemaker"
    raise FmbError(
        f"experiment {exp.name!r}: fmb cannot deploy with deployment_script {script or '(none)'!r}.",
        hint="fmb deploys local servers (deployment_script: local.py with a local: section) and SageMaker "
        f"endpoints ({', '.join(sorted(SAGEMAKER_SCRIPTS))}). For anything else, start the endpoint yourself "
        "and set deploy: no with its ep_name or endpoint_url.",
    )


def _start(exp: ResolvedExperiment, results: Path, attached: bool, console: Console) -> Deployment:
    kind = kind_of(exp)
    if kind == "local":
        return local.start(exp, results / "deployments" / "logs", attached, console)
    raise FmbError(
        f"experiment {exp.name!r}: deploying to SageMaker ({exp.spec.deployment_script}) is not part of this "
        "version of fmb yet.",
        hint="Deploy the endpoint yourself and set deploy: no with ep_name, or run the other experiments "
        "with --experiment NAME.",
    )


def _stop(deployment: Deployment) -> None:
    if deployment.kind == "local" and deployment.pid is not None:
        local.stop_process(deployment.pid)


def is_running(deployment: Deployment) -> bool:
    if deployment.kind == "local":
        return local.is_running(deployment)
    return True


def deploy(
    loaded: LoadedConfig,
    results: Path,
    console: Console,
    *,
    attached: bool,
    only: tuple[str, ...] = (),
) -> list[Deployment]:
    """Stand up every experiment with `deploy: yes` (and not already up); record each at once.

    If one fails, the ones this call started are taken down again before the error is raised.
    """
    registry = Registry(results, loaded.name)
    started: list[Deployment] = []
    try:
        for exp in loaded.experiments:
            if not exp.spec.deploy or (only and exp.name not in only):
                continue
            known = registry.deployments.get(exp.name)
            if known is not None and is_running(known):
                console.print(f"{exp.name}: already deployed at {known.endpoint}", highlight=False)
                continue
            deployment = _start(exp, results, attached, console)
            registry.add(deployment)
            started.append(deployment)
    except BaseException:
        for deployment in started:
            _stop(deployment)
            registry.remove(deployment.experiment)
        raise
    return started


def endpoints(loaded: LoadedConfig, results: Path) -> dict[str, dict]:
    """Collector info for every recorded deployment of this benchmark that is still up."""
    registry = Registry(results, loaded.name)
    return {name: d.collect_info() for name, d in registry.deployments.items() if is_running(d)}


def missing_deployments(loaded: LoadedConfig, results: Path, only: tuple[str, ...] = ()) -> list[str]:
    """Experiments with `deploy: yes` that have no running deployment."""
    up = endpoints(loaded, results)
    return [e.name for e in loaded.experiments if e.spec.deploy and e.name not in up and (not only or e.name in only)]


def cleanup(loaded: LoadedConfig, results: Path, console: Console, *, only_attached: bool = False) -> list[str]:
    """Remove what fmb deployed for this benchmark (as recorded), and nothing else."""
    registry = Registry(results, loaded.name)
    removed = []
    for name, deployment in list(registry.deployments.items()):
        if only_attached and not deployment.attached:
            continue
        _stop(deployment)
        registry.remove(name)
        removed.append(name)
        console.print(f"{name}: removed ({deployment.kind}, {deployment.endpoint})", highlight=False)
    return removed
