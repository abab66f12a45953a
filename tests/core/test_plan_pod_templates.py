"""Pod templates and cache-key policies in the plan: per-task rendering (values, built-ins,
overlays), task mapping, code-level templates merged on top, node overrides, fingerprints."""
import json

import pytest

from flytebuild.core.errors import PlanError
from flytebuild.core.introspection import parse_introspection
from flytebuild.core.model import PodTemplateTarget
from flytebuild.core.plan import plan_image, plan_workflow
from flytebuild.core.pod_templates import PodTemplateError, PodTemplateSource
from flytebuild.core.settings import Settings

REPORT = "baked.workflows.make_report"
CLEAN = "baked.workflows.clean"
SHELL = "baked.workflows.shell"
CRUNCH = "fast.tasks.crunch"
WF = "baked.workflows.wf"

BASE = """\
labels: {team: "${team}", env: "${env}"}
pod_spec:
  containers:
    - name: primary
      env:
        - {name: LOG_LEVEL, value: info}
        - {name: TASK, value: "${task.short}"}
      resources: {limits: {memory: "${memory}"}}
  nodeSelector: {pool: cpu}
  tolerations:
    - {key: dedicated, operator: Equal, value: flyte, effect: NoSchedule}
  initContainers:
    - name: warm
      image: "${images.baked}"
"""
PROD = """\
pod_spec:
  containers:
    - name: primary
      env:
        - {name: LOG_LEVEL, value: warning}
      resources: {limits: {memory: 4Gi}, requests: {cpu: "2"}}
  nodeSelector: {pool: highmem}
  tolerations:
    - {key: dedicated, effect: NoSchedule, value: flyte-prod}
    - {key: spot, operator: Exists, effect: NoExecute}
"""


def template(base=BASE, prod=PROD, values=(("memory", "1Gi"), ("team", "ml")), **kw):
    return PodTemplateTarget(
        address="examples/baked:pod",
        source=PodTemplateSource("examples/baked/pod.yaml", base),
        overlays=(("prod", PodTemplateSource("examples/baked/pod-prod.yaml", prod)),),
        values=tuple(values),
        **kw,
    )


def plan(mk, target, edit=None, files=None):
    closures, images = mk.scenario_facts(files)
    data = {**mk.scenario_intro(), "environment": {"python": "3.11", "flytekit": "1.16.31"}}
    if edit:
        edit(data)
    return plan_workflow(target, parse_introspection(data), closures, images, Settings())


def pod(p, task):
    return p.task(task).pod_template_data


def containers(doc):
    return {c["name"]: c for c in doc["pod_spec"]["containers"]}


def env(container):
    return {e["name"]: e["value"] for e in container.get("env", [])}


def set_task(data, name, **fields):
    t = next(t for t in data["tasks"] if t["name"] == name)
    for k, v in fields.items():
        if k == "pod_template":
            t["config"]["pod_template"] = v
        else:
            t[k] = v


def test_workflow_template_rendered_per_task_with_builtins(mk):
    p = plan(mk, mk.workflow_target(pod_template=template()))
    doc = pod(p, REPORT)
    assert doc["labels"] == {"team": "ml", "env": ""}
    assert doc["primary_container_name"] == "primary"
    primary = containers(doc)["primary"]
    assert env(primary) == {"LOG_LEVEL": "info", "TASK": "make_report"}
    assert primary["resources"] == {"limits": {"memory": "1Gi"}}
    # ${images.baked} is the content-addressed tag of the flyte_image named "baked"
    _, images = mk.scenario_facts()
    assert doc["pod_spec"]["initContainers"][0]["image"] == plan_image(images[mk.BAKED_IMAGE]).ref
    assert env(containers(pod(p, CRUNCH))["primary"])["TASK"] == "crunch"
    assert p.task(REPORT).pod_template_source == "examples/baked:pod (workflow)"
    assert p.task(REPORT).pod_template_files == ("examples/baked/pod.yaml",)


def test_overlay_merges_env_by_name_tolerations_by_key_effect_resources_and_node_selector(mk):
    p = plan(mk, mk.workflow_target(pod_template=template(), environment="prod"))
    doc = pod(p, REPORT)
    assert doc["labels"]["env"] == "prod"
    primary = containers(doc)["primary"]
    assert env(primary) == {"LOG_LEVEL": "warning", "TASK": "make_report"}  # merged by name, order kept
    assert primary["resources"] == {"limits": {"memory": "4Gi"}, "requests": {"cpu": "2"}}
    assert doc["pod_spec"]["nodeSelector"] == {"pool": "highmem"}
    assert doc["pod_spec"]["tolerations"] == [
        {"key": "dedicated", "operator": "Equal", "value": "flyte-prod", "effect": "NoSchedule"},
        {"key": "spot", "operator": "Exists", "effect": "NoExecute"},
    ]
    assert p.task(REPORT).pod_template_files == ("examples/baked/pod.yaml", "examples/baked/pod-prod.yaml")
    assert p.environment == "prod"


def test_task_mapping_wins_over_the_workflow_template(mk):
    other = PodTemplateTarget(
        address="examples/fast:gpu",
        source=PodTemplateSource("examples/fast/gpu.json", json.dumps({"containers": [{"name": "main"}]})),
        primary_container_name="main",
    )
    p = plan(mk, mk.workflow_target(pod_template=template(), task_pod_templates=(("crunch", other),)))
    assert pod(p, CRUNCH) == {
        "labels": {},
        "annotations": {},
        "primary_container_name": "main",
        "pod_spec": {"containers": [{"name": "main"}]},
    }
    assert p.task(CRUNCH).pod_template_source == "examples/fast:gpu (task_pod_templates)"
    assert pod(p, REPORT)["labels"]["team"] == "ml"


def test_no_template_anywhere_keeps_versions_unchanged(mk):
    plain = plan(mk, mk.workflow_target())
    assert all(t.pod_template is None for t in plain.tasks)
    with_pod = plan(mk, mk.workflow_target(pod_template=template()))
    assert {t.name for t in with_pod.tasks if t.version != plain.task(t.name).version} == {REPORT, CLEAN, SHELL, CRUNCH}


def test_code_template_is_merged_on_top_of_the_target_template(mk):
    code = {
        "pod_spec": {
            "containers": [
                {"name": "primary", "env": [{"name": "LOG_LEVEL", "value": "debug"}, {"name": "X", "value": "1"}]}
            ],
            "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
        },
        "primary_container_name": "primary",  # flytekit's default: never renames the target's
        "labels": {"owner": "me"},
        "annotations": None,
    }
    tmpl = template(primary_container_name="main", base=BASE.replace("name: primary", "name: main"))
    p = plan(
        mk,
        mk.workflow_target(pod_template=tmpl),
        edit=lambda d: set_task(
            d,
            REPORT,
            pod_template={
                **code,
                "pod_spec": {**code["pod_spec"], "containers": [{**code["pod_spec"]["containers"][0], "name": "main"}]},
            },
        ),
    )
    doc = pod(p, REPORT)
    assert doc["primary_container_name"] == "main"
    assert doc["labels"] == {"team": "ml", "env": "", "owner": "me"}
    assert env(containers(doc)["main"]) == {"LOG_LEVEL": "debug", "TASK": "make_report", "X": "1"}
    assert [t["key"] for t in doc["pod_spec"]["tolerations"]] == ["dedicated", "gpu"]
    assert doc["pod_spec"]["nodeSelector"] == {"pool": "cpu"}  # kept from the target's
    assert p.task(REPORT).pod_template_source == "examples/baked:pod (workflow) + code"


def test_code_template_alone_is_carried(mk):
    code = {
        "pod_spec": {"containers": [{"name": "primary"}], "nodeSelector": {"a": "b"}},
        "primary_container_name": "primary",
    }
    p = plan(mk, mk.workflow_target(), edit=lambda d: set_task(d, CRUNCH, pod_template=code))
    assert pod(p, CRUNCH)["pod_spec"] == {"containers": [{"name": "primary"}], "nodeSelector": {"a": "b"}}
    assert p.task(CRUNCH).pod_template_source == "code"
    assert pod(p, REPORT) is None


def test_with_overrides_on_a_node_merges_on_top_of_the_task_template(mk):
    override = {
        "pod_spec": {
            "containers": [{"name": "primary", "env": [{"name": "MODE", "value": "strict"}]}],
            "nodeSelector": {"disk": "ssd"},
        },
        "primary_container_name": "primary",
        "labels": None,
        "annotations": {"why": "override"},
    }

    def edit(data):
        wf = next(w for w in data["workflows"] if w["name"] == WF)
        wf["structure"]["nodes"][1]["entity_kind"] = "task"
        wf["structure"]["nodes"][1]["overrides"] = {"pod_template": override}

    p = plan(mk, mk.workflow_target(pod_template=template(), environment="prod"), edit=edit)
    (n,) = p.node_pod_templates
    assert (n.workflow, n.node, n.task) == (WF, "n1", CLEAN)
    doc = json.loads(n.pod_template)
    assert env(containers(doc)["primary"]) == {"LOG_LEVEL": "warning", "TASK": "clean", "MODE": "strict"}
    assert doc["pod_spec"]["nodeSelector"] == {"pool": "highmem", "disk": "ssd"}
    assert doc["annotations"] == {"why": "override"} and doc["labels"]["team"] == "ml"
    # the task itself keeps the target's template
    assert "MODE" not in env(containers(pod(p, CLEAN))["primary"])


@pytest.mark.parametrize(
    "change",
    [
        dict(base=BASE.replace("name: warm", "name: warm-up")),
        dict(prod=PROD.replace("memory: 4Gi", "memory: 8Gi")),
        dict(values=(("memory", "1Gi"), ("team", "data"))),
    ],
    ids=["template", "overlay", "values"],
)
def test_fingerprint_follows_the_rendered_template(mk, change):
    before = plan(mk, mk.workflow_target(pod_template=template(), environment="prod"))
    after = plan(mk, mk.workflow_target(pod_template=template(**change), environment="prod"))
    assert all(after.task(t.name).version != t.version for t in before.tasks)
    assert after.version != before.version  # the workflow covers its tasks' versions


def test_overlay_of_another_environment_changes_nothing(mk):
    before = plan(mk, mk.workflow_target(pod_template=template()))
    after = plan(mk, mk.workflow_target(pod_template=template(prod=PROD.replace("4Gi", "8Gi"))))
    assert [t.version for t in after.tasks] == [t.version for t in before.tasks]


def test_unknown_variable_names_it_and_the_file(mk):
    with pytest.raises(PodTemplateError) as e:
        plan(mk, mk.workflow_target(pod_template=template(values=(("team", "ml"),))))
    msg = str(e.value)
    assert "unknown variable `${memory}`" in msg
    assert "examples/baked/pod.yaml" in msg and "examples/baked:pod" in msg
    assert "pod_spec.containers[0].resources.limits.memory" in msg


def test_missing_overlay_for_the_environment_is_an_error(mk):
    with pytest.raises(PodTemplateError, match="no overlay for environment `staging`"):
        plan(mk, mk.workflow_target(pod_template=template(), environment="staging"))


def test_values_may_not_redefine_builtins(mk):
    with pytest.raises(PodTemplateError, match="redefines built-in variable"):
        plan(mk, mk.workflow_target(pod_template=template(values=(("memory", "1Gi"), ("team", "x"), ("image", "y")))))


# ---------------------------------------------------------------------------------------------
# cache_key


def test_cache_key_code_follows_code_interface_does_not(mk):
    edited = {"examples/baked/workflows.py": "d-baked-edited"}
    interface_before = plan(mk, mk.workflow_target()).task(CLEAN)
    interface_after = plan(mk, mk.workflow_target(), files=edited).task(CLEAN)
    assert interface_before.cache_key == "interface"
    assert interface_before.cache_version == interface_after.cache_version
    assert interface_before.version != interface_after.version  # the task itself is re-registered

    code_before = plan(mk, mk.workflow_target(cache_key="code")).task(CLEAN)
    code_after = plan(mk, mk.workflow_target(cache_key="code"), files=edited).task(CLEAN)
    assert code_before.cache_key == "code"
    assert code_before.cache_version != code_after.cache_version
    assert code_before.cache_version.startswith("1-") and code_before.cache_version != interface_before.cache_version


def test_cache_key_per_task_mapping(mk):
    p = plan(mk, mk.workflow_target(task_cache_keys=(("clean", "code"),)))
    assert p.task(CLEAN).cache_key == "code"
    assert p.task(REPORT).cache_key == "interface"


def test_interface_change_changes_cache_version_under_both_policies(mk):
    def edit(data):
        next(t for t in data["tasks"] if t["name"] == CLEAN)["interface"]["inputs"]["y"] = mk.STR

    for policy in ("interface", "code"):
        a = plan(mk, mk.workflow_target(cache_key=policy)).task(CLEAN).cache_version
        b = plan(mk, mk.workflow_target(cache_key=policy), edit=edit).task(CLEAN).cache_version
        assert a != b


def test_unknown_cache_key_policy_is_an_error(mk):
    with pytest.raises(PlanError, match="cache_key `always`"):
        plan(mk, mk.workflow_target(cache_key="always"))


def test_mappings_naming_unknown_tasks_warn(mk):
    p = plan(mk, mk.workflow_target(task_cache_keys=(("nope", "code"),), task_pod_templates=(("ghost", template()),)))
    assert "cache_key names `nope`, which is not a task of this workflow" in p.warnings
    assert "task_pod_templates names `ghost`, which is not a task of this workflow" in p.warnings


def test_base_field_the_overlay_overrides_changes_nothing(mk):
    # prod's nodeSelector replaces the base's `pool`: what runs is identical, so is the version
    before = plan(mk, mk.workflow_target(pod_template=template(), environment="prod"))
    after = plan(
        mk, mk.workflow_target(pod_template=template(base=BASE.replace("pool: cpu", "pool: cpu2")), environment="prod")
    )
    assert [t.version for t in after.tasks] == [t.version for t in before.tasks]


def test_label_value_kubernetes_would_reject_is_an_error(mk):
    # ${workflow} is a target address (`examples/baked:wf`): the API server would refuse the pod at run time
    base = BASE.replace('env: "${env}"', 'wf: "${workflow}"')
    with pytest.raises(PodTemplateError) as e:
        plan(mk, mk.workflow_target(pod_template=template(base=base, values=(("memory", "1Gi"), ("team", "ml")))))
    assert "labels.wf" in str(e.value) and "not a valid Kubernetes label value" in str(e.value)
    assert "examples/baked/pod.yaml" in str(e.value)
