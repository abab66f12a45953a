"""Image builds: `pants package --flyte-image-output=push <flyte_image>` (daemonless, content-tagged, built and
pushed in one step) side by side with `docker build` + `docker push` of an equivalent Dockerfile on the same
machine, in one run.

Both push to the same real registry (Debian docker-registry on loopback) on the same Debian
Python base; the Dockerfile COPYs exactly the files our image holds (extracted from our own OCI
layout), so both images have the same content. Scenarios: cold build+push (empty layer cache and
registry), no-change rebuild+push, one-source-change rebuild+push, with bytes uploaded.

    .bootstrap/venv/bin/python bench/image_bench.py [--repeats N] [--format=json|table]
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src" / "python"))
sys.path.insert(0, str(ROOT))
from tests.images.conftest import start_docker, stop_docker  # noqa: E402
from tests.oci.conftest import start_registry, stop_registry  # noqa: E402
from tests.support.base_image import push_base_image  # noqa: E402
from tests.support.repo_copy import PantsRepo, copy_repo  # noqa: E402

IMAGE = "examples/baked:image"
SUMMARY = "dist/examples.baked/image.image.json"
EDIT = "examples/baked/data.py"


def _timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def _run(argv, cwd=None, env=None, input=None):
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, input=input)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, argv))} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def _registry_layers(client, ref: str):
    from flytebuild.oci.registry import Reference

    r = Reference.parse(ref)
    manifest, _ = client.resolve(r)
    return {d["digest"]: d["size"] for d in manifest["layers"]}


def bench(repeats: int) -> dict:
    from flytebuild.oci import RegistryClient

    work = Path(tempfile.mkdtemp(prefix="flytebuild-image-bench-"))
    reg = start_registry(work / "registry")
    dproc, docker = start_docker()
    pants_repo = None
    try:
        base = push_base_image(reg.host, cache_dir=work / "base-cache")
        client = RegistryClient(reg.host)
        # A temp copy of the repo whose images push to this registry.
        repo_root = work / "repo"
        repo_root.mkdir()
        pants_repo = PantsRepo(copy_repo(repo_root, reg.host))
        _run([str(repo_root / "pants"), "--version"], cwd=repo_root)  # pantsd up, not timed
        counter = [0]

        def edit():
            counter[0] += 1
            path = repo_root / EDIT
            path.write_text(path.read_text() + f"\n# bench edit {counter[0]}\n")

        def package(cache: Path, output: str = "push") -> dict:
            # `package` builds; `--flyte-image-output=push` is its one-step build-and-push, what `docker build` +
            # `docker push` are compared with.
            proc = pants_repo.pants(f"--flyte-image-cache-dir={cache}", f"--flyte-image-output={output}", "package",
                                    IMAGE)
            if proc.returncode != 0:
                raise SystemExit(f"pants package failed:\n{proc.stderr[-3000:]}")
            return json.loads((repo_root / SUMMARY).read_text())

        ours = {"cold": [], "nochange": [], "onefile": [], "onefile_bytes": []}
        for i in range(repeats):
            cache = work / f"cache-{i}"
            edit()  # a fresh tag each round: the registry has no image for it
            t, s = _timed(lambda: package(cache))
            ours["cold"].append(t)
            t, s2 = _timed(lambda: package(cache))
            assert not s2["pushed"]
            ours["nochange"].append(t)
            edit()
            t, s3 = _timed(lambda: package(cache))
            assert s3["pushed"]
            ours["onefile"].append(t)
            ours["onefile_bytes"].append(s3["bytes_uploaded"])

        # The equivalent Dockerfile: the same files, extracted from our own OCI layout.
        layout_summary = package(work / "cache-0", "oci")
        layout = repo_root / "dist" / "examples.baked" / "baked.oci"
        manifest = json.loads((layout / "blobs" / "sha256" / layout_summary["digest"].split(":")[1]).read_text())
        ctx = work / "docker-context"
        (ctx / "fs").mkdir(parents=True)
        base_layers = set(_registry_layers(client, base))
        for d in manifest["layers"]:
            if d["digest"] in base_layers:
                continue
            with tarfile.open(layout / "blobs" / "sha256" / d["digest"].split(":")[1]) as tf:
                tf.extractall(ctx / "fs")
        (ctx / "fs" / "root").rename(ctx / "src")
        config = json.loads((layout / "blobs" / "sha256" / manifest["config"]["digest"].split(":")[1]).read_text())
        env = " ".join(f'{e.split("=", 1)[0]}="{e.split("=", 1)[1]}"' for e in config["config"]["Env"])
        (ctx / "Dockerfile").write_text(
            f"FROM {base}\nENV {env}\nWORKDIR /root\n"
            "COPY fs/opt/flytebuild/site-packages /opt/flytebuild/site-packages\n"
            "COPY fs/opt/flytebuild/bin /opt/flytebuild/bin\n"
            "COPY src /root\n")
        _run(["docker", "pull", base], env=docker.env)
        dk = {"cold": [], "nochange": [], "onefile": [], "onefile_bytes": []}
        tag = f"{reg.host}/bench/docker"
        src_file = ctx / "src" / EDIT.split("/", 1)[1]

        def build_push(n: int, *flags: str):
            _run(["docker", "build", *flags, "-q", "-t", f"{tag}:{n}", str(ctx)], env=docker.env)
            _run(["docker", "push", "-q", f"{tag}:{n}"], env=docker.env)

        n = 0
        for i in range(repeats):
            n += 1
            t, _ = _timed(lambda: build_push(n, "--no-cache"))
            dk["cold"].append(t)
            before = _registry_layers(client, f"{tag}:{n}")
            n += 1
            t, _ = _timed(lambda: build_push(n))
            dk["nochange"].append(t)
            src_file.write_text(src_file.read_text() + f"\n# docker edit {i}\n")
            n += 1
            t, _ = _timed(lambda: build_push(n))
            dk["onefile"].append(t)
            after = _registry_layers(client, f"{tag}:{n}")
            manifest_after, _ = client.resolve(f"{tag}:{n}")
            # new layers + the config blob: what our bytes_uploaded counts too
            dk["onefile_bytes"].append(sum(size for digest, size in after.items() if digest not in before)
                                       + manifest_after["config"]["size"])
        return {"repeats": repeats, "layers": len(manifest["layers"]), "ours": ours, "docker": dk}
    finally:
        if pants_repo is not None:
            pants_repo.kill_pantsd()
        stop_docker(dproc, docker)
        stop_registry(reg)
        shutil.rmtree(work, ignore_errors=True)


ROWS = [("cold", "cold build + push (empty caches)"), ("nochange", "no-change rebuild + push"),
        ("onefile", "one-source-change rebuild + push")]


def render_table(r: dict) -> str:
    med = lambda xs: statistics.median(xs) if xs else float("nan")  # noqa: E731
    lines = ["| scenario | `pants package` s | `docker build` + `push` s | docker ÷ ours |", "|---|---:|---:|---:|"]
    for key, label in ROWS:
        a, b = med(r["ours"][key]), med(r["docker"][key])
        lines.append(f"| {label} | {a:.2f} | {b:.2f} | {b / a:.2f}x |")
    a, b = med(r["ours"]["onefile_bytes"]), med(r["docker"]["onefile_bytes"])
    lines.append(f"| bytes uploaded after a one-file change | {a:,.0f} | {b:,.0f} | {b / a:.2f}x |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--format", choices=("json", "table"), default="table")
    args = ap.parse_args()
    r = bench(args.repeats)
    print(json.dumps(r, indent=2) if args.format == "json" else render_table(r))


if __name__ == "__main__":
    main()
