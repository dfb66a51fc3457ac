"""EKS deployments (FMBench's eks_deploy.py) against a Kubernetes API server on a free local port.

The real Kubernetes client (its dynamic client, discovery included) talks HTTP to
:class:`tests.fake_kube.FakeKube` through a kubeconfig; the model behind the Ingress is
:class:`tests.fake_kube.FakeRayServe`. Nothing in the client is patched.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from fmb import deployers
from fmb.collector.targets.base import Recorder, Request
from fmb.collector.targets.containers import RayServeTarget, ray_serve_text, ray_serve_url
from fmb.config import LoadedConfig, load_config
from fmb.deployers import eks
from fmb.deployers.registry import Registry
from fmb.errors import FmbError
from tests.fake_kube import FakeKube, FakeRayServe, fake_kube, fake_ray_serve

FIXTURES = Path(__file__).parent / "fixtures" / "configs"
CLUSTER_ARN = "arn:aws:eks:us-east-1:111122223333:cluster/trainium-inferentia"
TOKEN = "hf_TestTokenThatMustNeverBeShown0123456789"
NAMESPACE = ("Namespace", None, "llama3")
RAY_SERVICE = ("RayService", "llama3", "llama3-service")
INGRESS = ("Ingress", "llama3", "llama3-ingress")
UNRELATED = ("ConfigMap", "default", "not-fmbs")


def configmap(name: str, namespace: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace}}


def namespace(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


@pytest.fixture
def bench(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The fixture config and its manifest in a folder of their own, with FMBench's hf_token.txt."""
    folder = tmp_path / "bench"
    shutil.copytree(FIXTURES, folder / "configs")
    (folder / "configs" / "scripts").mkdir()
    (folder / "configs" / "scripts" / "hf_token.txt").write_text(TOKEN + "\n", encoding="utf-8")
    for variable in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "KUBERNETES_SERVICE_HOST", "AWS_REGION"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/.kube/config of the machine's
    return folder / "configs" / "eks-llama3.yml"


def edit(config: Path, old: str, new: str) -> Path:
    text = config.read_text(encoding="utf-8")
    assert old in text
    config.write_text(text.replace(old, new, 1), encoding="utf-8")
    return config


def load(config: Path, tmp_path: Path) -> LoadedConfig:
    return load_config(config, results_dir=tmp_path / "results")


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FakeKube, FakeRayServe]]:
    """The API server, and the model behind it: an Ingress gets the model's address, as the load balancer
    controller would give it; a RayService says it is running."""
    with fake_ray_serve() as serve:

        def ingress_address(obj: dict[str, Any]) -> None:
            obj["status"] = {"loadBalancer": {"ingress": [{"ip": "127.0.0.1", "ports": [{"port": serve.port}]}]}}

        def ray_running(obj: dict[str, Any]) -> None:
            obj["status"] = {"serviceStatus": "Running"}

        kube = FakeKube(on_create={"Ingress": ingress_address, "RayService": ray_running})
        with fake_kube(kube):
            kube.add(namespace("default"))
            kube.add(configmap("not-fmbs", "default"))
            monkeypatch.setenv("KUBECONFIG", str(kube.kubeconfig(tmp_path / "kubeconfig", CLUSTER_ARN)))
            yield kube, serve


def deploy(loaded: LoadedConfig, tmp_path: Path) -> tuple[list[Any], str]:
    out = io.StringIO()
    started = deployers.deploy(loaded, tmp_path / "results", Console(file=out, width=200), attached=False)
    return started, out.getvalue()


def recorded(loaded: LoadedConfig, tmp_path: Path) -> dict[str, Any]:
    return {name: d.resources for name, d in Registry(tmp_path / "results", loaded.name).deployments.items()}


# --- config ---------------------------------------------------------------------------------


def test_fmbench_eks_config_loads_typed_and_resolves_to_ray_serve(bench: Path, tmp_path: Path) -> None:
    loaded = load(bench, tmp_path)
    (exp,) = loaded.experiments
    assert exp.spec.eks is not None
    assert exp.spec.eks.eks_cluster_name == "trainium-inferentia"
    assert exp.spec.eks.eks_model_namespace == "llama3"
    assert (exp.spec.eks.manifest_dir, exp.spec.eks.manifest_file) == (
        "configs/eks_manifests",
        "llama3-ray-service.yaml",
    )
    assert exp.spec.inference_spec.inference_url_format == "/serve/infer?sentence="
    assert exp.backend == "ray-serve"
    assert exp.endpoint is None  # the deployment says where it is
    assert not [w for w in loaded.warnings if "eks" in w or "inference_url_format" in w]
    assert isinstance(deployers.deployer_for(exp), eks.EksDeployer)


def test_rest_predictor_speaks_ray_serve_and_a_container_type_still_wins(write_config: Any, tmp_path: Path) -> None:
    config = write_config(
        """
        general: {name: r}
        experiments:
        - {name: rest, inference_script: rest_predictor.py, ep_name: "http://h/serve/infer?sentence=",
           payload_files: [p.jsonl], concurrency_levels: [1]}
        - {name: eks-vllm, inference_script: eks_predictor.py, ep_name: "http://h/v1",
           inference_spec: {container_type: vllm}, payload_files: [p.jsonl], concurrency_levels: [1]}
        """
    )
    rest, vllm = load(config, tmp_path).experiments
    assert (rest.backend, vllm.backend) == ("ray-serve", "openai-completions")


def test_an_eks_section_with_a_wrong_type_names_the_key(write_config: Any, tmp_path: Path) -> None:
    config = write_config(
        """
        general: {name: r}
        experiments:
        - {name: e, inference_script: eks_predictor.py, deploy: true, deployment_script: eks_deploy.py,
           eks: {manifest_file: [a, b]}, payload_files: [p.jsonl], concurrency_levels: [1]}
        """
    )
    with pytest.raises(FmbError, match=r"eks\.manifest_file"):
        load(config, tmp_path)


# --- plan -----------------------------------------------------------------------------------


def test_plan_says_what_would_be_created_without_asking_the_cluster(
    bench: Path, tmp_path: Path, cluster: tuple[FakeKube, FakeRayServe]
) -> None:
    kube, _ = cluster
    loaded = load(bench, tmp_path)
    plan = eks.EksDeployer().plan(loaded.experiments[0], loaded)
    assert plan.problems == []
    assert plan.kind == "eks"
    assert "llama3-ray-service.yaml" in plan.how and "trainium-inferentia" in plan.how
    creates = [d for d in plan.details if d.startswith("creates: ")]
    assert creates == [
        "creates: Namespace llama3 (v1)",
        "creates: RayService llama3/llama3-service (ray.io/v1)",
        "creates: Ingress llama3/llama3-ingress (networking.k8s.io/v1)",
    ]
    assert [d for d in plan.details if d.startswith("image: ")] == [
        "image: public.ecr.aws/data-on-eks/ray-serve-inf2-llama3:latest"
    ]
    assert "instance type: ml.inf2.24xlarge x 1" in plan.details
    assert f"cluster: kubeconfig {tmp_path / 'kubeconfig'}, context fmb-test" in plan.details
    assert any(d.startswith("fills $HUGGING_FACE_HUB_TOKEN: *** (from ") for d in plan.details)
    assert "fills $AWS_REGION: us-east-1 (the config's region)" in plan.details
    assert TOKEN not in plan.how + "".join(plan.details)
    assert kube.requests == []  # planning asks no server


def test_plan_lists_what_is_missing(
    bench: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cluster: tuple[FakeKube, FakeRayServe]
) -> None:
    (bench.parent / "scripts" / "hf_token.txt").unlink()
    monkeypatch.delenv("KUBECONFIG")
    loaded = load(bench, tmp_path)
    plan = eks.EksDeployer().plan(loaded.experiments[0], loaded)
    assert not plan.deployable
    assert any("no kubeconfig" in p and "aws eks update-kubeconfig" in p for p in plan.problems)
    assert any("$HUGGING_FACE_HUB_TOKEN" in p and "hf_token.txt" in p for p in plan.problems)
    assert "creates: RayService llama3/llama3-service (ray.io/v1)" in plan.details  # still shown

    loaded = load(edit(bench, "manifest_file: llama3-ray-service.yaml", "manifest_file: nowhere.yaml"), tmp_path)
    plan = eks.EksDeployer().plan(loaded.experiments[0], loaded)
    assert any("'nowhere.yaml'" in p and "was not found" in p for p in plan.problems)

    loaded = load(edit(bench, "    eks:\n", "    eks:\n      context: no-such-context\n"), tmp_path)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "kubeconfig"))
    plan = eks.EksDeployer().plan(loaded.experiments[0], loaded)
    assert any("eks.context 'no-such-context'" in p and "fmb-test" in p for p in plan.problems)


def test_plan_without_the_kubernetes_package_says_how_to_install_it(
    bench: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cluster: tuple[FakeKube, FakeRayServe]
) -> None:
    loaded = load(bench, tmp_path)
    monkeypatch.setitem(sys.modules, "kubernetes", None)  # as if not installed: importing it fails
    plan = eks.EksDeployer().plan(loaded.experiments[0], loaded)
    assert any("pip install 'fmb[eks]'" in p for p in plan.problems)
    with pytest.raises(FmbError, match="Kubernetes Python client") as err:
        deploy(loaded, tmp_path)
    assert "pip install 'fmb[eks]'" in str(err.value)


# --- deploy and remove ----------------------------------------------------------------------


def test_deploy_applies_the_manifest_records_it_and_cleanup_removes_exactly_it(
    bench: Path, tmp_path: Path, cluster: tuple[FakeKube, FakeRayServe]
) -> None:
    kube, serve = cluster
    before = kube.keys()
    loaded = load(bench, tmp_path)
    (deployment,), out = deploy(loaded, tmp_path)

    assert kube.keys() == before | {NAMESPACE, RAY_SERVICE, INGRESS}
    assert kube.changes() == [
        ("POST", "/api/v1/namespaces"),
        ("POST", "/apis/ray.io/v1/namespaces/llama3/rayservices"),
        ("POST", "/apis/networking.k8s.io/v1/namespaces/llama3/ingresses"),
    ]
    serve_config = kube.objects[RAY_SERVICE]["spec"]["serveConfigV2"]
    assert f"HUGGING_FACE_HUB_TOKEN: {TOKEN}\n" in serve_config
    assert "AWS_REGION: us-east-1\n" in serve_config
    assert "$" not in serve_config
    ingress = kube.objects[INGRESS]["metadata"]["annotations"]["nginx.ingress.kubernetes.io/rewrite-target"]
    assert ingress == "/$1"  # not a variable: left alone, as envsubst leaves it

    assert deployment.kind == "eks"
    assert deployment.endpoint == f"http://127.0.0.1:{serve.port}/serve/infer?sentence="
    assert serve.prompts == ["Hello"]  # the readiness probe
    resources = recorded(loaded, tmp_path)[deployment.experiment]
    assert resources["objects"] == [
        {"api_version": "v1", "kind": "Namespace", "name": "llama3", "namespace": None},
        {"api_version": "ray.io/v1", "kind": "RayService", "name": "llama3-service", "namespace": "llama3"},
        {"api_version": "networking.k8s.io/v1", "kind": "Ingress", "name": "llama3-ingress", "namespace": "llama3"},
    ]
    assert resources["context"] == "fmb-test" and resources["cluster"] == "trainium-inferentia"
    for text in (out, (tmp_path / "results" / "deployments").joinpath(f"{loaded.name}.json").read_text()):
        assert TOKEN not in text
    assert "created RayService llama3/llama3-service" in out

    deployer = eks.EksDeployer()
    assert deployer.is_running(deployment)
    assert deployers.endpoints(loaded, tmp_path / "results")[deployment.experiment]["endpoint"] == deployment.endpoint
    assert "RayService llama3/llama3-service" in deployer.describe(deployment)

    posted = len(kube.changes())
    removed = deployers.cleanup(loaded, tmp_path / "results", Console(file=io.StringIO()))
    assert removed == [deployment.experiment]
    assert kube.keys() == before
    assert kube.changes()[posted:] == [
        ("DELETE", "/apis/networking.k8s.io/v1/namespaces/llama3/ingresses/llama3-ingress"),
        ("DELETE", "/apis/ray.io/v1/namespaces/llama3/rayservices/llama3-service"),
        ("DELETE", "/api/v1/namespaces/llama3"),
    ]
    assert recorded(loaded, tmp_path) == {}
    assert not deployer.is_running(deployment)
    deployer.remove(deployment, loaded)  # already gone is fine


def test_a_namespace_that_existed_is_used_but_never_recorded_or_deleted(
    bench: Path, tmp_path: Path, cluster: tuple[FakeKube, FakeRayServe]
) -> None:
    kube, _ = cluster
    kube.add(namespace("llama3"))
    kube.add(configmap("someone-elses", "llama3"))
    before = kube.keys()
    loaded = load(bench, tmp_path)
    (deployment,), out = deploy(loaded, tmp_path)
    assert "Namespace llama3 exists already" in out
    assert [o["kind"] for o in deployment.resources["objects"]] == ["RayService", "Ingress"]

    eks.EksDeployer().remove(deployment, loaded)
    assert kube.keys() == before  # the namespace and what else was in it are still there
    assert [p for m, p in kube.changes() if m == "DELETE"] == [
        "/apis/networking.k8s.io/v1/namespaces/llama3/ingresses/llama3-ingress",
        "/apis/ray.io/v1/namespaces/llama3/rayservices/llama3-service",
    ]


def test_a_failure_half_way_removes_what_was_created(
    bench: Path, tmp_path: Path, cluster: tuple[FakeKube, FakeRayServe]
) -> None:
    kube, _ = cluster
    kube.fail_create["Ingress"] = 422
    before = kube.keys()
    loaded = load(bench, tmp_path)
    with pytest.raises(FmbError) as err:
        deploy(loaded, tmp_path)
    message = str(err.value)
    assert "cannot create Ingress llama3/llama3-ingress: HTTP 422" in message
    assert "fmb removed what it had created" in message
    assert TOKEN not in message
    assert kube.keys() == before
    assert [p for m, p in kube.changes() if m == "DELETE"] == [
        "/apis/ray.io/v1/namespaces/llama3/rayservices/llama3-service",
        "/api/v1/namespaces/llama3",
    ]
    assert recorded(loaded, tmp_path) == {}


def test_an_object_that_exists_is_not_taken_over(
    bench: Path, tmp_path: Path, cluster: tuple[FakeKube, FakeRayServe]
) -> None:
    kube, _ = cluster
    kube.add(namespace("llama3"))
    theirs = {
        "apiVersion": "ray.io/v1",
        "kind": "RayService",
        "metadata": {"name": "llama3-service", "namespace": "llama3"},
    }
    kube.add(theirs)
    loaded = load(bench, tmp_path)
    with pytest.raises(FmbError, match=r"RayService llama3/llama3-service exists already"):
        deploy(loaded, tmp_path)
    assert kube.objects[RAY_SERVICE] is theirs
    assert [m for m, _ in kube.changes() if m == "DELETE"] == []
    assert recorded(loaded, tmp_path) == {}


def test_deploy_waits_until_the_model_answers(
    bench: Path, tmp_path: Path, cluster: tuple[FakeKube, FakeRayServe]
) -> None:
    _, serve = cluster
    serve.unready = 3
    loaded = load(bench, tmp_path)
    registry = Registry(tmp_path / "results", loaded.name)
    out = io.StringIO()
    deployment = eks.start(
        loaded.experiments[0], loaded, Console(file=out, width=200), registry.add, registry.remove, poll_s=0.02
    )
    progress = out.getvalue()
    assert "RayService llama3/llama3-service: Running" in progress
    assert "serve/infer?sentence=: HTTP 503" in progress and "serve/infer?sentence=: HTTP 200" in progress
    assert serve.unready == 0 and serve.prompts == ["Hello"]
    assert registry.deployments[deployment.experiment].endpoint == deployment.endpoint


def test_a_model_that_never_answers_times_out_and_is_removed(
    bench: Path, tmp_path: Path, cluster: tuple[FakeKube, FakeRayServe]
) -> None:
    kube, serve = cluster
    serve.unready = 10**6
    before = kube.keys()
    loaded = load(edit(bench, "    deploy: yes\n", "    deploy: yes\n    deploy_timeout_s: 0.2\n"), tmp_path)
    registry = Registry(tmp_path / "results", loaded.name)
    with pytest.raises(FmbError) as err:
        eks.start(
            loaded.experiments[0], loaded, Console(file=io.StringIO()), registry.add, registry.remove, poll_s=0.02
        )
    assert "did not answer within 0.2 s (deploy_timeout_s)" in str(err.value)
    assert "HTTP 503" in str(err.value) and "fmb removed what it had created" in str(err.value)
    assert kube.keys() == before
    assert Registry(tmp_path / "results", loaded.name).deployments == {}


def test_the_context_is_chosen_by_the_cluster_name(
    bench: Path, tmp_path: Path, cluster: tuple[FakeKube, FakeRayServe]
) -> None:
    kube, _ = cluster
    loaded = load(edit(bench, "eks_cluster_name: trainium-inferentia", "eks_cluster_name: not-in-kubeconfig"), tmp_path)
    with pytest.raises(FmbError, match=r"no context for EKS cluster 'not-in-kubeconfig'.*fmb-test, elsewhere"):
        deploy(loaded, tmp_path)
    assert kube.requests == []

    # The kubeconfig's current context is another cluster whose token this server refuses.
    loaded = load(edit(bench, "eks_cluster_name: not-in-kubeconfig", "eks_cluster_name: another-cluster"), tmp_path)
    with pytest.raises(FmbError, match="HTTP 401"):
        deploy(loaded, tmp_path)
    assert kube.changes() == []


# --- the Ray Serve target -------------------------------------------------------------------


def test_ray_serve_urls_and_answers() -> None:
    assert ray_serve_url("http://h/serve/infer?sentence=", "a b&c?") == "http://h/serve/infer?sentence=a+b%26c%3F"
    assert ray_serve_url("http://h/serve/infer", "hi") == "http://h/serve/infer?sentence=hi"
    assert ray_serve_url("http://h/infer?max=5&q=", "hi") == "http://h/infer?max=5&q=hi"
    assert ray_serve_text(json.dumps(["Q? An answer.\n"]).encode(), "Q?") == "An answer."
    assert ray_serve_text(b'"just text"', "other") == "just text"
    assert ray_serve_text(b"plain, not JSON", "") == "plain, not JSON"


def test_the_ray_serve_target_sends_the_prompt_and_keeps_only_the_answer(bench: Path, tmp_path: Path) -> None:
    loaded = load(bench, tmp_path)
    prompt = "What is tensor parallelism & why?"
    with fake_ray_serve() as serve:
        exp = dataclasses.replace(loaded.experiments[0], endpoint=f"{serve.url}/serve/infer?sentence=")

        async def send() -> Recorder:
            rec = Recorder()
            async with RayServeTarget(exp, 1) as target:
                await target.send(Request("p1", prompt, {"inputs": prompt}), rec)
            return rec

        rec = asyncio.run(send())
        assert serve.prompts == [prompt]
        assert rec.http_status == 200
        assert rec.text == serve.answer.strip()
        assert rec.start_ns is not None and rec.end_ns is not None and rec.end_ns >= rec.start_ns
