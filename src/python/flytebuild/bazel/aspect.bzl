"""`flyte_py_aspect`: the transitive Python sources and requirements below `deps`.

Works on any rule with `srcs`/`deps` (native `py_library`, rules_python's, custom ones), so the
rules do not depend on a particular Python ruleset. Requirements are targets tagged
`pypi_name=<distribution>`: rules_python's pip targets and `flyte_requirement`.
"""

load(":bazel/providers.bzl", "FlytePySourcesInfo")

_PY = ("py", "pyi")

def _source_files(ctx):
    files = []
    for attr in ("srcs", "data"):
        for f in getattr(ctx.rule.files, attr, []):
            if attr == "srcs" and f.extension not in _PY:
                continue
            files.append(f)
    return files

def _join(package, path):
    if path in (".", ""):
        return package
    return package + "/" + path if package else path

def _flyte_py_aspect_impl(target, ctx):
    deps = [d for d in getattr(ctx.rule.attr, "deps", []) if FlytePySourcesInfo in d]
    requirements = []
    for tag in getattr(ctx.rule.attr, "tags", []):
        if tag.startswith("pypi_name="):
            requirements.append(tag[len("pypi_name="):])
    files = _source_files(ctx)
    package = target.label.package
    if target.label.workspace_root:
        package = _join(target.label.workspace_root, package)
    node = json.encode(struct(
        label = str(target.label),
        srcs = [f.path for f in files],
        deps = [str(d.label) for d in deps],
        requirements = requirements,
        imports = [_join(package, i) for i in getattr(ctx.rule.attr, "imports", [])],
    ))
    return [FlytePySourcesInfo(
        nodes = depset([node], transitive = [d[FlytePySourcesInfo].nodes for d in deps]),
        files = depset(files, transitive = [d[FlytePySourcesInfo].files for d in deps]),
    )]

flyte_py_aspect = aspect(
    implementation = _flyte_py_aspect_impl,
    attr_aspects = ["deps"],
    doc = "Collects the Python build graph (sources, deps, requirements) below a target.",
)
