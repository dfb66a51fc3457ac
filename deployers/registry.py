"""What fmb deployed, recorded at deploy time so that cleanup removes exactly that.

One JSON file per benchmark, ``RESULTS/deployments/<benchmark>.json``, written atomically
after every change. A brought endpoint (``deploy: no``) is never recorded, so it can
never be cleaned up by mistake.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fmb.errors import FmbError
from fmb.paths import slug
from fmb.redact import Redactor


@dataclass
class Deployment:
    experiment: str
    kind: str  # "local", "sagemaker", "ec2", "eks"
    endpoint: str  # URL or endpoint name the collector sends to
    created_at: str
    deploy_seconds: float
    pid: int | None = None  # local: the supervisor process (its own process group)
    log_path: str | None = None
    resources: dict[str, Any] = field(default_factory=dict)  # sagemaker: model, endpoint config, endpoint
    attached: bool = False  # local: stopped when the fmb process that started it exits

    def collect_info(self) -> dict[str, Any]:
        """What the collector needs: where to send (every copy's URL when there are several), and how long
        deploying took."""
        return {
            "endpoint": self.endpoint,
            "deploy_seconds": self.deploy_seconds,
            "kind": self.kind,
            "copies": list(self.resources.get("copy_urls") or []),
        }


class Registry:
    def __init__(self, results: Path, benchmark: str) -> None:
        self.path = results / "deployments" / f"{slug(benchmark)}.json"
        self.deployments: dict[str, Deployment] = {}
        if self.path.is_file():
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
                self.deployments = {d["experiment"]: Deployment(**d) for d in data.get("deployments", [])}
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise FmbError(
                    f"the record of what fmb deployed, {self.path}, is damaged ({exc}).",
                    hint="Check that what it lists is gone (SageMaker console, local processes), then delete it.",
                ) from None

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        # URL credentials never go to disk; `fmb collect` takes them from the config again.
        # Resource names stay as they are: cleanup needs them to remove exactly what was made.
        payload = {"deployments": [asdict(d) | {"endpoint": Redactor()(d.endpoint)} for d in self.deployments.values()]}
        tmp.write_text(json.dumps(payload, indent=2), encoding="utf-8")
        os.replace(tmp, self.path)

    def add(self, deployment: Deployment) -> None:
        self.deployments[deployment.experiment] = deployment
        self.save()

    def remove(self, experiment: str) -> None:
        self.deployments.pop(experiment, None)
        self.save()
