"""The run layer's answer to "where do an experiment's requests go": a typed endpoint.

An experiment with `deploy: no` names its endpoint in the config (endpoint_url, ep_name);
one with `deploy: yes` must have a running deployment recorded by `fmb deploy` or
`fmb run`, which says where it is. The collector is handed the result and never reads the
deployment records itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from fmb.config import LoadedConfig, ResolvedExperiment
from fmb.errors import CollectError
from fmb.paths import ResultsLayout
from fmb.redact import Redactor


@dataclass(frozen=True)
class Endpoint:
    """Where an experiment's requests go: a URL, a SageMaker endpoint name or a Bedrock model id."""

    address: str | None
    deployed_by_fmb: bool = False
    deploy_seconds: float | None = None
    kind: str | None = None  # the deployer that made it ("local", "ec2", "sagemaker", "eks"); None when brought
    # Several copies of the model behind separate URLs (FMBench's model_copies): requests are
    # spread over them and each row records which copy served it. Empty: one copy, at address.
    copies: tuple[str, ...] = ()


def resolve_endpoints(
    loaded: LoadedConfig, layout: ResultsLayout, only: tuple[str, ...] = (), staged: frozenset[str] = frozenset()
) -> dict[str, Endpoint]:
    """Where each experiment's requests go.

    An experiment with `deploy: yes` must have a running deployment; its URL or endpoint
    name comes from the deployment record. A ``staged`` experiment is deployed later, right
    before its cells (see :class:`fmb.collector.collect.Stage`): its entry is a stand-in.
    """
    from fmb import deployers

    deployed = deployers.endpoints(loaded, layout.root)
    missing = [m for m in deployers.missing_deployments(loaded, layout.root, only) if m not in staged]
    if missing:
        raise CollectError(
            f"experiment(s) {', '.join(missing)} have deploy: yes but nothing fmb deployed for them is running.",
            hint="Stand them up with `fmb deploy CONFIG` (and remove them later with `fmb cleanup CONFIG`), "
            "or use `fmb run CONFIG`, which does both; or set deploy: no and give ep_name/endpoint_url.",
        )
    endpoints: dict[str, Endpoint] = {}
    for exp in loaded.experiments:
        record = deployed.get(exp.name) if exp.spec.deploy else None
        if exp.name in staged:
            endpoints[exp.name] = Endpoint(exp.endpoint, True, kind=deployers.deployer_for(exp).kind)
        elif record is None:
            endpoints[exp.name] = Endpoint(exp.endpoint)
        else:
            endpoints[exp.name] = Endpoint(
                _deployed_endpoint(exp, record["endpoint"]),
                True,
                record.get("deploy_seconds"),
                kind=record.get("kind"),
                copies=tuple(record.get("copies") or ()),
            )
    return endpoints


def _deployed_endpoint(exp: ResolvedExperiment, recorded: str) -> str:
    """The recorded endpoint, or the configured URL when the record holds it with its userinfo masked."""
    configured = exp.spec.endpoint_url
    if configured and recorded == Redactor()(configured):
        return configured
    return recorded
