"""Plan configured workflows and images: the CLI twin of pants_backend/util_rules/planning.py.

Per workflow, the finished plan is kept in the cache dir under a key of what it was made from (see "per-workflow
plans" below): after an edit only the workflows whose inputs changed are introspected and planned, so the cost
follows the change, not the number of workflows."""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple, TypeVar

from blake3 import blake3

from flytebuild.cli import userenv
from flytebuild.cli.cache import JsonCache, cache_path, from_json, source_fingerprint, to_json
from flytebuild.cli.config import ImageConfig, Project, WorkflowConfig
from flytebuild.cli.graph import check_image_config, dist_name_problem, image_config_problems, project_graph
from flytebuild.core import validate
from flytebuild.core.errors import FlytebuildError
from flytebuild.core.imagespec import requirement_lines, spec_lookups
from flytebuild.core.introspection import parse_introspection
from flytebuild.core.model import Closure, FileDigest, ImagePlan, ImageTarget, WorkflowPlan
from flytebuild.core.plan import plan_image, plan_workflow, with_cross_workflow_warnings
from flytebuild.core.result_cache import result_key


def check_workflow_config(project: Project, workflow: WorkflowConfig) -> None:
    describe = lambda f: f"`{f}` in [workflows.{workflow.name}]"  # noqa: E731
    reason = dist_name_problem(workflow.name)
    if reason:
        validate.raise_problems([validate.Problem("name", workflow.name, reason,
                                                  "use a plain table name such as [workflows.my-wf]")],
                                workflow.name, lambda f: f'the table name [workflows."{workflow.name}"]',
                                project.config_file, "workflow")
    validate.check_workflow(workflow.name, project=workflow.project or project.settings.project,
                            domain=workflow.domain or project.settings.domain, describe=describe,
                            file=project.config_file,
                            project_from="" if workflow.project else "the top-level `project`",
                            domain_from="" if workflow.domain else "the top-level `domain`")


@dataclass(frozen=True)
class ProjectPlan:
    images: Tuple[ImagePlan, ...]
    workflows: Tuple[WorkflowPlan, ...]
    image_targets: Tuple[ImageTarget, ...]
    # per workflow: a key over everything importing its entrypoint can see (environment, import closure), for
    # core/result_cache.py; absent when the environment cannot be identified without starting it
    input_keys: Tuple[Tuple[str, str], ...] = ()
    # (workflow, error paragraph) of the workflows that could not be planned (plan_project(isolate=True))
    errors: Tuple[Tuple[str, str], ...] = ()
    # the user-env process that introspected, waiting to serialize (plan_project(serialize_next=True)); not data
    session: Optional[userenv.Session] = field(default=None, compare=False, repr=False)


def select(project: Project, names: Sequence[str]) -> Tuple[List[WorkflowConfig], List[ImageConfig]]:
    """Targets named on the command line (all of them when none are)."""
    if not names:
        return list(project.workflows), list(project.images)
    workflows, images, unknown = [], [], []
    for name in names:
        wf = next((w for w in project.workflows if w.name == name), None)
        img = project.image(name)
        if wf:
            workflows.append(wf)
        elif img:
            images.append(img)
        else:
            unknown.append(name)
    if unknown:
        known = ", ".join(sorted([w.name for w in project.workflows] + [i.name for i in project.images]))
        raise FlytebuildError(
            f"No workflow or image named {', '.join(unknown)} in {project.config_file}",
            file=project.config_file,
            fix=f"use one of: {known}",
        )
    return workflows, images


def plan_project(
    project: Project,
    names: Sequence[str] = (),
    environment: Optional[str] = None,
    isolate: bool = False,
    serialize_next: bool = False,
) -> ProjectPlan:
    """`isolate`: a workflow that cannot be planned is reported in `errors` and the others are planned (plan and
    package); otherwise its error is raised. `serialize_next`: the command serializes the plan next (deploy,
    package): introspect in a runtime `session` process that stays, so serialization runs in the same interpreter
    (one flytekit import per command)."""
    workflows, listed = select(project, names)
    if not workflows and not listed:
        raise FlytebuildError(
            "No [workflows.*] or [images.*] are configured",
            file=project.config_file,
            fix='declare [workflows.NAME] (entrypoint = "path/to/file.py:wf") and [images.NAME], '
            "or run `flytebuild init --force`",
        )
    validate.check_options(
        project.settings.default_base,
        project.settings.registry,
        "`default_base`",
        "`registry`",
        file=project.config_file,
    )
    workflows, early_errors = _checked_workflows(project, workflows, isolate)
    default = project.image(project.settings.default_image) if project.settings.default_image else None
    for image in [*listed, *([default] if default is not None else [])]:
        check_image_config(project, image)
    graph = project_graph(project)
    entrypoints = [graph.module_entrypoint(w) for w in workflows]
    cache = JsonCache(cache_path("results"))
    env = userenv.env_identity(project.python) if workflows else None
    installed_key = result_key("installed", env) if env else None
    installed = _cached_installed(cache, installed_key)
    if installed is not None:
        graph.use_installed(installed)  # before any closure: one import graph (and its parsed edges) for the run
    keys = _introspection_keys(project, graph, env, entrypoints)
    run = None
    replayed: Dict[str, Tuple[WorkflowPlan, _Needs]] = {}
    if installed is not None:
        # The image targets and closures a replay compares need the environment's module map: with none cached
        # yet (a new environment) every workflow is planned afresh.
        run = _Run(project, graph, environment, _image_targets(project, graph), cache, {})
        replayed = _replay_all(run, workflows, entrypoints, keys)
    todo = [(w.name, ep) for w, ep in zip(workflows, entrypoints) if w.name not in replayed]
    results: Dict[str, dict] = {}
    session: Optional[userenv.Session] = None
    if workflows:
        results, session, fresh_installed = _introspect(
            project, cache, keys, todo, installed_key, installed is None, serialize_next
        )
        if installed is None:
            graph.use_installed(fresh_installed)
    if run is None:
        run = _Run(project, graph, environment, _image_targets(project, graph), cache, {})
    plans: List[WorkflowPlan] = []
    errors: List[Tuple[str, str]] = list(early_errors)
    for workflow, entrypoint in zip(workflows, entrypoints):
        try:
            if workflow.name in replayed:
                plan, needs = replayed[workflow.name]
                _check_named_images(project, needs.image_names)
            else:
                plan = _plan_fresh(run, workflow, entrypoint, results[entrypoint], keys.introspect.get(entrypoint))
        except FlytebuildError as e:
            if not isolate:
                raise
            errors.append((workflow.name, str(e)))  # one bad workflow does not hide the others
            continue
        plans.append(plan)
    plans = with_cross_workflow_warnings(plans)
    graph.save_caches()
    # Every rendered pod template is checked as a Kubernetes V1PodSpec in the user's environment
    # before anything uses the plan (one process for all workflows).
    userenv.validate_pod_templates(project, plans)
    image_targets = run.image_targets
    used = {t.image_address for p in plans for t in p.tasks if t.image_address}
    chosen = sorted(used | {i.name for i in listed} | ({i.name for i in project.images} if not names else set()))
    return ProjectPlan(
        images=tuple(plan_image(image_targets[n]) for n in chosen),
        workflows=tuple(sorted(plans, key=lambda p: p.address)),
        image_targets=tuple(image_targets[n] for n in chosen),
        input_keys=tuple(sorted((w.name, keys.inputs[e]) for w, e in zip(workflows, entrypoints) if e in keys.inputs)),
        errors=tuple(errors),
        session=session,
    )


def _checked_workflows(
    project: Project, workflows: Sequence[WorkflowConfig], isolate: bool
) -> Tuple[List[WorkflowConfig], List[Tuple[str, str]]]:
    """Field values (the workflow's, and those of the images it names) are checked before any user code runs; a
    workflow with a bad one fails alone when isolating, as any other planning error does."""
    checked, errors = [], []
    images = {i.name: i for i in project.images}  # `project.image` scans: workflows x images
    for workflow in workflows:
        try:
            check_workflow_config(project, workflow)
            for name in sorted({v for _, v in workflow.images + workflow.task_images} | {workflow.image} - {None}):
                if name in images:
                    check_image_config(project, images[name])
        except FlytebuildError as e:
            if not isolate:
                raise
            errors.append((workflow.name, str(e)))
            continue
        checked.append(workflow)
    return checked, errors


def _image_targets(project: Project, graph) -> Dict[str, ImageTarget]:
    return {img.name: graph.image_target(img) for img in project.images if not image_config_problems(img)}


def _check_named_images(project: Project, names: Sequence[str]) -> None:
    """An image with a bad field fails only the workflows whose code names it."""
    named = set(names)
    for image in project.images if named else ():
        if image.image_name in named:
            check_image_config(project, image)


# --- introspection: answers by key, the missing ones in one user-env process ----------------------------------


@dataclass(frozen=True)
class _Keys:
    # per entrypoint: a key over everything importing it can see (environment, import closure), and the key of
    # its introspection answer (that plus the runtime); empty when the environment cannot be identified
    inputs: Dict[str, str]
    introspect: Dict[str, str]


def _introspection_keys(project: Project, graph, env: Optional[str], entrypoints: Sequence[str]) -> _Keys:
    if not env:
        return _Keys({}, {})
    runtime = userenv.runtime_fingerprint()
    # per module (a workflow and its launch plan share one), all digested in one stat-cache pass
    files = {m: _import_files(graph, m) for m in sorted({ep.split(":", 1)[0] for ep in entrypoints})}
    graph.digests(set().union(*files.values()))
    closures = {m: [[d.path, d.digest] for d in graph.digests(paths)] for m, paths in files.items()}
    environ = userenv.user_env_inputs()
    inputs = {
        ep: result_key("inputs", env, list(project.source_roots), closures[ep.split(":", 1)[0]], environ)
        for ep in entrypoints
    }
    return _Keys(inputs, {ep: result_key("introspect", ep, key, runtime) for ep, key in inputs.items()})


def _cached_installed(cache: JsonCache, key: Optional[str]) -> Optional[Dict[str, Tuple[str, ...]]]:
    found = cache.load(key) if key else None
    return {k: tuple(v) for k, v in found.items()} if isinstance(found, dict) else None


def _introspect(project, cache, keys: _Keys, todo, installed_key, query_installed: bool, serialize_next: bool):
    """(answers by entrypoint, the session process or None, the environment's module map when `query_installed`).

    Per workflow, the answer is kept under a key of everything its import can see (core/result_cache.py): only
    the workflows whose import closure changed are introspected, together, in one process."""
    results: Dict[str, dict] = {}
    for _, ep in todo:
        cached = cache.load(keys.introspect[ep]) if ep in keys.introspect else None
        if cached is not None:
            results[ep] = cached
    missing = [(name, ep) for name, ep in todo if ep not in results]
    # Both queries run in the user's interpreter at once (the flytekit import dominates).
    installed_proc = userenv.start_installed_query(project.python, project.config_file) if query_installed else None
    session: Optional[userenv.Session] = None
    if missing:
        userenv.progress(f"flytebuild: introspecting {len(missing)} workflow(s) with {project.python}")
        start = userenv.start_session if serialize_next else userenv.start_introspection
        proc = start(project.python, project.config_file, project.root, project.source_roots,
                     sorted({ep for _, ep in missing}))
        try:
            if serialize_next:
                session = proc
                fresh = userenv.finish_session_introspection(session, missing, project.user_code_timeout)
            else:
                fresh = userenv.finish_introspection(proc, missing, project.user_code_timeout)
        except BaseException:
            if session is not None:
                session.close()
            if installed_proc is not None:
                installed_proc.kill()
                installed_proc.wait()
            raise
        for ep, data in fresh.items():
            results[ep] = data
            if ep in keys.introspect and "error" not in data:
                cache.store(keys.introspect[ep], data)
    installed = None
    if installed_proc is not None:
        installed = userenv.finish_installed_query(installed_proc, project.python)
        if installed_key:
            cache.store(installed_key, {k: list(v) for k, v in installed.items()})
    return results, session, installed


def _import_files(graph, module: str) -> Sequence[str]:
    """Every first-party file importing `module` runs: its import closure and the packages' `__init__.py` on the
    way."""
    if graph.project.targets is not None:
        # A build system's graph (the Bazel rules): no import analysis here; every file it declared is what the
        # import can see (a conservative key: any edit re-introspects).
        return sorted({s for t in graph.project.targets for s in t.srcs})
    found = graph.imports.closure(graph.index.provider(module)).files
    files = set(found)
    for path in found:
        parent = os.path.dirname(path)
        while parent:
            init = f"{parent}/__init__.py"
            if init in graph.index.module_of:
                files.add(init)
            parent = os.path.dirname(parent)
    return sorted(files)


# --- per-workflow plans: planned afresh, or replayed from the cache dir ------------------------------------------
#
# A plan is a function of the workflow's introspection answer (named by its key, so a replay never reads it),
# its target (config, pod template texts, environment), the settings, the planner's own code, and what the
# planner reads while planning: the closures of the tasks' files, the ImageSpecs' files, and the image targets
# it looks up. The first four make the entry's key; the rest is recorded in the entry (`_Needs`, the image
# addresses) and compared on replay, because which files and images a plan reads is only known once planned.


@dataclass(frozen=True)
class _Needs:
    """The files a plan reads, as its introspection names them."""

    source_files: Tuple[str, ...]  # the tasks' modules: their closures
    spec_candidates: Tuple[str, ...]  # what ImageSpecs' `copy` may name: digests of those that exist
    requirement_paths: Tuple[str, ...]  # ImageSpecs' requirements files: their lines
    image_names: Tuple[str, ...]  # image names used in code: their [images.*] tables are checked first


@dataclass(frozen=True)
class _Inputs:
    closures: Mapping[str, Closure]
    spec_files: Mapping[str, FileDigest]
    requirement_files: Mapping[str, Tuple[str, ...]]


@dataclass(frozen=True)
class _Run:
    project: Project
    graph: object
    environment: Optional[str]
    image_targets: Dict[str, ImageTarget]
    cache: JsonCache
    memo: Dict[str, object]  # per run: closures by file, image digests by address


class _ReadImages(Mapping):
    """The image targets as the planner sees them, noting which it looked at: a plan depends on those only (an
    edit baked into another project's image must not re-plan this workflow). Iterating means it read them all."""

    def __init__(self, images: Mapping[str, ImageTarget]) -> None:
        self._images = images
        self.read: set = set()
        self.scanned = False

    def __getitem__(self, key: str) -> ImageTarget:
        self.read.add(key)  # absent keys too (`in` asks here): an image added under that name changes the plan
        return self._images[key]

    def __iter__(self):
        self.scanned = True
        return iter(self._images)

    def __len__(self) -> int:
        self.scanned = True
        return len(self._images)

    def addresses(self) -> Optional[List[str]]:
        return None if self.scanned else sorted(self.read)


_PLAN_FORMAT = 1
T = TypeVar("T")


def _needs_of(intro) -> _Needs:
    candidates, requirement_paths = spec_lookups(intro.tasks)
    return _Needs(
        source_files=tuple(sorted({t.source_file for t in intro.tasks if t.source_file})),
        spec_candidates=tuple(candidates),
        requirement_paths=tuple(requirement_paths),
        image_names=tuple(sorted({t.image.name for t in intro.tasks if t.image.name})),
    )


def _memo(run: _Run, key: str, compute: Callable[[], T]) -> T:
    """Per run: what many workflows share (a project's workflow and launch plan share closures and an image)."""
    if key not in run.memo:
        run.memo[key] = compute()
    return run.memo[key]


def _gather(run: _Run, needs: _Needs) -> _Inputs:
    """What the ImageSpecs in code name (as the Pants adapter reads them): copy candidates that exist, with
    their digests and (for modules) closures, and the lines of their requirements files; the tasks' closures."""
    root = Path(run.project.root)
    spec_files = {f.path: f for f in run.graph.digests(p for p in needs.spec_candidates if (root / p).is_file())}
    requirement_files = {
        p: requirement_lines((root / p).read_text()) for p in needs.requirement_paths if (root / p).is_file()
    }
    paths = sorted(set(needs.source_files) | {p for p in spec_files if p.endswith(".py")})
    closures = {p: _memo(run, f"closure:{p}", functools.partial(run.graph.closure_of_source_file, p)) for p in paths}
    return _Inputs(closures, spec_files, requirement_files)


def _digest(value: object) -> str:
    # repr of a frozen dataclass of strings and tuples spells its whole value, deterministically
    return blake3(repr(value).encode("utf-8")).hexdigest()


def _plan_key(run: _Run, workflow: WorkflowConfig, entrypoint: str, introspect_key: str) -> str:
    target = run.graph.workflow_target(workflow, entrypoint, run.environment)
    settings = _memo(run, "settings", lambda: _digest(run.project.settings.planning(run.environment)))
    planner = source_fingerprint("flytebuild.core", "flytebuild.cli")
    return result_key("plan", _PLAN_FORMAT, introspect_key, _digest(target), settings, planner)


def _inputs_digest(run: _Run, key: str, inputs: _Inputs, addresses: Optional[Sequence[str]]) -> str:
    image = lambda a: _digest(run.image_targets[a]) if a in run.image_targets else None  # noqa: E731
    images = {a: _memo(run, f"image:{a}", functools.partial(image, a))
              for a in (sorted(run.image_targets) if addresses is None else addresses)}
    closures = {p: _memo(run, f"closure-digest:{p}", functools.partial(_digest, c)) for p, c in inputs.closures.items()}
    return result_key(
        "plan-inputs", key, closures, images,
        _digest(sorted(inputs.spec_files.items())), _digest(sorted(inputs.requirement_files.items())),
    )


def _plan_fresh(run: _Run, workflow: WorkflowConfig, entrypoint: str, answer: dict,
                introspect_key: Optional[str]) -> WorkflowPlan:
    intro = parse_introspection(answer, target=workflow.name)
    needs = _needs_of(intro)
    _check_named_images(run.project, needs.image_names)
    inputs = _gather(run, needs)
    images = _ReadImages(run.image_targets)
    plan = plan_workflow(
        run.graph.workflow_target(workflow, entrypoint, run.environment),
        intro,
        inputs.closures,
        images,
        run.project.settings.planning(run.environment),
        spec_files=inputs.spec_files,
        requirement_files=inputs.requirement_files,
    )
    if introspect_key is not None:
        key = _plan_key(run, workflow, entrypoint, introspect_key)
        addresses = images.addresses()
        run.cache.store(key, {
            "format": _PLAN_FORMAT,
            "needs": to_json(needs),
            "images": addresses,
            "inputs": _inputs_digest(run, key, inputs, addresses),
            "plan": to_json(plan),
        })
    return plan


def _replay(run: _Run, workflow: WorkflowConfig, entrypoint: str,
            introspect_key: str) -> Optional[Tuple[WorkflowPlan, _Needs]]:
    """The plan kept for these inputs, or None (nothing kept, something it read changed, an entry this code
    cannot read, or an error the fresh plan will report)."""
    try:
        key = _plan_key(run, workflow, entrypoint, introspect_key)
        entry = run.cache.load(key)
        if not isinstance(entry, dict) or entry.get("format") != _PLAN_FORMAT:
            return None
        needs = from_json(_Needs, entry["needs"])
        if _inputs_digest(run, key, _gather(run, needs), entry["images"]) != entry["inputs"]:
            return None
        return from_json(WorkflowPlan, entry["plan"]), needs
    except FlytebuildError:
        return None
    except (KeyError, TypeError, ValueError, AttributeError):
        return None  # a damaged entry is a miss


def _replay_all(run: _Run, workflows, entrypoints, keys: _Keys) -> Dict[str, Tuple[WorkflowPlan, _Needs]]:
    out = {}
    for workflow, ep in zip(workflows, entrypoints):
        found = _replay(run, workflow, ep, keys.introspect[ep]) if ep in keys.introspect else None
        if found is not None:
            out[workflow.name] = found
    return out
