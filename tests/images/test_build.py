"""flytebuild.oci.build without Pants: reproducible assembly, minimal pushes, and the image runs in Docker."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from flytebuild.oci import RegistryClient, publish
from flytebuild.oci.build import (
    LABEL_DISTRIBUTIONS,
    LABEL_SOURCE_FILES,
    BuildError,
    Distribution,
    ImageInputs,
    SourceFile,
    assemble,
    sources_from_roots,
)
from flytebuild.oci.image import LABEL_FINGERPRINT, LABEL_SOURCE_MANIFEST


def make_dist(root: Path, name: str = "greet", version: str = "1.0") -> Path:
    """An installed-wheel chroot as pex lays it out (package, .dist-info, pex's .prefix/ and .layout.json)."""
    d = root / f"{name}-{version}-py3-none-any.whl"
    (d / name).mkdir(parents=True)
    (d / name / "__init__.py").write_text(
        "def main():\n    import sys\n    print('greet', *sys.argv[1:])\n    return 0\n"
    )
    info = d / f"{name}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\nlong text\nName: nope\n"
    )
    (info / "entry_points.txt").write_text(f"[console_scripts]\n{name}-cli = {name}:main\n")
    (d / ".layout.json").write_text("{}")
    (d / ".prefix" / "bin").mkdir(parents=True)
    (d / ".prefix" / "bin" / f"{name}-cli").write_text("#!/build/machine/python\n")
    return d


def zip_dist(d: Path, out: Path) -> Path:
    with zipfile.ZipFile(out, "w") as zf:
        for p in sorted(d.rglob("*")):
            zf.write(p, p.relative_to(d).as_posix())
    return out


def sources(tmp_path: Path, helper: str = "VALUE = 1\n"):
    src = tmp_path / "repo" / "examples" / "app"
    src.mkdir(parents=True, exist_ok=True)
    (src / "__init__.py").write_text("")
    (src / "main.py").write_text("from app.helper import VALUE\nprint('value', VALUE)\n")
    (src / "helper.py").write_text(helper)
    return sources_from_roots(
        ["examples/app/__init__.py", "examples/app/main.py", "examples/app/helper.py"], ["examples"], tmp_path / "repo"
    )


def test_sources_land_at_import_paths(tmp_path):
    got = sources(tmp_path)
    assert [s.path for s in got] == ["app/__init__.py", "app/helper.py", "app/main.py"]
    with pytest.raises(BuildError, match="none of the source roots"):
        sources_from_roots(["other/x.py"], ["examples"], tmp_path)


def test_same_inputs_same_digests_from_clean_caches(base_image, tmp_path):
    dist = make_dist(tmp_path / "dists")
    inputs = ImageInputs(
        distributions=(Distribution(dist.name, dist),),
        sources=sources(tmp_path),
        env=(("A", "1"),),
        fingerprint="f" * 64,
    )
    a = assemble(inputs, base_image, cache_dir=tmp_path / "c1")
    b = assemble(inputs, base_image, cache_dir=tmp_path / "c2")
    c = assemble(inputs, base_image)  # no cache at all
    assert a.image.manifest_digest == b.image.manifest_digest == c.image.manifest_digest
    assert [l.digest for l in a.image.layers] == [l.digest for l in c.image.layers]

    cfg = a.image.config["config"]
    env = dict(e.split("=", 1) for e in cfg["Env"])
    assert env["PYTHONPATH"] == "/root:/opt/flytebuild/site-packages"
    assert env["PATH"].startswith("/opt/flytebuild/bin:/usr/local/bin")  # the base's PATH follows ours
    assert env["A"] == "1" and cfg["WorkingDir"] == "/root"
    labels = cfg["Labels"]
    assert labels[LABEL_FINGERPRINT] == "f" * 64
    assert labels[LABEL_SOURCE_MANIFEST] == a.source_manifest_digest
    assert json.loads(labels[LABEL_SOURCE_FILES]) == ["app/__init__.py", "app/helper.py", "app/main.py"]
    assert json.loads(labels[LABEL_DISTRIBUTIONS]) == ["greet==1.0"]
    assert a.console_scripts == ("greet-cli",)


def test_zip_and_directory_distributions_give_the_same_layer(base_image, tmp_path):
    d = make_dist(tmp_path / "dists")
    z = zip_dist(d, tmp_path / d.name)
    a = assemble(ImageInputs(distributions=(Distribution(d.name, d),)), base_image)
    b = assemble(ImageInputs(distributions=(Distribution(d.name, z),)), base_image)
    assert a.image.layers[0].digest == b.image.layers[0].digest
    assert a.image.manifest_digest == b.image.manifest_digest


def test_one_source_change_changes_and_uploads_only_the_sources_layer(registry, base_image, cache_dir, tmp_path):
    dist = make_dist(tmp_path / "dists")
    ref = registry.ref("images/app:v1")
    first = assemble(
        ImageInputs(distributions=(Distribution(dist.name, dist),), sources=sources(tmp_path)),
        base_image,
        cache_dir=tmp_path / "c",
    )
    publish(first.image, ref, cache_dir=cache_dir)
    second = assemble(
        ImageInputs(distributions=(Distribution(dist.name, dist),), sources=sources(tmp_path, helper="VALUE = 2\n")),
        base_image,
        cache_dir=tmp_path / "c",
    )
    changed = [(x.name, x.digest != y.digest) for x, y in zip(first.image.layers, second.image.layers)]
    assert changed == [("greet==1.0", False), ("scripts", False), ("sources", True)]
    result = publish(second.image, registry.ref("images/app:v2"), cache_dir=cache_dir)
    assert set(result.blobs_uploaded) == {second.sources_layer.digest, second.image.config_digest}
    assert result.bytes_uploaded == second.sources_layer.size + len(second.image.config_bytes)


def test_clashing_source_paths_are_rejected(base_image, tmp_path):
    (tmp_path / "a.py").write_text("a")
    (tmp_path / "b.py").write_text("b")
    with pytest.raises(BuildError, match="two different files land at 'pkg/x.py'"):
        assemble(
            ImageInputs(sources=(SourceFile("pkg/x.py", tmp_path / "a.py"), SourceFile("pkg/x.py", tmp_path / "b.py"))),
            base_image,
        )


def test_built_image_runs_in_docker(docker, registry, python_base, cache_dir, tmp_path):
    """The console script runs with the image's own python; sources import from their import paths."""
    base = RegistryClient(registry.host, cache_dir=cache_dir).pull(python_base)
    dist = make_dist(tmp_path / "dists")
    built = assemble(
        ImageInputs(distributions=(Distribution(dist.name, dist),), sources=sources(tmp_path)),
        base,
        cache_dir=tmp_path / "c",
    )
    ref = registry.ref("images/runs:1")
    publish(built.image, ref, cache_dir=cache_dir)
    docker.run("pull", ref)
    out = docker.run("run", "--rm", "--network", "none", ref, "greet-cli", "hi").stdout
    assert out.strip() == "greet hi"
    out = docker.run("run", "--rm", "--network", "none", ref, "python3", "-m", "app.main").stdout
    assert out.strip() == "value 1"


def test_many_distributions_are_grouped_and_a_bump_rebuilds_one_layer(base_image, tmp_path):
    def dists(root, bumped=False):
        return tuple(
            Distribution(d.name, d)
            for d in (
                make_dist(root, "alpha"),
                make_dist(root, "beta", "2.0" if bumped else "1.0"),
                make_dist(root, "gamma"),
                make_dist(root, "delta"),
            )
        )

    a = assemble(ImageInputs(distributions=dists(tmp_path / "a"), max_distribution_layers=2), base_image)
    b = assemble(ImageInputs(distributions=dists(tmp_path / "b", bumped=True), max_distribution_layers=2), base_image)
    req_a = [l for l in a.image.layers if l.name.startswith("requirements")]
    req_b = [l for l in b.image.layers if l.name.startswith("requirements")]
    assert 1 <= len(req_a) <= 2 and len(req_a) == len(req_b)
    assert sum(x.digest != y.digest for x, y in zip(req_a, req_b)) == 1
    assert a.console_scripts == ("alpha-cli", "beta-cli", "delta-cli", "gamma-cli")
    assert "beta==2.0" in b.distributions and "beta==1.0" in a.distributions
