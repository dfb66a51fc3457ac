"""The protocol every hosting option implements: stand up, check, describe, remove.

One class per hosting option (a local process, a SageMaker endpoint; containers and EKS
come next). ``deploy`` stands the endpoint up and waits until it answers, recording
every resource in the registry the moment it exists, so that ``remove`` (and
`fmb cleanup`) can take down exactly what was created, even after a crash.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from rich.console import Console

from fmb.config import LoadedConfig, ResolvedExperiment
from fmb.deployers.registry import Deployment, Registry


@dataclass
class DeployContext:
    """What a deployment needs beyond its experiment."""

    loaded: LoadedConfig
    registry: Registry
    results: Path
    console: Console
    attached: bool  # local servers: stop when the fmb process that started them exits
    host_port: str | None = None  # containers: overrides ec2.host_port ("auto", "config" or a number)
    run_id: str | None = None  # under `fmb run`: the run the deployment is for (a label on containers)


@dataclass
class DeployPlan:
    """What deploying an experiment would create, worked out without creating or contacting anything.

    ``how`` is one line ("EC2: 1 Docker container from IMAGE on this host"); ``details`` are
    the lines `fmb deploy --dry-run` prints under it (image, command, env with secrets
    masked, ports, devices, instance type, ...); ``problems`` say why fmb cannot deploy it
    as configured (empty when it can).
    """

    kind: str
    how: str
    details: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def deployable(self) -> bool:
        return not self.problems


class Deployer(Protocol):
    kind: str  # recorded in Deployment.kind

    def handles(self, exp: ResolvedExperiment) -> bool:
        """Whether this hosting option deploys the experiment (from its deployment_script)."""
        ...

    def plan(self, exp: ResolvedExperiment, loaded: LoadedConfig) -> DeployPlan:
        """What deploy would create; reads local files at most, never creates or calls anything."""
        ...

    def deploy(self, exp: ResolvedExperiment, context: DeployContext) -> Deployment:
        """Stand the endpoint up and wait until it answers; everything created is in the registry."""
        ...

    def is_running(self, deployment: Deployment) -> bool:
        """Whether a recorded deployment is still up."""
        ...

    def describe(self, deployment: Deployment) -> str:
        """One line saying what the deployment is and where (no credentials)."""
        ...

    def remove(self, deployment: Deployment, loaded: LoadedConfig) -> None:
        """Take down exactly what the record names; raise FmbError if something could not be removed."""
        ...
