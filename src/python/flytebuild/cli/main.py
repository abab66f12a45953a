"""`flytebuild <command>`: argument parsing and the one place errors become exit codes."""
from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

from flytebuild import __version__
from flytebuild.cli.config import DEFAULTS, find_config, load_project
from flytebuild.core.errors import FlytebuildError
from flytebuild.service.images import OUTPUTS


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flytebuild",
        description="Flyte images, workflows and versions from flytebuild.toml (the Pants goals without Pants).",
    )
    parser.add_argument("--version", action="version", version=f"flytebuild {__version__}")
    parser.add_argument(
        "--config", "-c", help="flytebuild.toml or pyproject.toml (default: the nearest one at or above the cwd)"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    plan = commands.add_parser(
        "plan",
        help="per workflow and task: image (and why), baked/fast mode, version",
        description="Show, per workflow and per task, the image it runs in (and where that choice came from), "
        "whether its code is baked into the image or needs fast-register, and its content-addressed version. "
        "Same output as `pants flyte-plan`.",
    )
    plan.add_argument("targets", nargs="*", metavar="NAME", help="workflows/images to plan (default: all)")
    plan.add_argument(
        "--format", choices=("table", "json"), default="table", help="`table` for people, `json` for machines"
    )
    plan.add_argument("--output", "-o", help="write the plan to this file instead of stdout")

    package = commands.add_parser(
        "package",
        help="build images; write registration archives of workflows",
        description="Images: built without a daemon, reproducibly, holding exactly their closure, tagged with "
        "their content version, and written as an OCI layout under --dist (the default, as `pants package`), kept "
        "in the local layer cache only, loaded into Docker, or pushed (`flytebuild publish` pushes; nothing is "
        "built when the tag exists); `<dist>/<name>.image.json` records ref and digest. "
        "Workflows: `<dist>/<name>/flyte-package.tgz`, the numbered .pb files of every entity, each under its "
        "content-addressed version, plus the code bundle of the fast tasks only. Same as `pants package`.",
    )
    package.add_argument("targets", nargs="*", metavar="NAME", help="images and workflows (default: all)")
    package.add_argument("--dist", default=None, help="output directory (default: dist/ under the repository root)")
    package.add_argument(
        "--image-output",
        choices=OUTPUTS,
        default="oci",
        help="what to do with images: an OCI layout under --dist (default), the local layer cache only, docker "
        "load, or push to their registry (as `flytebuild publish`)",
    )

    publish = commands.add_parser(
        "publish",
        help="build and push images",
        description="Build images as `package` does and push each to its registry under its content tag (an "
        "existing tag is neither rebuilt nor pushed); `<dist>/<name>.image.json` records ref and digest. "
        "Same as `pants publish`.",
    )
    publish.add_argument("targets", nargs="*", metavar="NAME", help="images (default: all)")
    publish.add_argument("--dist", default=None, help="where the summaries go (default: dist/ under the root)")

    render = commands.add_parser(
        "render",
        help="the final Kubernetes pod spec of every task",
        description="Print the final pod spec of every task of the workflows (pod template + environment "
        "overlay + code-level overrides, validated as V1PodSpec, the task's image in the primary container). "
        "Same output as `pants flyte-render`.",
    )
    render.add_argument("targets", nargs="*", metavar="NAME", help="workflows (default: all)")
    render.add_argument("--env", default=None, help="environment whose overlays apply (default: `environment`)")
    render.add_argument("--format", choices=("yaml", "json"), default="yaml")

    run = commands.add_parser(
        "run",
        help="run a workflow locally, with the plan's cache versions and images",
        description="Run a workflow, launch plan or task locally in the user's environment, with flytebuild's "
        "interface-aware cache versions and the planned images. Arguments after the name are the entity's "
        "inputs (`--x 3`) and `--format=json`. Same as `pants run <flyte_workflow>`.",
    )
    run.add_argument("--remote", action="store_true", help="deploy what changed, then run on the cluster")
    run.add_argument("--endpoint", help="FlyteAdmin gRPC endpoint host:port (overrides `endpoint`)")
    run.add_argument("--insecure", action="store_true", default=None, help="plaintext gRPC (overrides `insecure`)")
    run.add_argument("target", metavar="NAME", help="the workflow (or [references.*] entity) to run")
    run.add_argument("args", nargs=argparse.REMAINDER, help="inputs, e.g. --x 3; --wait and --format=json")

    deploy = commands.add_parser(
        "deploy",
        help="register what changed with FlyteAdmin",
        description="Register workflows with FlyteAdmin: each task, workflow and launch plan under its "
        "content-addressed version, only those FlyteAdmin does not hold yet; the code bundle (only the "
        "fast tasks' files) is uploaded only when needed. Same semantics as `pants flyte-deploy`.",
    )
    _deploy_flags(deploy)
    deploy.add_argument("--dry-run", action="store_true", help="show what would be registered; change nothing")
    deploy.add_argument("--format", choices=("table", "json"), default="table")

    dev = commands.add_parser(
        "dev",
        help="deploy, then deploy again on every save (a watch loop; Ctrl-C stops it)",
        description="Deploy the workflows (as `flytebuild deploy`), then watch their sources (the Python files "
        "under the source roots, flytebuild.toml, requirements, lockfile and pod templates: modification times, "
        "then blake3 content digests) and, on each save that changes content, deploy again: only what changed "
        "is registered, and printed. Ctrl-C stops it.",
    )
    _deploy_flags(dev)
    dev.add_argument("--interval", type=float, default=0.3, help="seconds between checks for saved files")

    init = commands.add_parser(
        "init",
        help="write a starting flytebuild.toml for the flytekit project here",
        description="Scan DIR (default: the cwd) for @workflow functions, find the Python that has flytekit "
        "(.venv/, venv/, or the one running flytebuild), and write DIR/flytebuild.toml: one image baking "
        "the workflows' code and requirements, one [workflows.NAME] per workflow. Writes requirements.txt "
        "(flytekit pinned to the version found) when the project has none.",
    )
    init.add_argument("directory", nargs="?", default=".", metavar="DIR")
    init.add_argument("--python", help="the interpreter of the environment with flytekit (written as given)")
    init.add_argument("--registry", help=f"registry images are pushed to (default: {DEFAULTS['registry']})")
    init.add_argument(
        "--base",
        help="base image of the images: a reference, oci:<dir>[:tag] or docker-archive:<tar> "
        f"(default: {DEFAULTS['default_base']})",
    )
    init.add_argument("--project", help=f"Flyte project (default: {DEFAULTS['project']})")
    init.add_argument("--domain", help=f"Flyte domain (default: {DEFAULTS['domain']})")
    init.add_argument("--force", action="store_true", help="overwrite an existing flytebuild.toml")

    commands.add_parser(
        "lock",
        help="pin the requirements for the configured python (pex3 lock create)",
        description="Resolve `requirements` for `python` with pex and write the lockfile (`lockfile`, default "
        "flytebuild.lock next to the configuration, which is then switched on): plans pin transitive versions "
        "and images resolve exactly these. Equivalent to `pex3 lock create --style strict "
        "--resolver-version pip-2020-resolver --python <python> "
        "-r <requirements> -o <lockfile> --indent 2`.",
    )

    base = commands.add_parser(
        "base-image",
        help="make a Python base image offline, from this machine's Debian packages",
        description="Build a Python base image from the installed Debian packages python3, dash, coreutils, "
        "bash, libc-bin, libstdc++6 and their dependencies (one reproducible layer; no network, no Docker), "
        'and write it as an OCI image layout (use it as default_base = "oci:<dir>") or push it.',
    )
    base.add_argument(
        "--from-debian",
        action="store_true",
        required=True,
        help="take the files of the installed Debian packages (the only source so far)",
    )
    base.add_argument("--output", "-o", metavar="DIR", help="write an OCI image layout here")
    base.add_argument("--push", metavar="REF", help="push to this registry reference instead")
    base.add_argument("--tag", default="latest", help="name of the image inside the layout (oci:<dir>:<tag>)")
    base.add_argument(
        "--package",
        dest="packages",
        action="append",
        metavar="PKG",
        help="Debian package to include (repeat; default: python3 dash coreutils bash libc-bin libstdc++6)",
    )
    imagespec = commands.add_parser(
        "imagespec",
        help="build and push the ImageSpecs in code that no [images.*] answers",
        description="Build and push, daemonlessly, every ImageSpec used in the code of these workflows that no "
        "[images.*] answers: its base, packages, env, and exactly the closure of its tasks, tagged with the "
        "content version the plan gives their tasks. Same as `pants flyte-imagespec`.",
    )
    imagespec.add_argument("targets", nargs="*", metavar="NAME", help="workflows (default: all)")
    imagespec.add_argument("--format", choices=("table", "json"), default="table")
    imagespec.add_argument(
        "--image-output",
        choices=OUTPUTS,
        default="push",
        help="push to their registry (default, as `pants flyte-imagespec`), an OCI layout under --dist, docker "
        "load, or the local layer cache only",
    )
    imagespec.add_argument("--dist", default=None, help="output directory of --image-output=oci (default: dist/)")
    imagespec.add_argument("--output", "-o", help="write the report to this file instead of stdout")

    verify = commands.add_parser(
        "verify",
        help="check every baked task can run from its image",
        description="Publish the images of the workflows' baked tasks (an existing tag is not rebuilt), then "
        "check each task's module imports inside its image and pyflyte-execute is on PATH (one `docker run "
        "--network none` per image when a Docker engine answers), or, without one, check the image's labels "
        "(baked files and distributions) against the task's closure. Same as `pants flyte-verify`.",
    )
    verify.add_argument("targets", nargs="*", metavar="NAME", help="workflows to verify (default: all)")
    verify.add_argument("--format", choices=("table", "json"), default="table")
    verify.add_argument(
        "--engine",
        choices=("auto", "docker", "static"),
        default="auto",
        help="`docker`: run the images; `static`: labels only; `auto`: docker when an engine answers",
    )
    worker = commands.add_parser(
        "worker",
        help="stop the warm user-environment workers",
        description="Commands that run code in your environment fork it from a warm worker process that "
        "imported flytekit once (docs/worker.md); an idle worker exits after FLYTEBUILD_WORKER_IDLE_TIMEOUT "
        "seconds (600). `worker stop` stops every worker of this cache directory now; FLYTEBUILD_WORKER=0 runs "
        "without one.",
    )
    worker.add_argument("action", choices=("stop",))
    return parser


def _worker(args: argparse.Namespace) -> int:
    from flytebuild.cli.cache import cache_path
    from flytebuild.service import worker

    directory = cache_path("workers")
    stopped = worker.stop(directory) if directory else 0
    print(f"flytebuild: stopped {stopped} worker(s)")
    return 0


def _deploy_flags(parser: argparse.ArgumentParser) -> None:
    """What `deploy` and `dev` both take."""
    parser.add_argument("targets", nargs="*", metavar="NAME", help="workflows to deploy (default: all)")
    parser.add_argument(
        "--no-push-images",
        dest="push_images",
        action="store_false",
        help="do not build and push the tasks' images first (tasks then name the content tag; push it yourself)",
    )
    parser.add_argument("--endpoint", help="FlyteAdmin gRPC endpoint host:port (overrides `endpoint`)")
    parser.add_argument("--insecure", action="store_true", default=None, help="plaintext gRPC (overrides `insecure`)")
    parser.add_argument("--no-ledger", dest="ledger", action="store_false", default=None,
                        help="ask FlyteAdmin about every entity, trusting no deploy ledger (overrides `ledger`)")


def _write(text: str, output: Optional[str]) -> None:
    if output:
        with open(output, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)


def _plan(args: argparse.Namespace) -> int:
    from flytebuild.cli.planning import plan_project
    from flytebuild.core.report import render_json, render_table
    from flytebuild.service import references

    project = load_project(args.config or find_config("."))
    result = plan_project(project, args.targets, isolate=True)
    _report_failed(result)
    if result.errors and not result.workflows:
        return 1  # nothing planned: the paragraphs above are the whole answer
    _warn_unlocked(project, result.image_targets)
    workflows = result.workflows
    # With a cluster configured, the references the code declares are checked against the registered
    # entities (warnings only), as `pants flyte-plan` does.
    checked = references.wanted(workflows, project.settings.admin)
    if checked:
        workflows = references.with_warnings(workflows, _check_references(project, checked))
    render = render_json if args.format == "json" else render_table
    _write(render(result.images, workflows), args.output)
    return 1 if result.errors else 0


def _report_failed(result) -> None:
    """One paragraph per workflow that could not be planned; the others are still printed/written (exit 1)."""
    for name, error in result.errors:
        print(f"flytebuild: {name}: {error}", file=sys.stderr)


def _warn_unlocked(project, image_targets) -> None:
    """Images whose requirements no lockfile pins (core/weakening.py), once per command."""
    from flytebuild.cli import userenv
    from flytebuild.core.weakening import unpinned

    if project.lockfile:
        return
    for image in image_targets:
        message = unpinned(
            image.address, image.requirements, "run `flytebuild lock` and set `lockfile` in flytebuild.toml"
        )
        if message:
            userenv.warn(message)


def _check_references(project, plans) -> dict:
    import json
    import os
    import tempfile

    from flytebuild.cli import userenv
    from flytebuild.service import references

    python = userenv.check_python(project.python, project.config_file)
    with tempfile.TemporaryDirectory(prefix="flytebuild-references-") as tmp:
        request = os.path.join(tmp, "request.json")
        with open(request, "w", encoding="utf-8") as f:
            json.dump(references.check_request(plans, project.settings.admin), f, indent=1, sort_keys=True)
        userenv.progress(f"flytebuild: checking references against FlyteAdmin at {project.settings.admin.where}")
        proc = userenv.run_runtime(
            python, references.COMMAND, [request], project.root, project.source_roots, cwd=project.root
        )
    return references.reference_warnings(plans, proc.stdout, proc.stderr)


def _workflows_only(project, names, command: str, kind: str = "workflow") -> None:
    """`command` takes only targets of `kind` (workflow or image): one paragraph naming those of the other kind."""
    workflows, images = [w.name for w in project.workflows], [i.name for i in project.images]
    takes, other, others = (workflows, "an image", images) if kind == "workflow" else (images, "a workflow", workflows)
    wrong = [n for n in names if n in others]
    if wrong:
        raise FlytebuildError(
            f"{', '.join(wrong)} {f'is {other}' if len(wrong) == 1 else f'are {other.split()[1]}s'}; `{command}` takes "
            f"{kind}s",
            file=project.config_file,
            fix=f"name {kind}s ({', '.join(takes)})",
        )


def _package(args: argparse.Namespace, project=None) -> int:
    from flytebuild.cli import images as cli_images
    from flytebuild.cli.graph import check_image_config, project_graph
    from flytebuild.cli.planning import check_workflow_config, plan_project, select
    from flytebuild.cli.registration import package_workflows

    project = project or load_project(args.config or find_config("."))
    workflows, images = select(project, args.targets)
    dist = _dist(project, args)
    # Every selected target's fields are checked before the first image is built.
    for config in images:
        check_image_config(project, config)
    for workflow in workflows:
        check_workflow_config(project, workflow)

    def shown(path: str) -> str:
        rel = os.path.relpath(path)
        return path if rel.startswith("..") else rel

    if images:
        graph = project_graph(project)
        _warn_unlocked(project, [graph.image_target(config) for config in images])
        for config in images:
            published = cli_images.publish_image(
                project, graph, graph.image_target(config), args.image_output, dist, project.image_push_jobs
            )
            summary = cli_images.write_summary(published, dist)
            print(f"Wrote {shown(summary)}")
            print(f"    {cli_images.describe(published)}")
    if workflows:
        result = plan_project(project, [w.name for w in workflows], isolate=True, serialize_next=True)
        for path, lines in package_workflows(project, result, dist):
            print(f"Wrote {shown(path)}")
            for line in lines:
                print(f"    {line}")
        _report_failed(result)
        return 1 if result.errors else 0
    return 0


def _dist(project, args: argparse.Namespace) -> str:
    return os.path.abspath(args.dist) if args.dist else os.path.join(project.root, "dist")


def _publish(args: argparse.Namespace) -> int:
    project = load_project(args.config or find_config("."))
    _workflows_only(project, args.targets, "publish", kind="image")
    args.image_output = "push"
    args.targets = args.targets or [i.name for i in project.images]
    return _package(args, project)


def _deploy(args: argparse.Namespace) -> int:
    from flytebuild.core.deploy_report import render_deploy_json, render_deploy_table

    code, summary, warnings = _deploy_once(args)
    render = render_deploy_json if args.format == "json" else render_deploy_table
    sys.stdout.write(render(summary, warnings))
    if code != 0:
        print(
            "flytebuild deploy: some entities were not registered (see MESSAGE); workflows whose tasks failed were "
            "left out. Fix the cause and re-run: what was registered is kept.",
            file=sys.stderr,
        )
    return code


def _deploy_once(args: argparse.Namespace):
    """One `flytebuild deploy` (also each round of `flytebuild dev`): (exit code, summary, warnings)."""
    from flytebuild.cli.planning import plan_project
    from flytebuild.cli.registration import check_admin, deploy
    from flytebuild.service.deploy import images_summary

    project = load_project(args.config or find_config("."))
    _workflows_only(project, args.targets, "deploy")
    # serialize_next: the process that introspects serializes too (one flytekit import)
    result = plan_project(project, args.targets or [w.name for w in project.workflows], serialize_next=True)
    _warn_unlocked(project, result.image_targets)
    admin = _admin(project, args)
    check_admin(admin)  # before anything is pushed
    pushed = []
    if args.push_images and not args.dry_run:
        # Images first: a task is registered only once the image it names exists. Tasks name the content tag on
        # every path (never a digest), so `--no-push-images` and a normal deploy register identical entities.
        from flytebuild.cli import images as cli_images
        from flytebuild.cli.graph import project_graph

        graph = project_graph(project)
        wanted = {t.image_address for p in result.workflows for t in p.tasks if t.image_address}
        for image in result.image_targets:
            if image.address in wanted:
                pushed.append(cli_images.publish_image(project, graph, image, "push", "", project.image_push_jobs))
        # ImageSpecs in code without an image target: built by flytebuild under the tag the plan gave their
        # tasks (as `pants flyte-deploy` does).
        if any(t.image_source == "code:ImageSpec" for p in result.workflows for t in p.tasks):
            from flytebuild.cli.imagespec import publish_specs

            publish_specs(project, graph, result)
    # Tasks name their images' content tags on every path (never digests): `--no-push-images` then a normal
    # deploy register identical entities.
    code, summary, warnings, _ = deploy(project, result, admin, args.dry_run)
    summary["images"] = images_summary(pushed)
    return code, summary, warnings


def _dev(args: argparse.Namespace) -> int:
    from flytebuild.cli.dev import watch

    args.dry_run, args.format = False, "table"
    return watch(args, _deploy_once)


def _render(args: argparse.Namespace) -> int:
    import json

    from flytebuild.cli.planning import plan_project
    from flytebuild.core.pod_render import render_entries, render_yaml

    project = load_project(args.config or find_config("."))
    _workflows_only(project, args.targets, "render")
    result = plan_project(project, args.targets or [w.name for w in project.workflows], args.env)
    entries = render_entries(list(result.workflows))
    if args.format == "json":
        sys.stdout.write(json.dumps({"pods": entries}, sort_keys=True, indent=2, ensure_ascii=False) + "\n")
    elif entries:
        sys.stdout.write(render_yaml(entries))
    else:
        print("flytebuild render: no task of these workflows has a pod template.", file=sys.stderr)
    return 0


def _admin(project, args: argparse.Namespace):
    """The configured admin settings with `--endpoint` / `--insecure` / `--no-ledger` applied (flags win)."""
    import dataclasses

    admin = project.settings.admin
    ledger = getattr(args, "ledger", None)  # `run --remote` has no such flag
    return dataclasses.replace(
        admin,
        endpoint=args.endpoint or admin.endpoint,
        insecure=args.insecure if args.insecure is not None else admin.insecure,
        ledger=admin.ledger if ledger is None else ledger,
    )


def _take_admin_flags(args: argparse.Namespace, forwarded: List[str]) -> List[str]:
    """`--endpoint X` / `--insecure` given after NAME (as `bazel run ... -- --endpoint X` passes them)
    are ours, not inputs of the entity."""
    rest: List[str] = []
    i = 0
    while i < len(forwarded):
        a = forwarded[i]
        if a == "--insecure":
            args.insecure = True
        elif a.startswith("--endpoint="):
            args.endpoint = a.split("=", 1)[1]
        elif a == "--endpoint" and i + 1 < len(forwarded):
            args.endpoint = forwarded[i + 1]
            i += 1
        else:
            rest.append(a)
        i += 1
    return rest


def _run(args: argparse.Namespace) -> int:
    import json
    import tempfile

    from flytebuild.cli import userenv
    from flytebuild.cli.planning import plan_project
    from flytebuild.cli.registration import deploy
    from flytebuild.core.deploy_report import render_deploy_table
    from flytebuild.core.run_request import reference_request_json, remote_request_json, run_request_json

    project = load_project(args.config or find_config("."))
    forwarded = _take_admin_flags(args, [a for a in args.args if a != "--"])
    remote = args.remote or "--remote" in forwarded
    admin = _admin(project, args)
    reference = project.reference(args.target)
    if reference is not None:
        # Registered on the cluster: launched as it is, nothing compiled or deployed here.
        command = "remote"
        request = reference_request_json(
            reference.name,
            reference.kind,
            reference.entity_name,
            reference.version,
            reference.project,
            reference.domain,
            reference.default_inputs,
            admin,
        )
    else:
        _workflows_only(project, [args.target], "run")
        result = plan_project(project, [args.target])
        (plan,) = result.workflows
        if not remote:
            command, request = "run", run_request_json(plan)
        else:
            command = "remote"
            request = remote_request_json(plan, admin)
            if plan.root_kind != "reference":  # a reference in code is registered already
                code, summary, warnings, _ = deploy(project, result, admin, dry_run=False)
                report = render_deploy_table(summary, warnings)
                if code != 0:
                    sys.stdout.write(report)
                    raise FlytebuildError(
                        f"{plan.address} could not be deployed (see MESSAGE above); nothing was launched",
                        fix="fix the cause and re-run: what was registered is kept",
                    )
                request["preamble"] = report
    python = userenv.check_python(project.python, project.config_file)
    with tempfile.TemporaryDirectory(prefix="flytebuild-run-") as tmp:
        request_file = f"{tmp}/request.json"
        with open(request_file, "w", encoding="utf-8") as f:
            f.write(json.dumps(request, indent=2, sort_keys=True) + "\n")
        # The user's program: our stdin/stdout/stderr and its exit code (forked from the warm worker if any).
        proc = userenv.popen_runtime(python, [command, request_file, *forwarded], project.root,
                                     project.source_roots)
        for _ in range(2):
            try:
                code = proc.wait()
            except KeyboardInterrupt:  # Ctrl-C: the program says so (one line) and exits, as it would alone
                userenv.interrupt(proc)
                raise
            except BaseException:  # the user's program must not run on without us
                proc.kill()
                raise
            if not userenv.lost(proc):
                return code
            proc = proc.fallback()
        return code


def _verify(args: argparse.Namespace) -> int:
    import os

    from flytebuild.cli import images as cli_images
    from flytebuild.cli import userenv
    from flytebuild.cli.graph import project_graph
    from flytebuild.cli.planning import plan_project
    from flytebuild.core.verify import baked_tasks, image_addresses
    from flytebuild.service import verify as verify_io

    project = load_project(args.config or find_config("."))
    _workflows_only(project, args.targets, "verify")
    result = plan_project(project, args.targets or [w.name for w in project.workflows])
    baked = baked_tasks(result.workflows)
    wanted = set(image_addresses(baked))
    refs = {}
    if wanted:
        graph = project_graph(project)
        for image in result.image_targets:
            if image.address in wanted:
                published = cli_images.publish_image(project, graph, image, "push", "", project.image_push_jobs)
                refs[image.address] = published.ref
    outcome = verify_io.verify(
        baked, refs, args.engine, dict(os.environ), cli_images.cache_dir(project), args.format,
        engine_fix="start Docker (DOCKER_HOST), or use --engine=static",
        progress=lambda line: userenv.progress(f"flytebuild: {line}"),
    )
    print(outcome.report)
    if outcome.failure:
        print(f"flytebuild verify: {outcome.failure}", file=sys.stderr)
    return 1 if outcome.failure else 0


def _init(args: argparse.Namespace) -> int:
    from flytebuild.cli.init import init

    written = init(args.directory, args.python, args.registry, args.base, args.project, args.domain, args.force)
    print(f"Wrote {os.path.relpath(written)}")
    return 0


def _lock(args: argparse.Namespace) -> int:
    from flytebuild.cli.lock import lock

    written = lock(load_project(args.config or find_config(".")))
    print(f"Wrote {os.path.relpath(written)}")
    return 0


def _base_image(args: argparse.Namespace) -> int:
    from flytebuild.cli.base_image import base_image
    from flytebuild.oci.debian_base import PACKAGES

    print(base_image(args.output, args.push, args.tag, args.packages or PACKAGES))
    return 0


def _imagespec(args: argparse.Namespace) -> int:
    from flytebuild.cli.graph import project_graph
    from flytebuild.cli.imagespec import publish_specs
    from flytebuild.cli.planning import plan_project
    from flytebuild.service.images import published_spec, render_specs

    project = load_project(args.config or find_config("."))
    _workflows_only(project, args.targets, "imagespec")
    result = plan_project(project, args.targets or [w.name for w in project.workflows])
    built = publish_specs(project, project_graph(project), result, args.image_output, _dist(project, args))
    _write(render_specs([published_spec(wf, spec, image) for wf, spec, image in built], args.format) + "\n",
           args.output)
    return 0


_COMMANDS = {
    "plan": _plan,
    "package": _package,
    "publish": _publish,
    "render": _render,
    "run": _run,
    "deploy": _deploy,
    "dev": _dev,
    "verify": _verify,
    "imagespec": _imagespec,
    "init": _init,
    "lock": _lock,
    "base-image": _base_image,
    "worker": _worker,
}


def main(argv: Optional[List[str]] = None) -> int:
    args = _parser().parse_args(argv)
    if os.environ.get("FLYTEBUILD_DEBUG"):
        from flytebuild.cli.userenv import debug_logging

        debug_logging()
    try:
        return _COMMANDS[args.command](args)
    except FlytebuildError as e:
        from flytebuild.core.wording import in_words

        print(
            in_words(f"flytebuild {args.command}: {e}", os.environ.get("FLYTEBUILD_FRONT_END", "cli")), file=sys.stderr
        )
        return 1
    except KeyboardInterrupt:
        print(f"flytebuild {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
