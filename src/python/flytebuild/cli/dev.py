"""`flytebuild dev`: deploy, then watch the project's sources and deploy again on every save that changes them.

Polling, not inotify: no new dependency, works on every filesystem (network mounts, containers' bind mounts), and
at a few hundred stats per check it costs nothing. A file whose (size, mtime, inode) moved is hashed (blake3, as
the plan's fingerprints are); only a different digest counts as a change, so `touch`, a checkout of the same
content or an editor saving an unmodified buffer deploys nothing. Each round is an ordinary incremental deploy:
the plan's content versions, the result cache and the deploy ledger decide what is registered, so the loop adds
no state of its own that could go stale.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Callable, Dict, Iterable, List, Optional, Set, Tuple

from flytebuild.cli.config import Project, find_config, load_project
from flytebuild.cli.graph import walked
from flytebuild.core.deploy_report import counts, render_deploy_table
from flytebuild.core.errors import FlytebuildError
from flytebuild.core.fingerprint import file_digest

# An editor's save is often several writes (temp file, rename, chmod): wait until the tree is quiet this long.
_SETTLE_S = 0.1

Snapshot = Dict[str, Tuple[Tuple[int, int, int], str]]  # abspath → ((size, mtime_ns, inode), blake3)
DeployOnce = Callable[[argparse.Namespace], Tuple[int, dict, list]]


def watched_files(project: Project) -> List[str]:
    """Absolute paths of what a plan of `project` reads: Python files under the source roots, and the files the
    configuration names (itself, requirements, lockfile, pod templates and their overlays)."""
    found: Set[str] = {project.config_file}
    for rel in (project.requirements_file, project.lockfile):
        if rel:
            found.add(os.path.join(project.root, rel))
    for template in project.pod_templates:
        for rel in (template.source, *(path for _, path in template.overlays)):
            found.add(os.path.join(project.root, rel))
    for source_root in project.source_roots or ("",):
        top = os.path.join(project.root, source_root)
        for directory, dirs, files in os.walk(top):
            dirs[:] = [d for d in dirs if walked(d)]  # the plan's rule: a `build/` package's edit is seen
            found.update(os.path.join(directory, f) for f in files if f.endswith((".py", ".pyi")))
    return sorted(found)


def snapshot(paths: Iterable[str], previous: Optional[Snapshot] = None) -> Snapshot:
    """Stat every path; hash only those whose stat moved since `previous` (missing files are left out)."""
    previous = previous or {}
    out: Snapshot = {}
    for path in paths:
        try:
            st = os.stat(path)
            key = (st.st_size, st.st_mtime_ns, st.st_ino)
            old = previous.get(path)
            if old is not None and old[0] == key:
                out[path] = old
                continue
            with open(path, "rb") as f:
                out[path] = (key, file_digest(f.read()))
        except OSError:  # deleted (or unreadable) between the listing and now: absent
            continue
    return out


def changed(before: Snapshot, after: Snapshot) -> List[str]:
    """Paths added, removed, or whose content digest differs."""
    return sorted(p for p in set(before) | set(after) if (before.get(p) or (0, ""))[1] != (after.get(p) or (0, ""))[1])


def _project(args: argparse.Namespace) -> Project:
    return load_project(args.config or find_config("."))


def _say(message: str) -> None:
    print(f"flytebuild dev: {message}", flush=True)


def _round(args: argparse.Namespace, deploy_once: DeployOnce) -> None:
    """One deploy, reported as the rows it registered; a bad edit is reported and the loop goes on."""
    started = time.perf_counter()
    try:
        code, summary, warnings = deploy_once(args)
    except FlytebuildError as e:
        print(f"flytebuild dev: {e} Watching: save a fix to deploy again.", file=sys.stderr, flush=True)
        return
    sys.stdout.write(render_deploy_table(summary, warnings, hide_unchanged=True) + "\n")
    c = counts(summary)
    _say(f"deployed in {time.perf_counter() - started:.1f} s: {c['registered']} registered, "
         f"{c['unchanged']} unchanged, {c['failed']} failed")
    if code != 0:
        print("flytebuild dev: some entities were not registered (see MESSAGE); save a fix to deploy again.",
              file=sys.stderr, flush=True)


def _relative(paths: List[str], root: str) -> str:
    shown = [os.path.relpath(p, root) for p in paths]
    return ", ".join(shown[:5]) + (f" and {len(shown) - 5} more" if len(shown) > 5 else "")


def watch(args: argparse.Namespace, deploy_once: DeployOnce) -> int:
    """Deploy, then loop: wait for a content change, let the tree settle, deploy. Ctrl-C ends it: exit 0 while
    waiting, 130 when it interrupts a deploy (what was registered is kept; the next deploy does the rest)."""
    project = _project(args)  # a missing or broken configuration stops here, before any watching
    deploying = False
    try:
        deploying = True
        _round(args, deploy_once)
        deploying = False
        files = watched_files(project)
        state = snapshot(files)
        while True:
            _say(f"watching {len(state)} files under {project.root} (Ctrl-C to stop)")
            edited: List[str] = []
            while not edited:
                time.sleep(args.interval)
                files = watched_files(project)
                now = snapshot(files, state)
                edited = changed(state, now)
            while True:  # settle: the save may still be in progress
                time.sleep(_SETTLE_S)
                later = snapshot(watched_files(project), now)
                if not changed(now, later):
                    break
                now = later
            _say(f"changed: {_relative(changed(state, now), project.root)}")
            state = now
            deploying = True
            _round(args, deploy_once)
            deploying = False
            try:  # the configuration may have been the edit: new source roots, new files to watch
                project = _project(args)
            except FlytebuildError:
                pass  # the round above reported it; keep watching what was watched until a fix is saved
    except KeyboardInterrupt:
        if deploying:
            print("flytebuild dev: stopped during a deploy; what was registered is kept, the next deploy "
                  "registers the rest.", file=sys.stderr, flush=True)
            return 130
        _say("stopped")
        return 0
