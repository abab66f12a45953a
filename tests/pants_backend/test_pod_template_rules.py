"""RuleRunner tests of flyte_pod_template: reading the target's files, its errors, and the flyte_workflow
fields it adds (pod_template, task_pod_templates, cache_key). Rendering is core's (tests/core); the
V1PodSpec validation process and the goals run end to end (tests/e2e/test_pod_templates.py)."""
from __future__ import annotations

import textwrap

import pytest
from pants.backend.python import register as python_backend
from pants.core import register as core_backend
from pants.core.target_types import rules as core_target_types_rules
from pants.engine.addresses import Address
from pants.engine.internals.scheduler import ExecutionError
from pants.engine.rules import QueryRule
from pants.engine.target import InvalidFieldException
from pants.testutil.rule_runner import RuleRunner

from flytebuild.core.model import PodTemplateTarget
from flytebuild.core.pod_templates import PodTemplateError, PodTemplateSource
from flytebuild.pants_backend import register as flyte_backend
from flytebuild.pants_backend.target_types import (
    FlyteWorkflowCacheKeyField,
    FlyteWorkflowPodTemplateField,
    FlyteWorkflowTaskPodTemplatesField,
)
from flytebuild.pants_backend.util_rules import pod_templates
from flytebuild.pants_backend.util_rules.pod_templates import PodTemplateTargetRequest

POD = "containers:\n  - name: primary\n    image: ${image}\n"
DEV = "pod_spec:\n  nodeSelector: {pool: dev}\n"


@pytest.fixture
def rule_runner() -> RuleRunner:
    gather = [r for r in pod_templates.rules() if getattr(r, "canonical_name", "").endswith(".gather_pod_template")]
    assert len(gather) == 1
    runner = RuleRunner(
        rules=[
            *core_target_types_rules(),
            *gather,
            QueryRule(PodTemplateTarget, [PodTemplateTargetRequest]),
        ],
        target_types=[*core_backend.target_types(), *python_backend.target_types(), *flyte_backend.target_types()],
    )
    runner.write_files(
        {
            "proj/BUILD": textwrap.dedent(
                """\
                flyte_pod_template(
                    name="pod",
                    source="pods/pod.yaml",
                    overlays={"dev": "pods/dev.yaml", "prod": "../shared/prod.json"},
                    values={"team": "ml", "cpus": "2"},
                    primary_container_name="main",
                )
                flyte_pod_template(name="bare", source="pods/pod.yaml")
                flyte_pod_template(name="lost", source="pods/pod.yaml", overlays={"dev": "pods/nope.yaml"})
                flyte_pod_template(name="nosource", source="pods/missing.yaml")
                flyte_workflow(
                    name="wf",
                    entrypoint="proj.workflows:wf",
                    pod_template=":pod",
                    task_pod_templates={"train": ":bare"},
                    cache_key={"train": "code"},
                )
                flyte_workflow(name="wf_default", entrypoint="proj.workflows:wf")
                flyte_workflow(name="wf_bad", entrypoint="proj.workflows:wf", cache_key="always")
                flyte_workflow(name="wf_bad_map", entrypoint="proj.workflows:wf", cache_key={"t": "sometimes"})
                flyte_workflow(name="wf_bad_type", entrypoint="proj.workflows:wf", cache_key=3)
                """
            ),
            "proj/pods/pod.yaml": POD,
            "proj/pods/dev.yaml": DEV,
            "shared/prod.json": '{"pod_spec": {"nodeSelector": {"pool": "prod"}}}',
        }
    )
    return runner


def gather(rule_runner: RuleRunner, name: str) -> PodTemplateTarget:
    return rule_runner.request(
        PodTemplateTarget, [PodTemplateTargetRequest(Address("proj", target_name=name), "a test")]
    )


def test_target_files_values_and_overlays_are_read(rule_runner):
    t = gather(rule_runner, "pod")
    assert t == PodTemplateTarget(
        address="proj:pod",
        source=PodTemplateSource("proj/pods/pod.yaml", POD),
        overlays=(
            ("dev", PodTemplateSource("proj/pods/dev.yaml", DEV)),
            ("prod", PodTemplateSource("shared/prod.json", '{"pod_spec": {"nodeSelector": {"pool": "prod"}}}')),
        ),
        values=(("cpus", "2"), ("team", "ml")),
        primary_container_name="main",
    )
    assert gather(rule_runner, "bare").overlays == () and gather(rule_runner, "bare").primary_container_name is None


def _error(rule_runner, name) -> str:
    with pytest.raises(ExecutionError) as e:
        gather(rule_runner, name)
    (wrapped,) = e.value.wrapped_exceptions
    assert isinstance(wrapped, PodTemplateError)
    return str(wrapped)


def test_missing_overlay_names_environment_path_and_fix(rule_runner):
    msg = _error(rule_runner, "lost")
    assert "overlay file(s) not found: dev: proj/pods/nope.yaml" in msg
    assert "target proj:lost" in msg and "relative to the BUILD file" in msg


def test_missing_source_is_a_field_error(rule_runner):
    # Pants checks the `source` field itself; the goals print this message with exit 1
    with pytest.raises(ExecutionError) as e:
        gather(rule_runner, "nosource")
    (wrapped,) = e.value.wrapped_exceptions
    assert isinstance(wrapped, InvalidFieldException)
    assert "'source' field in target proj:nosource must have 1 file, but it had 0 files" in str(wrapped)


def test_pointing_at_another_target_kind_is_an_error(rule_runner):
    with pytest.raises(ExecutionError) as e:
        rule_runner.request(
            PodTemplateTarget,
            [PodTemplateTargetRequest(Address("proj", target_name="wf_default"), "the `pod_template` field of proj:x")],
        )
    assert "proj:wf_default is a `flyte_workflow` target, not a `flyte_pod_template`" in str(e.value)


def test_workflow_fields(rule_runner):
    wf = rule_runner.get_target(Address("proj", target_name="wf"))
    assert wf[FlyteWorkflowPodTemplateField].value == ":pod"
    assert dict(wf[FlyteWorkflowTaskPodTemplatesField].value) == {"train": ":bare"}
    assert dict(wf[FlyteWorkflowCacheKeyField].value) == {"train": "code"}
    assert (
        rule_runner.get_target(Address("proj", target_name="wf_default"))[FlyteWorkflowCacheKeyField].value
        == "interface"
    )


@pytest.mark.parametrize(
    "name, message",
    [
        ("wf_bad", "The `cache_key` field of proj:wf_bad is `always`; use one of interface, code"),
        ("wf_bad_map", "maps t to an unknown policy; use one of interface, code"),
        (
            "wf_bad_type",
            'field in target proj:wf_bad_type must be "interface", "code" or a dict of task name to one of them',
        ),
    ],
)
def test_bad_cache_key_values(rule_runner, name, message):
    with pytest.raises(ExecutionError) as e:
        rule_runner.get_target(Address("proj", target_name=name))
    assert message in str(e.value)
