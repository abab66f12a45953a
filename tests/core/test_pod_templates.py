"""core/pod_templates.py: what a user checks when a pod template is rendered for an environment."""
import json

import pytest
import yaml

from flytebuild.core.pod_templates import (
    PodTemplateError,
    PodTemplateSource,
    canonical_json,
    load_document,
    merge_override,
    render,
    strategic_merge,
    substitute,
    to_yaml,
    validate_structure,
    validation_error,
    validation_run_error,
)

BASE = """
labels:
  team: ml
annotations:
  owner: "${owner}"
primary_container_name: primary
pod_spec:
  containers:
    - name: primary
      image: "${image}"
      env:
        - {name: LOG_LEVEL, value: info}
        - {name: DEBUG, value: "0"}
        - {name: LITERAL, value: "$${HOME}/x"}
      resources:
        requests: {cpu: "500m", memory: 1Gi}
        limits: {cpu: 1, memory: 2Gi}
      volumeMounts:
        - {name: scratch, mountPath: /scratch}
    - name: sidecar
      image: busybox:1.36
  nodeSelector:
    pool: cpu
    zone: a
  tolerations:
    - {key: spot, operator: Exists, effect: NoSchedule}
    - {key: spot, operator: Exists, effect: NoExecute}
  volumes:
    - name: scratch
      emptyDir: {}
    - name: cache
      emptyDir: {}
"""

DEV = """
pod_spec:
  containers:
    - name: primary
      env:
        - {name: LOG_LEVEL, value: debug}
        - {name: DEBUG, $patch: delete}
"""

PROD = """
labels:
  env: "${env}"
pod_spec:
  containers:
    - name: primary
      env:
        - {name: REPLICA, value: "${replica}"}
      resources:
        limits: {cpu: 4, memory: null}
    - name: sidecar
      $patch: delete
  nodeSelector:
    pool: gpu
    zone: null
  tolerations:
    - {key: spot, effect: NoSchedule, $patch: delete}
    - {key: gpu, operator: Exists, effect: NoSchedule}
  volumes:
    - name: scratch
      emptyDir: {medium: Memory}
    - name: cache
      $patch: delete
    - name: models
      persistentVolumeClaim: {claimName: models}
"""

VALUES = {"owner": "data-team", "replica": 3}
BUILTINS = {"image": "localhost:5000/baked:4f2a", "env": "prod", "project": "flytesnacks", "domain": "production"}


def src(path, text):
    return PodTemplateSource(path, text)


def do_render(env="prod", values=VALUES, builtins=BUILTINS, base=BASE, overlays=None):
    overlays = (
        overlays if overlays is not None else {"dev": src("pods/dev.yaml", DEV), "prod": src("pods/prod.yaml", PROD)}
    )
    return render(src("pods/base.yaml", base), overlays, env, values, builtins=builtins, target="examples/baked:pods")


def container(doc, name):
    return next(c for c in doc["pod_spec"]["containers"] if c["name"] == name)


# --- loading ------------------------------------------------------------------------------------------


def test_bare_pod_spec_and_json_are_loaded_as_a_pod_spec():
    doc = load_document('{"containers": [{"name": "primary"}], "nodeSelector": {"a": "b"}}', "pod.json")
    assert doc == {"pod_spec": {"containers": [{"name": "primary"}], "nodeSelector": {"a": "b"}}}


def test_kubernetes_podtemplate_manifest_is_normalized():
    text = """
apiVersion: v1
kind: PodTemplate
metadata: {name: base, labels: {a: "1"}}
primaryContainerName: main
template:
  metadata: {labels: {b: "2"}, annotations: {c: d}}
  spec: {containers: [{name: main}]}
"""
    assert load_document(text, "t.yaml") == {
        "labels": {"a": "1", "b": "2"},
        "annotations": {"c": "d"},
        "pod_spec": {"containers": [{"name": "main"}]},
        "primary_container_name": "main",
    }


def test_mixed_shapes_and_bad_yaml_are_clear_errors():
    with pytest.raises(PodTemplateError, match="unexpected top-level keys containers next to labels") as err:
        load_document("labels: {}\ncontainers: []\n", "pods/x.yaml")
    assert "pods/x.yaml" in str(err.value)
    with pytest.raises(PodTemplateError, match="invalid YAML"):
        load_document("containers: [\n", "pods/x.yaml")
    with pytest.raises(PodTemplateError, match="2 YAML documents"):
        load_document("a: 1\n---\nb: 2\n", "pods/x.yaml")
    with pytest.raises(PodTemplateError, match="keys must be strings"):
        load_document("nodeSelector: {1: a}\n", "pods/x.yaml")


# --- substitution ---------------------------------------------------------------------------------------


def test_values_and_builtins_are_substituted_and_escape_is_literal():
    doc = do_render(env=None)
    primary = container(doc, "primary")
    assert primary["image"] == "localhost:5000/baked:4f2a"
    assert doc["annotations"] == {"owner": "data-team"}
    assert {"name": "LITERAL", "value": "${HOME}/x"} in primary["env"]


def test_substituted_values_are_always_strings():
    doc = {"a": "${n}", "b": "x-${n}", "c": "${flag}", "d": ["${n}"], "e": 5}
    assert substitute(doc, {"n": 2, "flag": True}, "f.yaml") == {"a": "2", "b": "x-2", "c": "true", "d": ["2"], "e": 5}
    assert doc["a"] == "${n}"  # the input is not modified


def test_unknown_variable_names_variable_file_and_field():
    with pytest.raises(PodTemplateError) as err:
        substitute({"spec": {"containers": [{"image": "repo/${imgae}:1"}]}}, {"image": "x"}, "pods/base.yaml")
    text = str(err.value)
    assert "unknown variable `${imgae}`" in text
    assert "`spec.containers[0].image`" in text
    assert "pods/base.yaml" in text
    assert "known: image" in text
    assert err.value.field == "spec.containers[0].image"


def test_unknown_variable_in_an_overlay_names_the_overlay_and_target():
    with pytest.raises(PodTemplateError) as err:
        do_render(values={"owner": "x"})  # prod overlay uses ${replica}
    text = str(err.value)
    assert "`${replica}`" in text and "pods/prod.yaml" in text and "examples/baked:pods" in text
    assert "pod_spec.containers[0].env[0].value" in text


def test_unterminated_and_builtin_clash_are_errors():
    with pytest.raises(PodTemplateError, match="unterminated"):
        substitute({"a": "${oops"}, {}, "f.yaml")
    with pytest.raises(PodTemplateError, match="redefines built-in variable.*image"):
        do_render(values={**VALUES, "image": "mine"})


# --- overlays per environment ----------------------------------------------------------------------------


def test_dev_overlay_merges_env_by_name_and_deletes_with_patch_directive():
    doc = do_render(env="dev", builtins={**BUILTINS, "env": "dev"})
    primary = container(doc, "primary")
    assert primary["env"] == [{"name": "LOG_LEVEL", "value": "debug"}, {"name": "LITERAL", "value": "${HOME}/x"}]
    # everything the overlay does not mention is kept
    assert primary["image"] == "localhost:5000/baked:4f2a"
    assert primary["resources"] == {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": 1, "memory": "2Gi"}}
    assert [c["name"] for c in doc["pod_spec"]["containers"]] == ["primary", "sidecar"]
    assert doc["labels"] == {"team": "ml"}


def test_prod_overlay_merges_resources_selectors_tolerations_volumes():
    doc = do_render(env="prod")
    spec = doc["pod_spec"]
    primary = container(doc, "primary")
    assert [c["name"] for c in spec["containers"]] == ["primary"]  # sidecar deleted
    assert primary["env"][-1] == {"name": "REPLICA", "value": "3"}
    assert [e["name"] for e in primary["env"]] == ["LOG_LEVEL", "DEBUG", "LITERAL", "REPLICA"]
    assert primary["resources"] == {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": 4}}
    assert spec["nodeSelector"] == {"pool": "gpu"}  # merged; null deletes zone
    assert spec["tolerations"] == [
        {"key": "spot", "operator": "Exists", "effect": "NoExecute"},
        {"key": "gpu", "operator": "Exists", "effect": "NoSchedule"},
    ]
    assert spec["volumes"] == [
        {"name": "scratch", "emptyDir": {"medium": "Memory"}},
        {"name": "models", "persistentVolumeClaim": {"claimName": "models"}},
    ]
    assert primary["volumeMounts"] == [{"name": "scratch", "mountPath": "/scratch"}]
    assert doc["labels"] == {"team": "ml", "env": "prod"}


def test_unknown_environment_lists_the_overlays():
    with pytest.raises(PodTemplateError, match=r"no overlay for environment `staging` \(overlays: dev, prod\)"):
        do_render(env="staging")
    # no overlays at all: any environment renders the base
    assert do_render(env="staging", overlays={})["pod_spec"]["nodeSelector"] == {"pool": "cpu", "zone": "a"}


# --- strategic merge rules -------------------------------------------------------------------------------


def test_patch_replace_on_map_and_list():
    base = {"nodeSelector": {"a": "1", "b": "2"}, "containers": [{"name": "a"}, {"name": "b"}]}
    patch = {"nodeSelector": {"$patch": "replace", "c": "3"}, "containers": [{"$patch": "replace"}, {"name": "z"}]}
    assert strategic_merge(base, patch) == {"nodeSelector": {"c": "3"}, "containers": [{"name": "z"}]}


def test_unkeyed_lists_are_replaced_and_ports_merge_by_container_port():
    base = {
        "containers": [
            {
                "name": "a",
                "args": ["x", "y"],
                "envFrom": [{"secretRef": {"name": "s1"}}],
                "ports": [{"containerPort": 80, "name": "http"}],
            }
        ],
        "imagePullSecrets": [{"name": "r1"}],
    }
    patch = {
        "containers": [
            {
                "name": "a",
                "args": ["z"],
                "envFrom": [{"secretRef": {"name": "s2"}}],
                "ports": [{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 9090}],
            }
        ],
        "imagePullSecrets": [{"name": "r2"}],
    }
    merged = strategic_merge(base, patch)
    c = merged["containers"][0]
    assert c["args"] == ["z"]
    assert c["envFrom"] == [{"secretRef": {"name": "s2"}}]
    assert c["ports"] == [{"containerPort": 80, "name": "http", "protocol": "TCP"}, {"containerPort": 9090}]
    assert merged["imagePullSecrets"] == [{"name": "r1"}, {"name": "r2"}]


def test_merge_does_not_modify_inputs_and_bad_patches_fail_with_paths():
    base = {"containers": [{"name": "a", "env": [{"name": "X", "value": "1"}]}]}
    snapshot = json.loads(json.dumps(base))
    strategic_merge(base, {"containers": [{"name": "a", "env": [{"name": "X", "value": "2"}]}]})
    assert base == snapshot
    with pytest.raises(PodTemplateError, match=r"no `name`.*`containers\[0\]`") as err:
        strategic_merge(base, {"containers": [{"image": "x"}]}, path="pods/prod.yaml")
    assert "pods/prod.yaml" in str(err.value)
    with pytest.raises(PodTemplateError, match="unknown directive `\\$patch: merge`"):
        strategic_merge(base, {"nodeSelector": {"$patch": "merge"}})
    with pytest.raises(PodTemplateError, match="unsupported patch directive `\\$retainKeys`"):
        strategic_merge(base, {"$retainKeys": ["a"]})


# --- with_overrides ---------------------------------------------------------------------------------------


def test_with_overrides_merges_on_top_and_keeps_base_fields():
    rendered = do_render(env="prod")
    override = {  # flytekit PodTemplate, serialized: unset fields are None
        "pod_spec": {
            "containers": [
                {
                    "name": "primary",
                    "resources": {"limits": {"nvidia.com/gpu": "1"}},
                    "env": [{"name": "LOG_LEVEL", "value": "warning"}],
                }
            ],
            "nodeSelector": {"accelerator": "a100"},
        },
        "labels": None,
        "annotations": {"run": "adhoc"},
        "primary_container_name": "primary",
    }
    doc = merge_override(rendered, override)
    primary = container(doc, "primary")
    assert primary["resources"]["limits"] == {"cpu": 4, "nvidia.com/gpu": "1"}
    assert primary["image"] == "localhost:5000/baked:4f2a"
    assert primary["env"][0] == {"name": "LOG_LEVEL", "value": "warning"}
    assert len(primary["env"]) == 4
    assert doc["pod_spec"]["nodeSelector"] == {"pool": "gpu", "accelerator": "a100"}
    assert doc["pod_spec"]["volumes"] == rendered["pod_spec"]["volumes"]
    assert doc["labels"] == {"team": "ml", "env": "prod"}
    assert doc["annotations"] == {"owner": "data-team", "run": "adhoc"}


# --- structure checks -------------------------------------------------------------------------------------


def test_structural_errors_carry_field_paths():
    doc = {
        "labels": {"n": 1},
        "annotations": {},
        "primary_container_name": "primary",
        "pod_spec": {
            "containers": [
                {"image": "x"},
                "oops",
                {"name": "a", "resources": {"limits": ["cpu"]}},
                {"name": "a", "env": [{"name": "N", "value": 3}]},
            ],
            "nodeSelector": {"zone": 1},
            "volumes": [{"emptyDir": {}}],
        },
    }
    issues = {i.field: i.message for i in validate_structure(doc)}
    assert "labels.n" in issues
    assert "non-empty string `name`" in issues["pod_spec.containers[0].name"]
    assert "expected a map" in issues["pod_spec.containers[1]"]
    assert "got a list" in issues["pod_spec.containers[2].resources.limits"]
    assert "duplicate container name `a`" in issues["pod_spec.containers[3].name"]
    assert "quote it" in issues["pod_spec.containers[3].env[0].value"]
    assert "pod_spec.nodeSelector.zone" in issues
    assert "missing `name`" in issues["pod_spec.volumes[0]"]


def test_render_rejects_a_base_without_containers_and_leftover_directives():
    with pytest.raises(PodTemplateError, match=r"pod_spec.containers: is required") as err:
        do_render(env=None, base="nodeSelector: {pool: cpu}\n")
    assert "examples/baked:pods" in str(err.value) and "pods/base.yaml" in str(err.value)
    with pytest.raises(PodTemplateError, match=r"patch directives are only allowed in overlays"):
        do_render(env=None, base="containers: [{name: a, $patch: delete}]\n")
    # an empty list is fine: Flyte adds the task's container as the primary one
    assert do_render(env=None, base="containers: []\n")["pod_spec"] == {"containers": []}


def test_runtime_validation_answer_becomes_one_error_paragraph():
    """What both front ends do with validate_pod --batch's answer (core.pod_templates: validation_run_error, then
    validation_error): the same mistake in two tasks using one template is reported once, naming the file."""
    entries = {
        f"task:{name}": {
            "file": "pods/base.yaml",
            "spec": {},
            "where": f"the pod template of task {name}",
            "files": ["pods/base.yaml"],
        }
        for name in ("wf.a", "wf.b")
    }
    bad = {
        "error": {
            "kind": "invalid_pod_spec",
            "message": "m",
            "errors": [
                {"path": "containers[0].resources.limits", "message": "expected a map (Dict[str, str]), got a list"}
            ],
        }
    }
    answer = {"kubernetes": "29.0.0", "results": {"task:wf.a": bad, "task:wf.b": bad}}
    assert validation_run_error(answer) is None
    assert validation_error(entries, {"task:wf.a": {"ok": True}, "task:wf.b": {"ok": True}}) is None
    err = validation_error(entries, answer["results"], target="examples/baked:wf")
    text = str(err)
    assert "the pod template of task wf.a (and 1 more using it)" in text
    assert "`containers[0].resources.limits`: expected a map" in text
    assert "pods/base.yaml" in text and "examples/baked:wf" in text

    missing = validation_run_error({"error": {"kind": "kubernetes_missing", "message": "no kubernetes"}}, target="t:x")
    assert "Pod template validation failed: no kubernetes" in str(missing) and "t:x" in str(missing)
    assert "add `kubernetes` to the requirements" in str(missing)


# --- determinism ------------------------------------------------------------------------------------------


def test_output_is_canonical_and_deterministic():
    shuffled_base = yaml.safe_dump(yaml.safe_load(BASE), sort_keys=False)
    a = do_render(env="prod")
    b = do_render(env="prod", base=shuffled_base)
    assert canonical_json(a) == canonical_json(b)
    assert canonical_json({"b": 1, "a": {"d": 2, "c": 3}}) == '{"a":{"c":3,"d":2},"b":1}'
    text = to_yaml(a)
    assert text == to_yaml(json.loads(canonical_json(a)))
    assert yaml.safe_load(text) == a
    assert (
        text.index("annotations:")
        < text.index("labels:")
        < text.index("pod_spec:")
        < text.index("primary_container_name:")
    )
