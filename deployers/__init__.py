"""Standing endpoints up and taking them down again: exactly what fmb created, nothing else."""

from __future__ import annotations

from pathlib import Path

from fmb.deployers import local, sagemaker
from fmb.deployers.registry import Deployment, Registry
from rich.console import Console

from fmb.config import LoadedConfig, ResolvedExperiment
from fmb.errors import FmbError

SAGEMAKER_SCRIPTS = {sagemaker.JUMPSTART_SCRIPT, *sagemaker.CONTAINER_SCRIPTS}


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


def _start(exp: ResolvedExperiment, loaded: LoadedConfig, registry: Registry, results: Path, attached: bool,
           console: Console) -> Deployment:
    if kind_of(exp) == "local":
        deployment = local.start(exp, results / "deployments" / "logs", attached, console)
        registry.add(deployment)
        return deployment
    return sagemaker.start(exp, loaded, console, record=registry.add, forget=registry.remove)


def _stop(deployment: Deployment, loaded: LoadedConfig) -> None:
    if deployment.kind == "local":
        if deployment.pid is not None:
            local.stop_process(deployment.pid)
    else:
        sagemaker.remove(deployment, loaded)


def is_running(deployment: Deployment) -> bool:
    """A local server is checked; a cloud endpoint is up as long as its record is (cleanup removes both)."""
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
                console.print(f"{exp.name}: already deployed at {known.endpoint}", highlight=False, markup=False)
                continue
            started.append(_start(exp, loaded, registry, results, attached, console))
    except BaseException:
        for deployment in started:
            _stop(deployment, loaded)
            registry.remove(deployment.experiment)
        raise
    return started


def still_running(loaded: LoadedConfig, results: Path) -> list[Deployment]:
    """What fmb deployed for this benchmark and has not removed yet."""
    registry = Registry(results, loaded.name)
    return [d for d in registry.deployments.values() if is_running(d)]


def endpoints(loaded: LoadedConfig, results: Path) -> dict[str, dict]:
    """Collector info for every recorded deployment of this benchmark that is still up."""
    return {d.experiment: d.collect_info() for d in still_running(loaded, results)}


def missing_deployments(loaded: LoadedConfig, results: Path, only: tuple[str, ...] = ()) -> list[str]:
    """Experiments with `deploy: yes` that have no running deployment."""
    up = endpoints(loaded, results)
    return [e.name for e in loaded.experiments if e.spec.deploy and e.name not in up and (not only or e.name in only)]


def cleanup(
    loaded: LoadedConfig,
    results: Path,
    console: Console,
    *,
    only: set[str] | None = None,
    attached_too: bool = True,
) -> list[str]:
    """Remove what fmb deployed for this benchmark (as recorded), and nothing else.

    ``only`` limits it to these experiments (plus, with ``attached_too``, every local server
    started by this process). A failure to remove one deployment does not stop the others;
    the problems are raised together at the end, and their records are kept.
    """
    registry = Registry(results, loaded.name)
    removed, problems = [], []
    for name, deployment in list(registry.deployments.items()):
        chosen = only is None or name in only or (attached_too and deployment.attached)
        if not chosen:
            continue
        try:
            _stop(deployment, loaded)
        except FmbError as exc:
            problems.append(exc.message)
            continue
        registry.remove(name)
        removed.append(name)
        console.print(f"{name}: removed ({deployment.kind}, {deployment.endpoint})", highlight=False, markup=False)
    if problems:
        raise FmbError("; ".join(problems), hint="Run `fmb cleanup CONFIG` again, or remove them by hand.")
    return removed
