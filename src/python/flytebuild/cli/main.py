"""`flytebuild <command>`: argument parsing and the one place errors become exit codes."""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from flytebuild.cli.config import find_config, load_project
from flytebuild.core.errors import FlytebuildError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flytebuild",
        description="Flyte images, workflows and versions from flytebuild.toml (the Pants goals without Pants).",
    )
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
    plan.add_argument("--format", choices=("table", "json"), default="table", help="`table` for people, `json` for machines")
    plan.add_argument("--output", "-o", help="write the plan to this file instead of stdout")
    return parser


def _write(text: str, output: Optional[str]) -> None:
    if output:
        with open(output, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)


def _plan(args: argparse.Namespace) -> int:
    from flytebuild.cli.planning import plan_project
    from flytebuild.core.report import render_json, render_table

    project = load_project(args.config or find_config("."))
    result = plan_project(project, args.targets)
    render = render_json if args.format == "json" else render_table
    _write(render(result.images, result.workflows), args.output)
    return 0


_COMMANDS = {"plan": _plan}


def main(argv: Optional[List[str]] = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except FlytebuildError as e:
        print(f"flytebuild {args.command}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"flytebuild {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
