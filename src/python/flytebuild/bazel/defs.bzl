"""Bazel rules for Flyte: `flyte_settings`, `flyte_requirement`, `flyte_image`, `flyte_workflow`,
`flyte_pod_template`, `flyte_reference`.

The same targets as the Pants backend's, built by the same core through the `flytebuild` CLI:
each action hands the CLI a generated configuration holding the build graph that
`flyte_py_aspect` collected (so closures come from Bazel's graph, not from import analysis) and
declares its outputs:

- `flyte_image`: `<name>.image-plan.json` (version, ref, baked files, pins); output group `oci`:
  `<name>.image/` holding the OCI image layout and `<name>.image.json` (ref, manifest digest, layers);
- `flyte_workflow`: `<name>.plan.json` (per task image, baked/fast mode, version, as `flyte-plan`);
  output group `package`: `<name>.package/` with `flyte-package.tgz` (+ the fast tasks' bundle);
  output group `imagespec`: `<name>.imagespec/` with an OCI layout per ImageSpec in code that no
  `flyte_image` answers, and `imagespec.json` (ref, digest per spec);
  `bazel run :<name> -- [--dry-run] [--endpoint host:port --insecure]` registers what changed;
  `bazel run :<name>.run -- --<input> <value> ...` runs it locally (`flytebuild run`) in the user's
  interpreter, on the sources of Bazel's graph.

Version-neutral Starlark (providers, an aspect, `ctx.actions.run`); tested with Bazel 4.2.3.
Load from the repository holding flytebuild, e.g. `load("@flytebuild//flytebuild:bazel/defs.bzl", ...)`.
"""

load(":bazel/aspect.bzl", "flyte_py_aspect")
load(":bazel/providers.bzl", "FlyteImageInfo", "FlytePodTemplateInfo", "FlytePySourcesInfo", "FlyteSettingsInfo", "FlyteWorkflowInfo")

_SETTINGS = "//:flyte_settings"

# --- flyte_settings ----------------------------------------------------------------------------

def _var(ctx, value, name):
    return value or ctx.var.get(name, "")

def _flyte_settings_impl(ctx):
    env = {}
    if _var(ctx, ctx.attr.pex_root, "FLYTEBUILD_PEX_ROOT"):
        env["PEX_ROOT"] = _var(ctx, ctx.attr.pex_root, "FLYTEBUILD_PEX_ROOT")
    if _var(ctx, ctx.attr.image_cache_dir, "FLYTEBUILD_IMAGE_CACHE"):
        env["XDG_CACHE_HOME"] = _var(ctx, ctx.attr.image_cache_dir, "FLYTEBUILD_IMAGE_CACHE")
    return [FlyteSettingsInfo(
        python = _var(ctx, ctx.attr.python, "FLYTE_PYTHON"),
        tool_python = _var(ctx, ctx.attr.tool_python, "FLYTEBUILD_PYTHON"),
        lockfile = ctx.file.lockfile,
        requirements = ctx.file.requirements,
        project = ctx.attr.project,
        domain = ctx.attr.domain,
        registry = ctx.attr.registry,
        default_base = ctx.attr.default_base,
        default_image = ctx.attr.default_image,
        environment = _var(ctx, ctx.attr.environment, "FLYTE_ENV"),
        admin = _admin(ctx),
        env = env,
        worker = _worker_wrapper(ctx),
    )]

def _worker_wrapper(ctx):
    """With `persistent_worker`: the worker's executable. Bazel runs a persistent worker only for a tool artifact
    (a plain interpreter path is refused), and one file per settings target makes every action of a build share
    one worker process per mnemonic (docs/worker.md#bazel)."""
    if not ctx.attr.persistent_worker:
        return None
    wrapper = ctx.actions.declare_file(ctx.label.name + ".flytebuild-worker.sh")
    ctx.actions.write(wrapper, '#!/bin/sh\nexec "%s" -m flytebuild.cli.bazel_worker "$@"\n' %
                      _var(ctx, ctx.attr.tool_python, "FLYTEBUILD_PYTHON"), is_executable = True)
    return wrapper

def _admin(ctx):
    """FlyteAdmin settings for `bazel run` (deploy, reference runs): the CLI's endpoint/insecure/config/admin_timeout.
    An unset `insecure` stays unset: the flytekit `config` decides, TLS without one (as on every front end)."""
    admin = {}
    endpoint = _var(ctx, ctx.attr.endpoint, "FLYTE_ENDPOINT")
    if endpoint:
        admin["endpoint"] = endpoint
    if ctx.attr.insecure:
        admin["insecure"] = ctx.attr.insecure == "true"
    if ctx.attr.config:
        admin["config"] = ctx.attr.config
    if ctx.attr.admin_timeout:
        admin["admin_timeout"] = ctx.attr.admin_timeout
    if not ctx.attr.ledger:
        admin["ledger"] = False
    return admin

flyte_settings = rule(
    implementation = _flyte_settings_impl,
    doc = "Workspace-wide settings (Pants' [flyte] and resolve). Interpreter paths may come from " +
          "`--define=FLYTE_PYTHON=...` / `--define=FLYTEBUILD_PYTHON=...` (e.g. in a user .bazelrc).",
    attrs = {
        "python": attr.string(doc = "The user's interpreter, with flytekit (absolute path)."),
        "tool_python": attr.string(doc = "Interpreter running flytebuild (blake3, pex installed)."),
        "lockfile": attr.label(allow_single_file = True, doc = "Pants/Pex lockfile pinning requirements."),
        "requirements": attr.label(allow_single_file = True, doc = "requirements.txt declaring requirements."),
        "project": attr.string(default = "flytesnacks"),
        "domain": attr.string(default = "development"),
        "registry": attr.string(default = "localhost:5000"),
        "default_base": attr.string(default = "localhost:5000/flytebuild/python:3.11"),
        "default_image": attr.string(doc = "Image reference for tasks naming none."),
        "environment": attr.string(doc = "Overlay of pod templates to apply (or --define FLYTE_ENV=prod)."),
        "pex_root": attr.string(doc = "PEX_ROOT for resolving image requirements (or --define FLYTEBUILD_PEX_ROOT)."),
        "image_cache_dir": attr.string(doc = "Cache of built layers (or --define FLYTEBUILD_IMAGE_CACHE)."),
        "endpoint": attr.string(doc = "FlyteAdmin host:port for `bazel run` (or --define FLYTE_ENDPOINT; `-- --endpoint` wins)."),
        "insecure": attr.string(
            values = ["", "true", "false"],
            doc = "`true`: plaintext gRPC; `false`: TLS; unset: the flytekit `config` decides, TLS without one.",
        ),
        "config": attr.string(doc = "A flytekit config.yaml (absolute path) for FlyteAdmin: endpoint, TLS, auth."),
        "admin_timeout": attr.int(doc = "Seconds to wait for FlyteAdmin (0: the CLI's default)."),
        "ledger": attr.bool(
            default = True,
            doc = "Trust the deploy ledger (unchanged entities cost no gRPC call); False: ask FlyteAdmin every time.",
        ),
        "persistent_worker": attr.bool(
            doc = "Plan and package actions run in a persistent worker that forks the user's code from a warm " +
                  "process of the user's environment. Needs `build --experimental_worker_allow_json_protocol` " +
                  "and `build --worker_sandboxing` (docs/worker.md#bazel).",
        ),
    },
)

# --- flyte_requirement -------------------------------------------------------------------------

def flyte_requirement(name, requirement, visibility = None, **kwargs):
    """A third-party requirement usable in `py_library(deps=...)`, pinned through the lockfile.

    A plain `py_library` tagged `pypi_name=<distribution>`, the tag rules_python's pip targets
    carry, so both are recognised the same way by `flyte_py_aspect`.
    """
    dist = requirement
    for sep in ("=", "<", ">", "!", "~", "[", ";", " "):
        dist = dist.split(sep)[0]
    native.py_library(
        name = name,
        tags = ["pypi_name=" + dist, "pypi_requirement=" + requirement] + kwargs.pop("tags", []),
        visibility = visibility,
        **kwargs
    )

# --- shared ------------------------------------------------------------------------------------

def _cli_root(ctx):
    for f in ctx.files._cli:
        if f.path.endswith("flytebuild/__init__.py") and f.dirname.count("/") == min([g.dirname.count("/") for g in ctx.files._cli]):
            return f.dirname[:-len("/flytebuild")]
    fail("flytebuild sources not found in %s" % ctx.attr._cli.label)

def _root_of(path):
    """The relative path from `path`'s directory back to the root it is relative to."""
    depth = path.count("/")
    return "/".join([".."] * depth) if depth else "."

def _graph(nodes):
    targets = {}
    source_roots = {"": True}
    for text in nodes.to_list():
        node = json.decode(text)
        targets[node["label"]] = {"srcs": node["srcs"], "deps": node["deps"], "requirements": node["requirements"]}
        for root in node["imports"]:
            source_roots[root] = True
    return targets, sorted(source_roots.keys())

def _facts(settings, path, images, workflows, nodes, short = False, pod_templates = {}):
    """The CLI's configuration: flytebuild.toml's fields plus the build graph (`targets`). Only the facts of
    `bazel run` (`short`) carry the FlyteAdmin settings: build actions stay hermetic, so a plan built by Bazel
    never checks reference entities against a cluster (`flyte-plan` / `flytebuild plan` do when one is set)."""
    targets, source_roots = _graph(nodes)
    facts = {
        "root": _root_of(path),
        "relative_to_root": True,
        "source_roots": source_roots,
        "python": settings.python,
        "project": settings.project,
        "domain": settings.domain,
        "registry": settings.registry,
        "default_base": settings.default_base,
        "images": images,
        "workflows": workflows,
        "targets": targets,
        "pod_templates": pod_templates,
    }
    if settings.environment:
        facts["environment"] = settings.environment
    if settings.lockfile:
        facts["lockfile"] = settings.lockfile.short_path if short else settings.lockfile.path
    if settings.requirements:
        facts["requirements"] = settings.requirements.short_path if short else settings.requirements.path
    if settings.default_image:
        facts["default_image"] = settings.default_image
    if short:
        facts.update(settings.admin)
    return json.encode_indent(facts, indent = "  ") + "\n"

def _settings_files(settings):
    return [f for f in (settings.lockfile, settings.requirements) if f]

def _run_cli(ctx, settings, facts_file, arguments, inputs, outputs, mnemonic, progress, execution_requirements = {}):
    if not settings.tool_python:
        fail("flyte_settings has no tool_python: set it, or build with --define=FLYTEBUILD_PYTHON=<python with flytebuild's deps>")
    env = {
        "PYTHONPATH": _cli_root(ctx),
        "PYTHONDONTWRITEBYTECODE": "1",
        "FLYTEBUILD_CACHE_DIR": "",  # inputs are content-addressed by Bazel already
        "PIP_CONFIG_FILE": "/dev/null",
        "FLYTEBUILD_FRONT_END": "bazel",  # messages name flyte_settings attributes, not TOML keys
    }
    env.update(settings.env)
    cli_args = ["-c", facts_file.path] + arguments
    inputs = depset([facts_file] + _settings_files(settings), transitive = [inputs])
    if settings.worker and not execution_requirements:
        # The persistent worker (cli/bazel_worker.py): every argument in the param file, which Bazel sends as one
        # work request; the same wrapper runs the CLI on the param file when another strategy runs the action.
        args = ctx.actions.args()
        args.add_all(cli_args)
        args.use_param_file("@%s", use_always = True)
        args.set_param_file_format("multiline")
        executable, cli_args, tools = settings.worker, [args], ctx.files._cli
        execution_requirements = {"supports-workers": "1", "requires-worker-protocol": "json"}
    else:
        executable, cli_args, tools = settings.tool_python, ["-m", "flytebuild.cli"] + cli_args, []
        inputs = depset(transitive = [inputs, depset(ctx.files._cli)])
    ctx.actions.run(
        executable = executable,
        arguments = cli_args,
        inputs = inputs,
        tools = tools,
        outputs = outputs,
        env = env,
        mnemonic = mnemonic,
        progress_message = progress,
        execution_requirements = execution_requirements,
    )

_COMMON_ATTRS = {
    "settings": attr.label(providers = [FlyteSettingsInfo], mandatory = True),
    "_cli": attr.label(default = Label("//flytebuild:flytebuild_cli"), allow_files = True),
}

# --- flyte_image -------------------------------------------------------------------------------

def _image_config(ctx, settings):
    name = ctx.attr.image_name or ctx.label.name
    return {
        "image_name": name,
        "base": ctx.attr.base or settings.default_base,
        "registry": ctx.attr.registry or settings.registry,
        "repository": ctx.attr.repository or name,
        "dependencies": [str(d.label) for d in ctx.attr.deps],
        "requirements": [],
        "env": ctx.attr.env,
        "python": ctx.attr.python,
    }

def _flyte_image_impl(ctx):
    settings = ctx.attr.settings[FlyteSettingsInfo]
    label = str(ctx.label)
    config = _image_config(ctx, settings)
    nodes = depset(transitive = [d[FlytePySourcesInfo].nodes for d in ctx.attr.deps])
    files = depset(transitive = [d[FlytePySourcesInfo].files for d in ctx.attr.deps])

    facts = ctx.actions.declare_file(ctx.label.name + ".image-facts.json")
    ctx.actions.write(facts, _facts(settings, facts.path, {label: config}, {}, nodes))
    plan = ctx.actions.declare_file(ctx.label.name + ".image-plan.json")
    _run_cli(ctx, settings, facts, ["plan", "--format=json", "-o", plan.path, label], files, [plan],
             "FlyteImagePlan", "Planning flyte_image %s" % label)

    layout = ctx.actions.declare_directory(ctx.label.name + ".image")
    _run_cli(ctx, settings, facts, ["package", label, "--image-output=oci", "--dist", layout.path], files,
             [layout], "FlyteImage", "Building flyte_image %s" % label,
             # pulls the base image and keeps content-addressed caches (layers, wheels) across builds
             execution_requirements = {"no-sandbox": "1", "requires-network": "1"})
    return [
        DefaultInfo(files = depset([plan])),
        OutputGroupInfo(oci = depset([layout])),
        FlyteImageInfo(label = label, config = config, nodes = nodes, files = files),
    ]

_flyte_image = rule(
    implementation = _flyte_image_impl,
    doc = "A Flyte task image holding exactly the closure of `deps`.",
    attrs = dict(_COMMON_ATTRS, **{
        "deps": attr.label_list(aspects = [flyte_py_aspect], doc = "What is baked (py_library, flyte_requirement)."),
        "image_name": attr.string(doc = "Name used in code (`ImageSpec(name=...)`); defaults to the target name."),
        "base": attr.string(),
        "registry": attr.string(),
        "repository": attr.string(),
        "env": attr.string_dict(),
        "python": attr.string(default = "/usr/bin/python3", doc = "Interpreter inside the image."),
    }),
)

# --- flyte_pod_template -----------------------------------------------------------------------

def _flyte_pod_template_impl(ctx):
    overlays = {}
    short_overlays = {}
    files = [ctx.file.src]
    for target, env in ctx.attr.overlays.items():
        f = target.files.to_list()[0]
        overlays[env] = f.path
        short_overlays[env] = f.short_path
        files.append(f)
    common = {"values": ctx.attr.values}
    if ctx.attr.primary_container_name:
        common["primary_container_name"] = ctx.attr.primary_container_name
    return [
        DefaultInfo(files = depset(files)),
        FlytePodTemplateInfo(
            label = str(ctx.label),
            config = dict(common, source = ctx.file.src.path, overlays = overlays),
            short_config = dict(common, source = ctx.file.src.short_path, overlays = short_overlays),
            files = files,
        ),
    ]

flyte_pod_template = rule(
    implementation = _flyte_pod_template_impl,
    doc = "A pod template with `${var}` values and per-environment overlays (see `flytebuild render`).",
    attrs = {
        "src": attr.label(allow_single_file = [".yaml", ".yml", ".json"], mandatory = True),
        "overlays": attr.label_keyed_string_dict(allow_files = [".yaml", ".yml", ".json"], doc = "overlay file → environment"),
        "values": attr.string_dict(),
        "primary_container_name": attr.string(),
    },
)

# --- flyte_workflow ----------------------------------------------------------------------------

def _workflow_facts(ctx, settings, path, short):
    label = str(ctx.label)
    images = {}
    for target in [ctx.attr.image] + ctx.attr.images.keys() + ctx.attr.task_images.keys():
        if target:
            info = target[FlyteImageInfo]
            images[info.label] = info.config
    workflow = {
        "entrypoint": ctx.attr.entrypoint,
        "project": ctx.attr.project or settings.project,
        "domain": ctx.attr.domain or settings.domain,
        "images": {name: target[FlyteImageInfo].label for target, name in ctx.attr.images.items()},
        "task_images": {task: target[FlyteImageInfo].label for target, tasks in ctx.attr.task_images.items() for task in tasks.split(",")},
    }
    if ctx.attr.image:
        workflow["image"] = ctx.attr.image[FlyteImageInfo].label
    pod_templates = {}
    for target in _pod_template_targets(ctx):
        info = target[FlytePodTemplateInfo]
        pod_templates[info.label] = info.short_config if short else info.config
    if ctx.attr.pod_template:
        workflow["pod_template"] = ctx.attr.pod_template[FlytePodTemplateInfo].label
    workflow["task_pod_templates"] = {
        task: target[FlytePodTemplateInfo].label
        for target, tasks in ctx.attr.task_pod_templates.items()
        for task in tasks.split(",")
    }
    if ctx.attr.cache_key:
        workflow["cache_key"] = ctx.attr.cache_key
    return _facts(settings, path, images, {label: workflow}, _nodes(ctx), short, pod_templates)

def _pod_template_targets(ctx):
    return ([ctx.attr.pod_template] if ctx.attr.pod_template else []) + ctx.attr.task_pod_templates.keys()

def _pod_template_files(ctx):
    return [f for t in _pod_template_targets(ctx) for f in t[FlytePodTemplateInfo].files]

def _image_targets(ctx):
    return [t for t in [ctx.attr.image] + ctx.attr.images.keys() + ctx.attr.task_images.keys() if t]

def _nodes(ctx):
    return depset(transitive = [d[FlytePySourcesInfo].nodes for d in ctx.attr.deps] +
                               [t[FlyteImageInfo].nodes for t in _image_targets(ctx)])

def _files(ctx):
    return depset(_pod_template_files(ctx), transitive = [d[FlytePySourcesInfo].files for d in ctx.attr.deps] +
                                                         [t[FlyteImageInfo].files for t in _image_targets(ctx)])

def _flyte_workflow_impl(ctx):
    settings = ctx.attr.settings[FlyteSettingsInfo]
    label = str(ctx.label)
    facts = ctx.actions.declare_file(ctx.label.name + ".facts.json")
    ctx.actions.write(facts, _workflow_facts(ctx, settings, facts.path, False))
    files = _files(ctx)

    plan = ctx.actions.declare_file(ctx.label.name + ".plan.json")
    _run_cli(ctx, settings, facts, ["plan", "--format=json", "-o", plan.path, label], files, [plan],
             "FlytePlan", "Planning flyte_workflow %s" % label)
    package = ctx.actions.declare_directory(ctx.label.name + ".package")
    _run_cli(ctx, settings, facts, ["package", label, "--dist", package.path], files, [package],
             "FlytePackage", "Packaging flyte_workflow %s" % label)

    # The ImageSpecs in code that no flyte_image answers, as OCI layouts (`flytebuild imagespec`): the code
    # declares them, so they are outputs of the workflow, not targets of their own. Specs with apt_packages or
    # commands need docker build and a push: the action fails for them with the CLI's message.
    specs = ctx.actions.declare_directory(ctx.label.name + ".imagespec")
    _run_cli(ctx, settings, facts, ["imagespec", label, "--image-output=oci", "--dist", specs.path, "--format=json",
                                    "-o", specs.path + "/imagespec.json"], files, [specs],
             "FlyteImageSpec", "Building the ImageSpecs of %s" % label,
             execution_requirements = {"no-sandbox": "1", "requires-network": "1"})

    # `bazel run`: deploy from the runfiles tree (paths there are short paths).
    run_facts = ctx.actions.declare_file(ctx.label.name + ".run-facts.json")
    ctx.actions.write(run_facts, _workflow_facts(ctx, settings, run_facts.short_path, True))
    script = ctx.actions.declare_file(ctx.label.name + ".deploy.sh")
    _write_cli_script(ctx, script, settings, run_facts, "deploy", label)
    runfiles = ctx.runfiles(files = [run_facts] + _settings_files(settings) + ctx.files._cli, transitive_files = files)
    return [
        DefaultInfo(files = depset([plan]), executable = script, runfiles = runfiles),
        OutputGroupInfo(package = depset([package]), imagespec = depset([specs])),
        FlyteWorkflowInfo(label = label, run_facts = run_facts, runfiles = runfiles, settings = settings),
    ]

def _write_cli_script(ctx, script, settings, facts, command, label):
    ctx.actions.write(script, _CLI_SCRIPT.format(
        python = settings.tool_python,
        cli = _cli_root_short(ctx),
        facts = facts.short_path,
        command = command,
        label = label,
        workspace = ctx.workspace_name,
        env = "\n".join(["export %s='%s'" % (k, v) for k, v in sorted(settings.env.items())]),
    ), is_executable = True)

def _cli_root_short(ctx):
    for f in ctx.files._cli:
        if f.short_path.endswith("flytebuild/cli/main.py"):
            return f.short_path[:-len("/flytebuild/cli/main.py")]
    fail("flytebuild sources not found")

_CLI_SCRIPT = """#!/bin/sh
# bazel run <workflow> -- [--dry-run] [--format=json] [--endpoint host:port] [--insecure]   (deploy)
# bazel run <workflow>.run -- [--<input> <value> ...] [--format=json]                      (local run)
# Runs from the runfiles tree of the workspace, where the facts' paths are valid.
set -e
if [ -d "$0.runfiles/{workspace}" ]; then cd "$0.runfiles/{workspace}"; fi
export PYTHONPATH="$PWD/{cli}" PYTHONDONTWRITEBYTECODE=1 FLYTEBUILD_CACHE_DIR="" PIP_CONFIG_FILE=/dev/null FLYTEBUILD_FRONT_END=bazel
{env}
exec "{python}" -m flytebuild.cli -c "{facts}" {command} "{label}" "$@"
"""

def _flyte_workflow_run_impl(ctx):
    info = ctx.attr.workflow[FlyteWorkflowInfo]
    script = ctx.actions.declare_file(ctx.label.name + ".sh")
    _write_cli_script(ctx, script, info.settings, info.run_facts, "run", info.label)
    return [DefaultInfo(files = depset([script]), executable = script, runfiles = info.runfiles)]

_flyte_workflow_run = rule(
    implementation = _flyte_workflow_run_impl,
    executable = True,
    doc = "`bazel run` runs the workflow locally (`flytebuild run`): typed inputs after `--`, e.g. `--x 4`.",
    attrs = {
        "workflow": attr.label(providers = [FlyteWorkflowInfo], mandatory = True),
        "_cli": attr.label(default = Label("//flytebuild:flytebuild_cli"), allow_files = True),
    },
)

_flyte_workflow = rule(
    implementation = _flyte_workflow_impl,
    executable = True,
    doc = "A Flyte workflow, launch plan or task: plan, registration archive, and `bazel run` to deploy.",
    attrs = dict(_COMMON_ATTRS, **{
        "entrypoint": attr.string(mandatory = True, doc = "`package.module:attr` of a workflow, launch plan or task."),
        "deps": attr.label_list(aspects = [flyte_py_aspect], doc = "The py_library holding the entrypoint."),
        "image": attr.label(providers = [FlyteImageInfo], doc = "Image of tasks naming none in code."),
        "images": attr.label_keyed_string_dict(providers = [FlyteImageInfo], doc = "flyte_image → name used in code."),
        "task_images": attr.label_keyed_string_dict(providers = [FlyteImageInfo], doc = "flyte_image → task name(s), comma separated."),
        "project": attr.string(),
        "domain": attr.string(),
        "pod_template": attr.label(providers = [FlytePodTemplateInfo], doc = "Pod template of every task."),
        "task_pod_templates": attr.label_keyed_string_dict(providers = [FlytePodTemplateInfo], doc = "flyte_pod_template → task name(s), comma separated."),
        "cache_key": attr.string(doc = "`interface` (default) or `code`: what cache versions follow."),
    }),
)

# --- flyte_reference --------------------------------------------------------------------------

def _flyte_reference_impl(ctx):
    settings = ctx.attr.settings[FlyteSettingsInfo]
    label = str(ctx.label)
    reference = {
        "kind": ctx.attr.kind,
        "entity_name": ctx.attr.entity_name,
        "project": ctx.attr.project or settings.project,
        "domain": ctx.attr.domain or settings.domain,
        "default_inputs": ctx.attr.default_inputs,
    }
    if ctx.attr.version:
        reference["version"] = ctx.attr.version
    facts = ctx.actions.declare_file(ctx.label.name + ".run-facts.json")
    ctx.actions.write(facts, json.encode_indent(dict(settings.admin, **{
        "root": _root_of(facts.short_path),
        "relative_to_root": True,
        "python": settings.python,
        "project": settings.project,
        "domain": settings.domain,
        "references": {label: reference},
    }), indent = "  ") + "\n")
    script = ctx.actions.declare_file(ctx.label.name + ".run.sh")
    ctx.actions.write(script, _LAUNCH.format(
        python = settings.tool_python,
        cli = _cli_root_short(ctx),
        facts = facts.short_path,
        label = label,
        workspace = ctx.workspace_name,
    ), is_executable = True)
    return [DefaultInfo(
        files = depset([facts]),
        executable = script,
        runfiles = ctx.runfiles(files = [facts] + ctx.files._cli),
    )]

_LAUNCH = """#!/bin/sh
# bazel run <reference> -- [--endpoint host:port --insecure] [--wait] [--format=json] [--<input> <value> ...]
set -e
if [ -d "$0.runfiles/{workspace}" ]; then cd "$0.runfiles/{workspace}"; fi
export PYTHONPATH="$PWD/{cli}" PYTHONDONTWRITEBYTECODE=1 FLYTEBUILD_CACHE_DIR="" FLYTEBUILD_FRONT_END=bazel
exec "{python}" -m flytebuild.cli -c "{facts}" run "{label}" "$@"
"""

_flyte_reference = rule(
    implementation = _flyte_reference_impl,
    executable = True,
    doc = "A task, workflow or launch plan registered on the cluster; `bazel run` launches it as registered.",
    attrs = dict(_COMMON_ATTRS, **{
        "kind": attr.string(mandatory = True, values = ["task", "workflow", "launch_plan"]),
        "entity_name": attr.string(mandatory = True),
        "version": attr.string(doc = "Registered version; empty: the latest."),
        "project": attr.string(),
        "domain": attr.string(),
        "default_inputs": attr.string_dict(doc = "Inputs as on the command line (lowest precedence)."),
    }),
)

# --- macros: the settings default to //:flyte_settings of the calling workspace ------------------

def flyte_image(name, settings = _SETTINGS, **kwargs):
    _flyte_image(name = name, settings = settings, **kwargs)

def flyte_workflow(name, settings = _SETTINGS, **kwargs):
    """`:<name>`: plan, archive and `bazel run` to deploy; `:<name>.run`: `bazel run` to run locally."""
    _flyte_workflow(name = name, settings = settings, **kwargs)
    _flyte_workflow_run(
        name = name + ".run",
        workflow = ":" + name,
        visibility = kwargs.get("visibility"),
        tags = kwargs.get("tags"),
        testonly = kwargs.get("testonly"),
    )

def flyte_reference(name, settings = _SETTINGS, **kwargs):
    _flyte_reference(name = name, settings = settings, **kwargs)
