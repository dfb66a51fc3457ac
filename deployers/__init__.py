"""Standing endpoints up and taking them down again: exactly what fmb created, nothing else."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from fmb.config import LoadedConfig, ResolvedExperiment
from fmb.deployers.base import DeployContext, Deployer, DeployPlan
from fmb.deployers.containers import EC2_SCRIPT
from fmb.deployers.ec2 import Ec2Deployer
from fmb.deployers.eks import EksDeployer
from fmb.deployers.local import LocalDeployer
from fmb.deployers.registry import Deployment, Registry
from fmb.deployers.sagemaker import CONTAINER_SCRIPTS, JUMPSTART_SCRIPT, SageMakerDeployer
from fmb.errors import FmbError

# Every hosting option fmb can deploy to, one class each (see fmb.deployers.base.Deployer).
DEPLOYERS: tuple[Deployer, ...] = (LocalDeployer(), SageMakerDeployer(), Ec2Deployer(), EksDeployer())


def deployer_for(exp: ResolvedExperiment) -> Deployer:
    """The hosting option of an experiment with `deploy: yes`, from its deployment_script."""
    for deployer in DEPLOYERS:
        if deployer.handles(exp):
            return deployer
    script = (exp.spec.deployment_script or "").strip()
    raise FmbError(
        f"experiment {exp.name!r}: fmb cannot deploy with deployment_script {script or '(none)'!r}.",
        hint="fmb deploys local servers (deployment_script: local.py with a local: section), SageMaker "
        f"endpoints ({', '.join(sorted({JUMPSTART_SCRIPT, *CONTAINER_SCRIPTS}))}) and inference containers on "
        f"this host ({EC2_SCRIPT}), and EKS manifests (eks_deploy.py with an eks: section). For anything else, "
        "start the "
        "endpoint yourself and set deploy: no with its ep_name or endpoint_url.",
    )


def plan(exp: ResolvedExperiment, loaded: LoadedConfig, host_port: str | None = None) -> DeployPlan:
    """What deploying the experiment would create, or why fmb cannot deploy it; creates nothing."""
    try:
        deployer = deployer_for(exp)
    except FmbError as exc:
        return DeployPlan("none", "fmb cannot deploy it", problems=[exc.message])
    if isinstance(deployer, Ec2Deployer):
        return deployer.plan(exp, loaded, host_port=host_port)
    return deployer.plan(exp, loaded)


def one_at_a_time(loaded: LoadedConfig) -> frozenset[str]:
    """Experiments to deploy one at a time, each right before its cells: the containers on this host.

    FMBench deploys every experiment, runs it and removes it before the next; containers on
    one host would otherwise share its ports and accelerators. With one such experiment
    there is nothing to share, so it is deployed with the others.
    """
    names = []
    for exp in loaded.experiments:
        if not exp.spec.deploy:
            continue
        try:
            if deployer_for(exp).kind == Ec2Deployer.kind:
                names.append(exp.name)
        except FmbError:
            continue
    return frozenset(names) if len(names) > 1 else frozenset()


def deployer_of(deployment: Deployment) -> Deployer:
    """The hosting option that made a recorded deployment."""
    for deployer in DEPLOYERS:
        if deployer.kind == deployment.kind:
            return deployer
    raise FmbError(f"{deployment.experiment}: the record names an unknown kind of deployment {deployment.kind!r}.")


def is_running(deployment: Deployment) -> bool:
    return deployer_of(deployment).is_running(deployment)


def deploy(
    loaded: LoadedConfig,
    results: Path,
    console: Console,
    *,
    attached: bool,
    only: tuple[str, ...] = (),
    host_port: str | None = None,
    run_id: str | None = None,
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
            if known is not None:  # recorded but no longer up (a container that exited): take it down first
                deployer_of(known).remove(known, loaded)
                registry.remove(exp.name)
            context = DeployContext(loaded, registry, results, console, attached, host_port, run_id)
            started.append(deployer_for(exp).deploy(exp, context))
    except BaseException:
        for deployment in started:
            deployer_of(deployment).remove(deployment, loaded)
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
        deployer = deployer_of(deployment)
        try:
            deployer.remove(deployment, loaded)
        except FmbError as exc:
            problems.append(exc.message)
            continue
        registry.remove(name)
        removed.append(name)
        console.print(f"{name}: removed ({deployer.describe(deployment)})", highlight=False, markup=False)
    if problems:
        raise FmbError("; ".join(problems), hint="Run `fmb cleanup CONFIG` again, or remove them by hand.")
    return removed
