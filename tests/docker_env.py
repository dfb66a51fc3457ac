"""A real Docker engine for the tests, and images that impersonate inference containers.

No image registry is reachable from the test machines, so the images are built here: a
Debian base made with debootstrap (Debian's package mirror is reachable) and imported
into the engine once, then one small image per container type on top of it, holding
fmb's mock server behind that container's command line (tests/images/impersonate.py).
They are tagged with the image names FMBench's configs use, so the configs run
unchanged; a tag that already names an image fmb's tests did not build is never taken
over. Tests skip, saying why, only where no Docker engine answers.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
BASE_IMAGE = "fmb-test-base:bookworm"
TEST_LABEL = "fmb.test-image"
DEBIAN_MIRROR = os.environ.get("FMB_TEST_DEBIAN_MIRROR", "http://deb.debian.org/debian")


def docker_client() -> Any:
    """A client for the engine, or a skip that says why there is none."""
    try:
        import docker
    except ImportError:
        pytest.skip("the Docker SDK is not installed (pip install 'fmb[ec2]')")
    try:
        client = docker.from_env(timeout=300)
        client.ping()
    except docker.errors.DockerException as exc:
        pytest.skip(f"no Docker engine answers ({exc}); `./dev docker` installs and starts one (as root)")
    return client


def ensure_base_image(client: Any) -> None:
    """Debian bookworm with python3 and python3-aiohttp, made with debootstrap the first time."""
    import docker

    try:
        client.images.get(BASE_IMAGE)
        return
    except docker.errors.ImageNotFound:
        pass
    if shutil.which("debootstrap") is None or os.geteuid() != 0:
        pytest.skip(f"image {BASE_IMAGE} is missing and debootstrap (as root) is not available to build it")
    with tempfile.TemporaryDirectory(prefix="fmb-rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                "--include=python3,python3-aiohttp",
                "bookworm",
                str(rootfs),
                DEBIAN_MIRROR,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        archive = Path(tmp) / "rootfs.tar"
        subprocess.run(["tar", "-C", str(rootfs), "-cf", str(archive), "."], check=True)
        repository, tag = BASE_IMAGE.split(":")
        client.api.import_image_from_file(str(archive), repository=repository, tag=tag)


def _context(kind: str) -> bytes:
    """The build context of an impersonating image: a Dockerfile, fmb's mock server and the entry point."""
    # DJL's image runs as user djl (FMBench's compose file says user: djl).
    user = "RUN useradd --create-home djl\n" if kind == "djl" else ""
    dockerfile = (
        f"FROM {BASE_IMAGE}\n"
        f"{user}"
        "COPY fmb /opt/fmb/fmb\n"
        "COPY impersonate.py /opt/fmb/impersonate.py\n"
        "ENV PYTHONPATH=/opt/fmb PYTHONUNBUFFERED=1\n"
        f'LABEL {TEST_LABEL}="{kind}"\n'
        f'ENTRYPOINT ["python3", "/opt/fmb/impersonate.py", "{kind}"]\n'
    )
    files = {
        "Dockerfile": dockerfile.encode(),
        "impersonate.py": (ROOT / "tests" / "images" / "impersonate.py").read_bytes(),
        "fmb/__init__.py": b"",
        "fmb/collector/__init__.py": b"",
    }
    for source in sorted((ROOT / "collector" / "mock").glob("*.py")):
        files[f"fmb/collector/mock/{source.name}"] = source.read_bytes()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@contextmanager
def impersonating_image(client: Any, kind: str, tag: str) -> Iterator[str]:
    """Build the image for ``kind`` under ``tag`` for the duration; remove the tag afterwards."""
    import docker

    try:
        existing = client.images.get(tag)
    except docker.errors.ImageNotFound:
        existing = None
    if existing is not None and TEST_LABEL not in (existing.labels or {}):
        pytest.skip(f"image {tag} exists on this host and was not built by fmb's tests; it is left alone")
    ensure_base_image(client)
    _image, _ = client.images.build(fileobj=io.BytesIO(_context(kind)), custom_context=True, tag=tag, rm=True)
    try:
        yield tag
    finally:
        try:
            client.images.remove(tag, noprune=False)
        except docker.errors.APIError:
            pass  # still used by a container a failed test left: the test's own cleanup says so


def fmb_containers(client: Any, **labels: str) -> list[Any]:
    """Every container (running or not) that carries fmb's labels with these values."""
    wanted = [f"fmb.{key}={value}" for key, value in labels.items()] or ["fmb.deployment"]
    return client.containers.list(all=True, filters={"label": wanted})
