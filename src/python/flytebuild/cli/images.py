"""Build and publish images for the CLI: the twin of the Pants adapter's util_rules/images.py.

- requirements: a PACKED pex of the image's declared requirements, resolved by `pex` from the
  configured lockfile (as Pants does for a resolve), for the user's interpreter; each
  `.deps/<wheel>` (an installed-wheel zip) becomes one layer through `oci.build.assemble`;
- sources: exactly the image's closure, at their import paths (source roots stripped);
- tag: the image's content version (`ImagePlan.ref`); with the tag already in the registry
  nothing is built or pushed.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple

from flytebuild.cli import userenv
from flytebuild.cli.config import Project
from flytebuild.cli.graph import ProjectGraph
from flytebuild.core.errors import FlytebuildError
from flytebuild.core.model import ImageTarget
from flytebuild.core.plan import plan_image
from flytebuild.oci import RegistryClient, RegistryError, publish, write_oci_layout
from flytebuild.oci.build import BuildError, Distribution, ImageInputs, assemble, distributions_in, sources_from_roots
from flytebuild.oci.docker_archive import docker_load
from flytebuild.oci.publish import reusable_tag
from flytebuild.oci.registry import Reference

OUTPUTS = ("push", "oci", "docker")
LABEL_TARGET = "org.flytebuild.target"  # as util_rules/images.py labels them


@dataclass(frozen=True)
class PublishedImage:
    name: str
    ref: str
    digest: str  # manifest digest
    pushed: bool
    bytes_uploaded: int
    output: str
    layout: Optional[str] = None  # output=oci: the layout directory
    layers: Tuple[Tuple[str, str, int, str], ...] = ()

    def summary(self) -> dict:
        return {
            "address": self.name, "ref": self.ref, "digest": self.digest, "output": self.output,
            "pushed": self.pushed, "bytes_uploaded": self.bytes_uploaded,
            "layers": [{"name": n, "digest": d, "size": s, "status": st} for n, d, s, st in self.layers],
        }


def cache_dir(project: Project) -> Path:
    if project.image_cache_dir:
        return Path(project.image_cache_dir)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "flytebuild" / "oci"


def _error(name: str, err: object) -> FlytebuildError:
    return FlytebuildError(f"Cannot build image {name}: {err}", target=name)


def _distributions(project: Project, graph: ProjectGraph, image: ImageTarget, tmp: str) -> Tuple[Distribution, ...]:
    """Installed-wheel zips of the image's requirements, from a PACKED pex."""
    if not image.requirements:
        return ()
    python = userenv.check_python(project.python, project.config_file)
    declared = dict(graph.requirements.declared)
    argv = [sys.executable, "-m", "pex", "--layout", "packed", "-o", os.path.join(tmp, "requirements.pex"),
            "--python", python, "--no-emit-warnings"]
    if graph.requirements.lock_text is not None:
        # pex reads the lock itself; Pants' `//` header is not JSON.
        lock = os.path.join(tmp, "lock.json")
        with open(lock, "w", encoding="utf-8") as f:
            f.write("\n".join(l for l in graph.requirements.lock_text.splitlines() if not l.lstrip().startswith("//")))
        argv += ["--lock", lock]
    argv += [declared[name] for name in image.requirements]
    userenv.progress(f"flytebuild: resolving {len(image.requirements)} requirement(s) of {image.address} with pex")
    env = {**os.environ, "PIP_CONFIG_FILE": "/dev/null"}  # a global pip constraints file breaks pex's pip
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, env=env)
    except OSError as e:
        raise _error(image.address, f"cannot run pex: {e}") from None
    if proc.returncode != 0:
        if "No module named pex" in proc.stderr:
            raise FlytebuildError(
                "Building images needs `pex` next to flytebuild", target=image.address, fix="pip install pex"
            )
        raise _error(image.address, f"pex could not resolve its requirements:\n{proc.stderr.strip()[-2000:]}")
    return tuple(
        Distribution(d.name, d.path, hashlib.sha256(d.path.read_bytes()).hexdigest())
        for d in distributions_in(os.path.join(tmp, "requirements.pex", ".deps"))
    )


def publish_image(
    project: Project, graph: ProjectGraph, image: ImageTarget, output: str, dist_dir: str, jobs: int
) -> PublishedImage:
    plan = plan_image(image)
    cache = cache_dir(project)
    ref = Reference.parse(plan.ref)
    client = None

    def layer_progress(name: str, status: str, size: int) -> None:
        userenv.progress(f"{image.address}: layer {name or 'base'} {status} ({size / 1e6:.1f} MB)")

    try:
        if output == "push":
            client = RegistryClient(ref.registry, cache_dir=cache)
            existing = reusable_tag(client, ref, plan.fingerprint)  # trusted only with our fingerprint label
            if existing is not None:
                return PublishedImage(image.address, plan.ref, existing, False, 0, output)
        base_ref = Reference.parse(plan.base)
        base_client = RegistryClient(base_ref.registry, cache_dir=cache)
        with tempfile.TemporaryDirectory(prefix="flytebuild-image-") as tmp:
            inputs = ImageInputs(
                distributions=_distributions(project, graph, image, tmp),
                sources=sources_from_roots(image.source_paths, project.source_roots, project.root),
                python=image.python or ImageInputs().python,
                env=plan.env,
                labels=((LABEL_TARGET, image.address),),
                fingerprint=plan.fingerprint,
            )
            base = base_client.pull(base_ref)
            built = assemble(inputs, base, cache_dir=cache, progress=layer_progress)
        layers = tuple((l.name, l.digest, l.size, "built") for l in built.image.layers)
        if output == "push":
            assert client is not None
            statuses = {}

            def push_progress(digest: str, name: str, status: str, size: int) -> None:
                statuses[digest] = status
                if status in ("uploaded", "mounted", "exists"):
                    userenv.progress(f"{image.address}: layer {name or 'base'} {digest[7:19]} {status} ({size / 1e6:.1f} MB)")

            result = publish(built.image, ref, client=client, base_client=base_client, jobs=jobs,
                             progress=push_progress, cache_dir=cache)
            layers = tuple((n, d, s, statuses.get(d, "exists")) for n, d, s, _ in layers)
            return PublishedImage(image.address, plan.ref, built.image.manifest_digest, not result.skipped,
                                  result.bytes_uploaded, output, None, layers)
        if output == "docker":
            docker_load(built.image, plan.ref, base_client=base_client)
            return PublishedImage(image.address, plan.ref, built.image.manifest_digest, False, 0, output, None, layers)
        layout = os.path.join(dist_dir, f"{plan.name}.oci")
        write_oci_layout(built.image, layout, ref_name=plan.ref, base_client=base_client)
        return PublishedImage(image.address, plan.ref, built.image.manifest_digest, False, 0, output, layout, layers)
    except (RegistryError, BuildError, OSError, subprocess.SubprocessError) as e:
        raise _error(image.address, e) from None


def write_summary(published: PublishedImage, dist_dir: str) -> str:
    """`<dist>/<name>.image.json`: ref, manifest digest, layers (what `pants package` writes)."""
    os.makedirs(dist_dir, exist_ok=True)
    from flytebuild.cli.registration import dist_name

    path = os.path.join(dist_dir, f"{dist_name(published.name)}.image.json")
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps(published.summary(), indent=2, sort_keys=True) + "\n")
    return path


def describe(published: PublishedImage) -> str:
    mb = f"{published.bytes_uploaded / 1e6:.1f} MB"
    if published.output == "push":
        if published.pushed:
            return f"pushed {published.ref} ({published.digest}, {mb} uploaded)"
        return f"{published.ref} already in the registry ({published.digest}): nothing built or pushed"
    if published.output == "docker":
        return f"loaded {published.ref} into Docker ({published.digest})"
    return f"OCI layout of {published.ref} ({published.digest}) in {published.layout}"
