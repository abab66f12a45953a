"""Our OCI registry client (flytebuild.oci, stdlib urllib) side by side with `oras` (the OCI registry SDK on
PyPI), on the same image, against the same local registry (Debian's docker-registry), in one run.

    python bench/oci_client_bench.py [--repeats 3] [--layers 24] [--format=table|json]

The image: the tests' Debian Python base layer (tests/support/base_image.py, ~23 MB) plus one layer per
top-level package of the examples' user environment (flytekit and friends, real files), built with our own
reproducible layer code. Each round pushes to a fresh repository (every blob uploaded), re-pushes unchanged
(nothing needed), then pulls everything into an empty directory. Correctness: the manifest digest the
registry stores must be the one we computed (reproducible builds depend on it), and every pulled blob must
match its descriptor's digest.

`oras` is installed with pip into `.bootstrap/bench-oras/` (a venv of this interpreter) on first use; the bench
then re-runs itself there, so both clients run in the same interpreter.
"""
from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ORAS_VERSION = "0.2.43"
VENV = REPO / ".bootstrap" / "bench-oras"


def ensure_oras() -> None:
    try:
        import oras  # noqa: F401
        return
    except ImportError:
        pass
    if os.environ.get("FLYTEBUILD_BENCH_ORAS_VENV"):
        sys.exit("oras is not importable in the bench venv")
    py = VENV / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", f"oras=={ORAS_VERSION}"], check=True)
    env = {**os.environ, "FLYTEBUILD_BENCH_ORAS_VENV": "1"}
    os.execve(str(py), [str(py), *sys.argv], env)


def start_registry(root: Path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (root / "storage").mkdir(parents=True)
    config = root / "config.yml"
    config.write_text(f"version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n"
                      f"    rootdirectory: {root / 'storage'}\nhttp:\n  addr: 127.0.0.1:{port}\n")
    proc = subprocess.Popen(["/usr/bin/docker-registry", "serve", str(config)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1).close()
            return proc, f"127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    sys.exit("docker-registry did not start (run tests/support/install_registry.sh)")


def build_test_image(n_layers: int, workdir: Path):
    sys.path.insert(0, str(REPO / "src" / "python"))
    sys.path.insert(0, str(REPO))
    from flytebuild.oci import build_image, build_layer
    from tests.support.base_image import base_layer

    site = sorted(glob.glob(str(REPO / "dist/export/python/virtualenvs/flyte/*/lib/python3*/site-packages")))
    if not site:
        sys.exit("no user environment: run `make user-env` first")
    site_dir = Path(site[-1])
    skip = (".dist-info", "__pycache__")
    packages = sorted(p for p in site_dir.iterdir() if p.is_dir() and not p.name.endswith(skip))
    layers = [base_layer()]
    for pkg in packages[:n_layers]:
        entries = [(f"opt/site-packages/{f.relative_to(site_dir)}", str(f)) for f in sorted(pkg.rglob("*"))
                   if f.is_file() and "__pycache__" not in f.parts]
        layers.append(build_layer(entries, name=pkg.name))
    # The base layer is ours too here (built from scratch): one image, every layer a local blob.
    image = build_image(layers, None, env={"PATH": "/usr/bin:/bin"}, labels={"bench": "oci-client"})
    blobs = workdir / "blobs"
    blobs.mkdir()
    files = {}
    for layer in image.layers:  # both clients read the same files
        dest = blobs / layer.digest.split(":")[1]
        if layer.path is not None:
            shutil.copyfile(layer.path, dest)
        else:
            dest.write_bytes(layer.data)
        files[layer.digest] = dest
    cfg = blobs / image.config_digest.split(":")[1]
    cfg.write_bytes(image.config_bytes)
    files[image.config_digest] = cfg
    return image, files


def ours_push(host, repo, image, files, jobs):
    from flytebuild.oci import publish
    from flytebuild.oci.layers import Layer

    layers = [Layer(ln.digest, ln.diff_id, ln.size, path=files[ln.digest], name=ln.name) for ln in image.layers]
    img = type(image)(image.config_bytes, image.manifest_bytes, layers, None)
    return publish(img, f"{host}/{repo}:v1", jobs=jobs).digest


def ours_pull(host, repo, dest: Path):
    from flytebuild.oci import RegistryClient

    client = RegistryClient(host, cache_dir=dest)
    base = client.pull(f"{host}/{repo}:v1", layers=True)  # verifies every blob's digest while fetching
    return base.manifest_digest, [d["digest"] for d in base.layers]


def oras_push(reg, host, repo, image, files):
    target = f"{host}/{repo}:v1"
    for d in image.manifest["layers"] + [image.manifest["config"]]:
        resp = reg.upload_blob(str(files[d["digest"]]), target, dict(d))
        if resp.status_code not in (200, 201, 202):
            raise RuntimeError(f"oras upload_blob: {resp.status_code} {resp.text[:200]}")
    resp = reg.upload_manifest(image.manifest, reg.get_container(target))
    if resp.status_code not in (200, 201):
        raise RuntimeError(f"oras upload_manifest: {resp.status_code} {resp.text[:200]}")
    return resp.headers.get("Docker-Content-Digest")


def oras_pull(reg, host, repo, dest: Path):
    target = f"{host}/{repo}:v1"
    manifest = reg.get_manifest(target)
    bad = []
    for d in [manifest["config"]] + manifest["layers"]:
        out = reg.download_blob(target, d["digest"], str(dest / d["digest"].split(":")[1]))
        if "sha256:" + hashlib.sha256(Path(out).read_bytes()).hexdigest() != d["digest"]:
            bad.append(d["digest"])
    # oras does not verify blobs: the check above is ours, outside its API, and counted in its time.
    return bad


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--layers", type=int, default=24)
    ap.add_argument("--format", default="table", choices=("table", "json"))
    args = ap.parse_args()
    ensure_oras()
    import oras
    import oras.provider

    work = Path(tempfile.mkdtemp(prefix="oci-bench-"))
    proc, host = start_registry(work / "registry")
    try:
        image, files = build_test_image(args.layers, work)
        total = sum(ln.size for ln in image.layers) + len(image.config_bytes)
        rows = {k: [] for k in ("ours4_push", "ours1_push", "oras_push", "ours_repush", "oras_repush",
                                "ours_pull", "oras_pull")}
        checks = {"ours_manifest_digest": set(), "oras_manifest_digest": set(), "ours_pull_ok": True,
                  "oras_pull_bad_blobs": 0}
        reg = oras.provider.Registry(hostname=host, insecure=True)
        for i in range(args.repeats):
            for jobs, key in ((4, "ours4_push"), (1, "ours1_push")):
                t, digest = timed(lambda: ours_push(host, f"ours{jobs}/r{i}", image, files, jobs))
                rows[key].append(t)
                checks["ours_manifest_digest"].add(digest)
            t, _ = timed(lambda: ours_push(host, f"ours4/r{i}", image, files, 4))
            rows["ours_repush"].append(t)
            t, digest = timed(lambda: oras_push(reg, host, f"oras/r{i}", image, files))
            rows["oras_push"].append(t)
            checks["oras_manifest_digest"].add(digest)
            t, _ = timed(lambda: oras_push(reg, host, f"oras/r{i}", image, files))
            rows["oras_repush"].append(t)
            d1, d2 = work / f"pull-ours-{i}", work / f"pull-oras-{i}"
            d2.mkdir()
            t, (mdigest, _) = timed(lambda: ours_pull(host, f"ours4/r{i}", d1))
            rows["ours_pull"].append(t)
            checks["ours_pull_ok"] &= mdigest == image.manifest_digest
            t, bad = timed(lambda: oras_pull(reg, host, f"ours4/r{i}", d2))
            rows["oras_pull"].append(t)
            checks["oras_pull_bad_blobs"] += len(bad)
        result = {
            "image": {"layers": len(image.layers), "bytes": total, "manifest_digest": image.manifest_digest},
            "oras_version": oras.__version__ if hasattr(oras, "__version__") else ORAS_VERSION,
            "medians_s": {k: round(statistics.median(v), 3) for k, v in rows.items()},
            "checks": {"expected_manifest_digest": image.manifest_digest,
                       "ours_manifest_digest": sorted(checks["ours_manifest_digest"]),
                       "oras_manifest_digest": sorted(x or "" for x in checks["oras_manifest_digest"]),
                       "ours_pull_ok": checks["ours_pull_ok"],
                       "oras_pull_bad_blobs": checks["oras_pull_bad_blobs"]},
            "repeats": args.repeats,
        }
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(work, ignore_errors=True)
    if args.format == "json":
        print(json.dumps(result, indent=2))
    else:
        m = result["medians_s"]
        img = result["image"]
        print(f"image: {img['layers']} layers, {img['bytes']:,} bytes; medians of {args.repeats}")
        for k, v in m.items():
            print(f"  {k:12s} {v:8.3f} s")
        print(json.dumps(result["checks"], indent=2))


if __name__ == "__main__":
    main()
