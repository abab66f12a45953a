"""Pod templates: load, `${var}` substitution, per-environment overlays, strategic merge, checks.

Pure logic (Python >= 3.9, stdlib; PyYAML only when a YAML file is read or written, imported
lazily). The Kubernetes-model validation runs in the user's environment: runtime/validate_pod.py.

Accepted document shapes (YAML or JSON; `.json` files are read as JSON, anything else as YAML)
-----------------------------------------------------------------------------------------------
1. A bare pod spec, as under `spec:` in a Pod manifest (camelCase Kubernetes names)::

       containers: [{name: primary, image: "${image}"}]
       nodeSelector: {pool: cpu}

2. The flytekit `PodTemplate` shape (snake_case or camelCase wrapper keys)::

       labels: {team: ml}
       annotations: {owner: me}
       primary_container_name: primary        # or primaryContainerName
       pod_spec: {containers: [...]}          # or podSpec

3. A Kubernetes manifest: `kind: PodTemplate` (`template.metadata` + `template.spec`) or
   `kind: Pod` / any `{metadata, spec}` object. `metadata.labels` and `metadata.annotations` are
   used (for a PodTemplate, `template.metadata` is merged over the top-level `metadata`); a top-level
   `primary_container_name`/`primaryContainerName` may be added as an extension.

Every shape is normalized to `{"labels", "annotations", "primary_container_name", "pod_spec"}`
holding only the keys the document sets (`load_document`); `render` fills the defaults
(`{}`, `{}`, `"primary"`). Overlays use the same shapes and may be partial (no `containers`).

Substitution (`substitute`)
---------------------------
`${name}` (name: letters, digits, `_`, `.`, `-`; starting with a letter or `_`) is replaced in every
string value (map keys are left alone); `$${` is a literal `${`. The result is always a string
(numbers are written with `str`, booleans as `true`/`false`): after parsing, `"${n}"` and `${n}`
cannot be told apart, and env values must stay strings; quantities (`cpu: "${cpus}"`) accept
strings. An unknown name is a `PodTemplateError` naming the variable, the file and the field path
(`spec.containers[0].image`).
Overlays are substituted with the same values before they are merged.

Merge (`strategic_merge`)
-------------------------
Kubernetes strategic-merge-patch semantics for pod specs: maps merge recursively, scalars and
unkeyed lists (`command`, `args`, `envFrom`, ...) are replaced, keyed lists merge element-wise by
`MERGE_KEYS` (containers/initContainers/env/volumes/imagePullSecrets by `name`, volumeMounts by
`mountPath` as in Kubernetes, ports by `containerPort`, tolerations by (`key`, `effect`) -- the
last is a flytebuild rule: Kubernetes replaces tolerations whole). Matched elements merge, new ones
are appended in patch order. Deletion: a `null` value removes a map key; `$patch: delete` on a list
element removes the element with the same key, on a map removes that map. `$patch: replace` on a
map replaces it whole; a `{$patch: replace}` element in a list replaces the whole list.
"""
from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from flytebuild.core.errors import FlytebuildError

DEFAULT_PRIMARY_CONTAINER_NAME = "primary"

# List fields merged element-wise, and the fields that identify an element.
MERGE_KEYS: Mapping[str, Tuple[str, ...]] = {
    "containers": ("name",),
    "initContainers": ("name",),
    "ephemeralContainers": ("name",),
    "env": ("name",),
    "volumes": ("name",),
    "volumeMounts": ("mountPath",),
    "volumeDevices": ("devicePath",),
    "ports": ("containerPort",),
    "imagePullSecrets": ("name",),
    "hostAliases": ("ip",),
    "resourceClaims": ("name",),
    "schedulingGates": ("name",),
    "claims": ("name",),
    "tolerations": ("key", "effect"),
    "topologySpreadConstraints": ("topologyKey", "whenUnsatisfiable"),
}

_WRAPPER_KEYS = {
    "labels": "labels",
    "annotations": "annotations",
    "primary_container_name": "primary_container_name",
    "primaryContainerName": "primary_container_name",
    "pod_spec": "pod_spec",
    "podSpec": "pod_spec",
}
_MANIFEST_KEYS = {"apiVersion", "kind", "metadata", "spec", "template"}
_VAR = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
_DELETE = object()
_LABEL_VALUE = re.compile(r"^(?=.{1,63}$)[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")


class PodTemplateError(FlytebuildError):
    """A pod template (or one of its overlays) cannot be loaded, rendered or merged."""

    def __init__(
        self,
        what: str,
        *,
        file: Optional[str] = None,
        field: Optional[str] = None,
        target: Optional[str] = None,
        fix: Optional[str] = None,
    ) -> None:
        self.field = field
        if field:
            what = f"{what.rstrip('.')} at `{field}`"
        super().__init__(f"Pod template: {what}", target=target, file=file, fix=fix)


def decode_text(content: bytes, path: str, owner: str) -> str:
    """A pod template file's text: UTF-8, or one clear error naming the file and the target using it."""
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError:
        raise PodTemplateError("the file is not UTF-8 text", file=path, target=owner) from None


@dataclass(frozen=True)
class PodTemplateSource:
    """One file of a pod template: its path (for messages) and its text."""

    path: str
    text: str


@dataclass(frozen=True)
class PodTemplateIssue:
    """One structural problem: the field path (in the normalized document) and what is wrong."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


# ---------------------------------------------------------------------------------------------
# Paths


def _join(path: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


# ---------------------------------------------------------------------------------------------
# Loading


def parse_document(text: str, path: str) -> Dict[str, Any]:
    """Parse YAML or JSON text (by file extension) into a plain JSON-compatible mapping."""
    if path.endswith(".json"):
        try:
            data = json.loads(text)
        except ValueError as err:
            raise PodTemplateError(f"invalid JSON: {err}", file=path, fix="fix the JSON syntax") from None
    else:
        try:
            import yaml
        except ImportError:  # pragma: no cover - PyYAML ships with Pants and flytekit
            raise PodTemplateError(
                "cannot read YAML: PyYAML is not installed", file=path, fix="install PyYAML or use a .json file"
            ) from None
        try:
            docs = [d for d in yaml.safe_load_all(text)]
        except yaml.YAMLError as err:
            raise PodTemplateError(
                "invalid YAML: " + " ".join(str(err).split()), file=path, fix="fix the YAML syntax"
            ) from None
        docs = [d for d in docs if d is not None]
        if len(docs) > 1:
            raise PodTemplateError(
                f"the file holds {len(docs)} YAML documents, expected one",
                file=path,
                fix="keep one document per file (remove the extra `---` sections)",
            )
        data = docs[0] if docs else None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise PodTemplateError(
            f"the document is a {_kind(data)}, expected a map (a pod spec or a PodTemplate)", file=path
        )
    _check_plain(data, "", path)
    return data


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "map"
    return type(value).__name__


def _check_plain(value: Any, field: str, path: str) -> None:
    """Only JSON types survive (YAML dates, sets and non-string keys are rejected with a path)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise PodTemplateError(
                    f"map key {key!r} is a {_kind(key)}, keys must be strings",
                    file=path,
                    field=field or "(top level)",
                    fix=f"quote the key: \"{key}\"",
                )
            _check_plain(item, _join(field, key), path)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_plain(item, _join(field, i), path)
    elif isinstance(value, float) and value != value:
        raise PodTemplateError("NaN is not allowed", file=path, field=field)
    elif value is not None and not isinstance(value, (str, int, float, bool)):
        raise PodTemplateError(
            f"value {value!r} is a {type(value).__name__}, not a string, number or boolean",
            file=path,
            field=field,
            fix="quote the value",
        )


def normalize_document(data: Mapping[str, Any], path: str) -> Dict[str, Any]:
    """Normalize any accepted shape to `{labels?, annotations?, primary_container_name?, pod_spec?}`."""
    data = copy.deepcopy(dict(data))
    keys = set(data)
    if keys & _MANIFEST_KEYS and ("spec" in keys or "template" in keys or "kind" in keys):
        return _normalize_manifest(data, path)
    wrapper = keys & set(_WRAPPER_KEYS)
    if wrapper:
        other = sorted(keys - set(_WRAPPER_KEYS))
        if other:
            raise PodTemplateError(
                f"unexpected top-level keys {', '.join(other)} next to {', '.join(sorted(wrapper))}",
                file=path,
                fix="put pod spec fields under `pod_spec:`, or write a bare pod spec without "
                "labels/annotations/primary_container_name",
            )
        out: Dict[str, Any] = {}
        for key, value in data.items():
            name = _WRAPPER_KEYS[key]
            if name in out:
                raise PodTemplateError(f"`{name}` is given twice (snake_case and camelCase)", file=path)
            out[name] = value
        return out
    return {"pod_spec": data} if data else {}


def _normalize_manifest(data: Dict[str, Any], path: str) -> Dict[str, Any]:
    kind = data.get("kind")
    extension = {k: data.pop(k) for k in ("primary_container_name", "primaryContainerName") if k in data}
    unknown = sorted(set(data) - _MANIFEST_KEYS)
    if unknown:
        raise PodTemplateError(f"unexpected top-level keys {', '.join(unknown)} in a Kubernetes manifest", file=path)
    metadata = _map_or_error(data.get("metadata"), "metadata", path)
    if kind == "PodTemplate" or "template" in data:
        template = _map_or_error(data.get("template"), "template", path)
        inner_meta = _map_or_error(template.get("metadata"), "template.metadata", path)
        spec = template.get("spec")
        meta = {
            key: {
                **_map_or_error(metadata.get(key), f"metadata.{key}", path),
                **_map_or_error(inner_meta.get(key), f"template.metadata.{key}", path),
            }
            for key in ("labels", "annotations")
            if key in metadata or key in inner_meta
        }
    else:
        spec = data.get("spec")
        meta = {key: metadata[key] for key in ("labels", "annotations") if key in metadata}
    out: Dict[str, Any] = dict(meta)
    if spec is not None:
        out["pod_spec"] = spec
    for value in extension.values():
        out["primary_container_name"] = value
    return out


def _map_or_error(value: Any, field: str, path: str) -> Dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PodTemplateError(f"expected a map, got a {_kind(value)}", file=path, field=field)
    return value


def load_document(text: str, path: str) -> Dict[str, Any]:
    """Parse and normalize one pod-template document (no substitution; see the module docstring)."""
    return normalize_document(parse_document(text, path), path)


# ---------------------------------------------------------------------------------------------
# Substitution


def substitute(doc: Any, values: Mapping[str, Any], path: str, *, target: Optional[str] = None) -> Any:
    """Replace `${name}` in every string of `doc` (a new structure is returned; `$${` escapes)."""

    def walk(value: Any, field: str) -> Any:
        if isinstance(value, dict):
            return {k: walk(v, _join(field, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, _join(field, i)) for i, v in enumerate(value)]
        if isinstance(value, str) and "$" in value:
            return _substitute_string(value, values, path, field or "(top level)", target)
        return value

    return walk(doc, "")


def _substitute_string(text: str, values: Mapping[str, Any], path: str, field: str, target: Optional[str]) -> str:
    def repl(match: "re.Match[str]") -> str:
        token = match.group(0)
        if token == "$${":
            return "${"
        name = match.group(1)
        if name is None:
            raise PodTemplateError(
                f"unterminated `${{` in {text!r}",
                file=path,
                field=field,
                target=target,
                fix="close it with `}`, or write `$${` for a literal `${`",
            )
        name = name.strip()
        if not _VAR_NAME.match(name):
            raise PodTemplateError(
                f"invalid variable name `${{{name}}}`",
                file=path,
                field=field,
                target=target,
                fix="use letters, digits, `_`, `.` or `-` (starting with a letter), or `$${` for a literal `${`",
            )
        if name not in values:
            known = ", ".join(sorted(values)) or "none"
            raise PodTemplateError(
                f"unknown variable `${{{name}}}`",
                file=path,
                field=field,
                target=target,
                fix=f"define `{name}` in the target's `values` (known: {known}), or write `$${{{name}}}` for a literal",
            )
        value = values[name]
        if isinstance(value, bool):
            return "true" if value else "false"
        if value is None:
            return ""
        return str(value)

    return _VAR.sub(repl, text)


# ---------------------------------------------------------------------------------------------
# Strategic merge


def strategic_merge(base: Mapping[str, Any], patch: Mapping[str, Any], *, path: Optional[str] = None) -> Dict[str, Any]:
    """Merge `patch` into `base` with Kubernetes strategic-merge-patch rules (inputs are not modified)."""
    if not isinstance(patch, Mapping):
        raise PodTemplateError(f"a patch must be a map, got a {_kind(patch)}", file=path)
    merged = _merge_value(copy.deepcopy(dict(base)), patch, "", "", path)
    if merged is _DELETE:
        return {}
    return merged


def _merge_value(base: Any, patch: Any, name: str, field: str, path: Optional[str]) -> Any:
    if isinstance(patch, dict):
        directive = patch.get("$patch")
        rest = {k: v for k, v in patch.items() if k != "$patch"}
        if directive == "delete":
            return _DELETE
        if directive == "replace":
            return _merge_map({}, rest, field, path)
        if directive is not None:
            raise PodTemplateError(
                f"unknown directive `$patch: {directive}`",
                file=path,
                field=field or "(top level)",
                fix="use `$patch: delete` or `$patch: replace`",
            )
        return _merge_map(base if isinstance(base, dict) else {}, rest, field, path)
    if isinstance(patch, list):
        keys = MERGE_KEYS.get(name)
        replace = any(_is_replace_marker(e) for e in patch)
        items = [e for e in patch if not _is_replace_marker(e)]
        if keys and isinstance(base, list) and not replace:
            return _merge_list(base, items, keys, field, path)
        return _clean_list(items, name, field, path)
    return copy.deepcopy(patch)


def _is_replace_marker(item: Any) -> bool:
    return isinstance(item, dict) and item == {"$patch": "replace"}


def _merge_map(base: Dict[str, Any], patch: Mapping[str, Any], field: str, path: Optional[str]) -> Dict[str, Any]:
    out = dict(base)
    for key, value in patch.items():
        sub = _join(field, key)
        if key.startswith("$"):
            raise PodTemplateError(
                f"unsupported patch directive `{key}`",
                file=path,
                field=sub,
                fix="flytebuild supports `$patch: delete`, `$patch: replace` and `null` to delete a key",
            )
        if value is None:
            out.pop(key, None)
            continue
        merged = _merge_value(out.get(key), value, key, sub, path)
        if merged is _DELETE:
            out.pop(key, None)
        else:
            out[key] = merged
    return out


def _clean_list(items: Sequence[Any], name: str, field: str, path: Optional[str]) -> List[Any]:
    out = []
    for i, item in enumerate(items):
        merged = _merge_value(None, item, "", _join(field, i), path)
        if merged is _DELETE:
            continue  # deleting an element that does not exist is a no-op, as in Kubernetes
        out.append(merged)
    return out


def _element_key(item: Any, keys: Tuple[str, ...], field: str, path: Optional[str]) -> Tuple[Any, ...]:
    if not isinstance(item, dict):
        raise PodTemplateError(
            f"list elements must be maps (merged by {'/'.join(keys)}), got a {_kind(item)}", file=path, field=field
        )
    if len(keys) == 1 and keys[0] not in item:
        raise PodTemplateError(
            f"element has no `{keys[0]}`, which identifies it when merging",
            file=path,
            field=field,
            fix=f"add `{keys[0]}:` to the element",
        )
    return tuple(json.dumps(item.get(k), sort_keys=True) for k in keys)


def _merge_list(
    base: List[Any], patch: Sequence[Any], keys: Tuple[str, ...], field: str, path: Optional[str]
) -> List[Any]:
    out = list(base)

    def find(key: Tuple[Any, ...]) -> Optional[int]:
        for i, item in enumerate(out):
            if isinstance(item, dict) and all(k in item or len(keys) > 1 for k in keys):
                if tuple(json.dumps(item.get(k), sort_keys=True) for k in keys) == key:
                    return i
        return None

    for i, item in enumerate(patch):
        sub = _join(field, i)
        key = _element_key(item, keys, sub, path)
        at = find(key)
        merged = _merge_value(out[at] if at is not None else None, item, "", sub, path)
        if merged is _DELETE:
            if at is not None:
                del out[at]
        elif at is not None:
            out[at] = merged
        else:
            out.append(merged)
    return out


# ---------------------------------------------------------------------------------------------
# Rendering


def _complete(doc: Mapping[str, Any]) -> Dict[str, Any]:
    return {
        "labels": doc.get("labels") if doc.get("labels") is not None else {},
        "annotations": doc.get("annotations") if doc.get("annotations") is not None else {},
        "primary_container_name": doc.get("primary_container_name") or DEFAULT_PRIMARY_CONTAINER_NAME,
        "pod_spec": doc.get("pod_spec") if doc.get("pod_spec") is not None else {},
    }


def render(
    base: PodTemplateSource,
    overlays: Mapping[str, PodTemplateSource],
    env: Optional[str],
    values: Mapping[str, Any],
    *,
    builtins: Mapping[str, Any] = (),  # type: ignore[assignment]
    target: Optional[str] = None,
) -> Dict[str, Any]:
    """Render a pod template: substitute values in the base and the `env` overlay, merge, check.

    `values` are the target's; `builtins` are flytebuild's (image refs, fingerprints, project,
    domain, env name); a name in both is an error. `env=None` applies no overlay; an `env` missing
    from a non-empty `overlays` is an error. Returns the complete normalized document.
    """
    builtins = dict(builtins or {})
    clash = sorted(set(values) & set(builtins))
    if clash:
        raise PodTemplateError(
            f"`values` redefines built-in variable(s) {', '.join(clash)}",
            file=base.path,
            target=target,
            fix="rename them in the target's `values`",
        )
    all_values = {**builtins, **values}
    doc = _render_one(base, all_values, target)
    if env is not None and overlays:
        if env not in overlays:
            raise PodTemplateError(
                f"no overlay for environment `{env}` (overlays: {', '.join(sorted(overlays))})",
                file=base.path,
                target=target,
                fix=f"add `{env}` to the target's `overlays`, or pick one of those environments",
            )
        overlay = overlays[env]
        patch = _render_one(overlay, all_values, target)
        try:
            doc = strategic_merge(doc, patch, path=overlay.path)
        except PodTemplateError as err:
            err.target = target
            raise
    result = _complete(doc)
    check_structure(
        result, path=base.path if env is None or not overlays else f"{base.path} + {overlays[env].path}", target=target
    )
    return result


def _render_one(source: PodTemplateSource, values: Mapping[str, Any], target: Optional[str]) -> Dict[str, Any]:
    raw = parse_document(source.text, source.path)
    return normalize_document(substitute(raw, values, source.path, target=target), source.path)


def merge_override(
    rendered: Mapping[str, Any],
    override: Mapping[str, Any],
    *,
    path: str = "with_overrides(pod_template=...)",
    target: Optional[str] = None,
) -> Dict[str, Any]:
    """Merge a code-level `with_overrides(pod_template=...)` on top of a rendered template.

    `override` is any accepted shape (typically flytekit's PodTemplate as
    `{pod_spec, labels, annotations, primary_container_name}` with camelCase pod-spec fields).
    Top-level `None`s mean "not set" (flytekit's defaults), not "delete". The override wins field
    by field; everything else of the base is kept.
    """
    patch = normalize_document({k: v for k, v in override.items() if v is not None}, path)
    merged = strategic_merge(_complete(rendered), patch, path=path)
    result = _complete(merged)
    check_structure(result, path=path, target=target)
    return result


# ---------------------------------------------------------------------------------------------
# Structural checks


def validate_structure(doc: Mapping[str, Any]) -> Tuple[PodTemplateIssue, ...]:
    """Obvious mistakes in a complete normalized document, with field paths; empty when fine."""
    issues: List[PodTemplateIssue] = []

    def add(field: str, message: str) -> None:
        issues.append(PodTemplateIssue(field, message))

    for key in ("labels", "annotations"):
        value = doc.get(key, {})
        if not isinstance(value, dict):
            add(key, f"expected a map of strings, got a {_kind(value)}")
            continue
        for k, v in value.items():
            if not isinstance(v, str):
                add(_join(key, k), f"must be a string, got a {_kind(v)} (quote it)")
            elif key == "labels" and v and not _LABEL_VALUE.match(v):
                # The API server rejects the pod, at run time, far from the template: say it here.
                add(
                    _join(key, k),
                    f"label value {v!r} is not a valid Kubernetes label value "
                    "(at most 63 characters: letters, digits, `-`, `_`, `.`, starting and ending with a letter or "
                    "digit)",
                )
    pcn = doc.get("primary_container_name", DEFAULT_PRIMARY_CONTAINER_NAME)
    if not isinstance(pcn, str) or not pcn:
        add("primary_container_name", "must be a non-empty string")
    spec = doc.get("pod_spec")
    if not isinstance(spec, dict):
        add("pod_spec", f"expected a map (a pod spec), got a {_kind(spec)}")
        return tuple(issues)
    _check_directives(spec, "pod_spec", add)
    if "containers" not in spec:
        add("pod_spec.containers", "is required (a list of containers; `[]` lets Flyte add the task's container)")
    names: Dict[str, str] = {}
    for list_name in ("containers", "initContainers", "ephemeralContainers"):
        if list_name not in spec:
            continue
        field = f"pod_spec.{list_name}"
        containers = spec[list_name]
        if not isinstance(containers, list):
            add(field, f"expected a list of containers, got a {_kind(containers)}")
            continue
        for i, container in enumerate(containers):
            cfield = _join(field, i)
            if not isinstance(container, dict):
                add(cfield, f"expected a map (a container), got a {_kind(container)}")
                continue
            name = container.get("name")
            if not isinstance(name, str) or not name:
                add(_join(cfield, "name"), "every container needs a non-empty string `name`")
            elif name in names:
                add(_join(cfield, "name"), f"duplicate container name `{name}` (also at {names[name]})")
            else:
                names[name] = cfield
            _check_container(container, cfield, add)
    _check_string_map(spec, "nodeSelector", "pod_spec", add)
    _check_named_list(spec, "volumes", "pod_spec", ("name",), add)
    _check_named_list(spec, "imagePullSecrets", "pod_spec", ("name",), add)
    _check_named_list(spec, "tolerations", "pod_spec", (), add)
    return tuple(issues)


def _check_directives(value: Any, field: str, add) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            if k.startswith("$"):
                add(_join(field, k), "patch directives are only allowed in overlays and overrides")
            _check_directives(v, _join(field, k), add)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_directives(v, _join(field, i), add)


def _check_container(container: Mapping[str, Any], field: str, add) -> None:
    if "image" in container and not isinstance(container["image"], str):
        add(_join(field, "image"), f"must be a string, got a {_kind(container['image'])}")
    for key in ("command", "args"):
        if key in container:
            value = container[key]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                add(_join(field, key), "must be a list of strings (quote numbers)")
    _check_named_list(container, "env", field, ("name",), add)
    for i, item in enumerate(container.get("env") or []):
        if isinstance(item, dict) and "value" in item and not isinstance(item["value"], str):
            add(
                _join(_join(_join(field, "env"), i), "value"),
                f"must be a string, got a {_kind(item['value'])} (quote it)",
            )
    _check_named_list(container, "volumeMounts", field, ("name", "mountPath"), add)
    _check_named_list(container, "ports", field, ("containerPort",), add)
    if "resources" in container:
        resources = container["resources"]
        rfield = _join(field, "resources")
        if not isinstance(resources, dict):
            add(rfield, f"expected a map with `limits`/`requests`, got a {_kind(resources)}")
        else:
            for key in ("limits", "requests"):
                if key in resources:
                    value = resources[key]
                    if not isinstance(value, dict):
                        add(_join(rfield, key), f'expected a map of quantities (cpu: "2"), got a {_kind(value)}')
                        continue
                    for k, v in value.items():
                        if isinstance(v, bool) or not isinstance(v, (str, int, float)):
                            add(
                                _join(_join(rfield, key), k), f"must be a quantity (string or number), got a {_kind(v)}"
                            )


def _check_string_map(parent: Mapping[str, Any], key: str, field: str, add) -> None:
    if key not in parent:
        return
    value = parent[key]
    sub = _join(field, key)
    if not isinstance(value, dict):
        add(sub, f"expected a map of strings, got a {_kind(value)}")
        return
    for k, v in value.items():
        if not isinstance(v, str):
            add(_join(sub, k), f"must be a string, got a {_kind(v)} (quote it)")


def _check_named_list(parent: Mapping[str, Any], key: str, field: str, required: Tuple[str, ...], add) -> None:
    if key not in parent:
        return
    value = parent[key]
    sub = _join(field, key)
    if not isinstance(value, list):
        add(sub, f"expected a list, got a {_kind(value)}")
        return
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            add(_join(sub, i), f"expected a map, got a {_kind(item)}")
            continue
        for r in required:
            if r not in item:
                add(_join(sub, i), f"missing `{r}`")


def check_structure(doc: Mapping[str, Any], *, path: Optional[str] = None, target: Optional[str] = None) -> None:
    """Raise one `PodTemplateError` listing every issue `validate_structure` finds."""
    issues = validate_structure(doc)
    if issues:
        raise PodTemplateError(
            "invalid pod spec: " + "; ".join(str(i) for i in issues),
            file=path,
            target=target,
            fix="correct the fields named above",
        )


# ---------------------------------------------------------------------------------------------
# Canonical output


def canonical_json(doc: Any) -> str:
    """Deterministic JSON (sorted keys, no whitespace): what fingerprints and serialization use."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def to_yaml(doc: Any) -> str:
    """Deterministic YAML (sorted keys, block style) for `flyte-render` output."""
    import yaml

    return yaml.safe_dump(doc, sort_keys=True, default_flow_style=False, allow_unicode=True, width=1 << 20)


# ---------------------------------------------------------------------------------------------
# Per task: the target's template, rendered, with the code's template on top


def builtin_values(
    *,
    project: str,
    domain: str,
    environment: Optional[str],
    workflow: str,
    task: str,
    image: str,
    image_name: Optional[str],
    image_version: str,
    image_fingerprint: str,
    code_fingerprint: Optional[str],
    images: Mapping[str, str] = (),  # type: ignore[assignment]
) -> Dict[str, str]:
    """flytebuild's `${...}` variables for one task (documented in README "Pod templates").

    `image` is the reference the task runs (for a flyte_image, its content-addressed tag);
    `images.NAME` is the reference of every flyte_image the workflow knows, by image_name.
    """
    values = {
        "project": project,
        "domain": domain,
        "env": environment or "",
        "workflow": workflow,
        "task": task,
        "task.short": task.rsplit(".", 1)[-1],
        "image": image,
        "image.name": image_name or "",
        "image.version": image_version,
        "image.fingerprint": image_fingerprint,
        "code.fingerprint": code_fingerprint or "",
    }
    for name, ref in dict(images or {}).items():
        values[f"images.{name}"] = ref
    return values


def render_target(
    source: PodTemplateSource,
    overlays: Mapping[str, PodTemplateSource],
    values: Mapping[str, Any],
    builtins: Mapping[str, Any],
    env: Optional[str],
    *,
    primary_container_name: Optional[str] = None,
    target: Optional[str] = None,
) -> Tuple[Dict[str, Any], Tuple[str, ...]]:
    """`render` for a `flyte_pod_template` target: returns the document and the files it came from.

    The target's `primary_container_name` field wins over the document's.
    """
    doc = render(source, overlays, env, values, builtins=builtins, target=target)
    if primary_container_name:
        doc["primary_container_name"] = primary_container_name
    files = (source.path,) + ((overlays[env].path,) if env is not None and env in overlays else ())
    return doc, files


def code_override(code: Mapping[str, Any], base: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    """A code-level PodTemplate (introspected) as a patch for `base`.

    flytekit's `PodTemplate.primary_container_name` defaults to "primary" and cannot say "unset":
    that default never renames the target's primary container (an explicit other name does).
    """
    patch = {k: v for k, v in code.items() if v is not None}
    if (
        base is not None
        and patch.get("primary_container_name") == DEFAULT_PRIMARY_CONTAINER_NAME
        and base.get("primary_container_name") not in (None, DEFAULT_PRIMARY_CONTAINER_NAME)
    ):
        del patch["primary_container_name"]
    return patch


def with_code_template(
    rendered: Optional[Mapping[str, Any]],
    code: Optional[Mapping[str, Any]],
    *,
    path: str,
    target: Optional[str] = None,
) -> Optional[Dict[str, Any]]:
    """The task's final template: `rendered` (the target's) with the code's merged on top."""
    if code is None:
        return None if rendered is None else dict(rendered)
    if rendered is None:
        return merge_override({"pod_spec": {"containers": []}}, code_override(code, None), path=path, target=target)
    return merge_override(rendered, code_override(code, rendered), path=path, target=target)


def code_templates_in(structure: Any) -> List[Tuple[str, str, Dict[str, Any]]]:
    """(node id, task name, pod template) of every task node with `with_overrides(pod_template=...)`,
    found anywhere in an introspected workflow structure (branches included)."""
    found: List[Tuple[str, str, Dict[str, Any]]] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            overrides = value.get("overrides")
            if (
                value.get("entity_kind") == "task"
                and isinstance(value.get("entity"), str)
                and isinstance(overrides, dict)
                and isinstance(overrides.get("pod_template"), dict)
            ):
                found.append((str(value.get("id")), value["entity"], overrides["pod_template"]))
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(structure)
    return sorted(found, key=lambda f: (f[0], f[1]))


# ---------------------------------------------------------------------------------------------
# V1PodSpec validation of a plan's templates (shared by the adapters; the check itself is
# runtime/validate_pod.py --batch in the user's environment)


def validation_batch(plan: Any) -> Dict[str, Dict[str, Any]]:
    """`{key: {"file", "spec", "where", "files"}}` of every final template a WorkflowPlan carries;
    `{key: {"file", "spec"}}` of it is validate_pod.py's --batch request."""
    entries: Dict[str, Dict[str, Any]] = {}
    tasks = {t.name: t for t in plan.tasks}
    for t in plan.tasks:
        if t.pod_template is not None:
            files = list(t.pod_template_files) or [t.source_file or t.module]
            entries[f"task:{t.name}"] = {
                "file": " + ".join(files),
                "spec": json.loads(t.pod_template),
                "where": f"the pod template of task {t.name} ({t.pod_template_source})",
                "files": files,
            }
    for n in plan.node_pod_templates:
        task = tasks.get(n.task)
        files = list(task.pod_template_files) if task is not None else []
        entries[f"node:{n.workflow}:{n.node}"] = {
            "file": " + ".join(files + ["with_overrides"]),
            "spec": json.loads(n.pod_template),
            "where": f"the pod template of node {n.node} ({n.task}) in {n.workflow}, "
            "with_overrides(pod_template=...) included",
            "files": files,
        }
    return entries


def validation_run_error(answer: Mapping[str, Any], *, target: Optional[str] = None) -> Optional[PodTemplateError]:
    """The error of a validate_pod --batch answer that checked nothing (`{"error": ...}`: the `kubernetes` client
    is missing from the environment, or the request was bad), or None when it has per-template results."""
    error = answer.get("error")
    if not error:
        return None
    if error.get("kind") == "kubernetes_missing":
        fix = "add `kubernetes` to the requirements of your Flyte environment"
    else:
        fix = "pod templates are checked with the `kubernetes` client of the workflows' environment"
    return PodTemplateError(
        f"Pod template validation failed: {error.get('message') or 'no message'}", target=target, fix=fix
    )


def validation_error(
    entries: Mapping[str, Mapping[str, Any]], results: Mapping[str, Any], *, target: Optional[str] = None
) -> Optional[PodTemplateError]:
    """The error to report for validate_pod.py's --batch `results`, or None when all are valid.

    The same mistake usually shows in every task using a template: it is reported once, naming
    the first task and how many more use it."""
    problems: Dict[Tuple[str, Tuple[str, ...]], List[str]] = {}
    for key, entry in sorted(entries.items(), key=lambda kv: (kv[0].startswith("node:"), kv[0])):
        error = (results.get(key) or {}).get("error")
        if error:
            detail = "; ".join(
                f"`{e.get('path') or '(pod spec)'}`: {e.get('message')}" for e in error.get("errors") or []
            ) or str(error.get("message"))
            problems.setdefault((detail, tuple(entry["files"])), []).append(entry["where"])
    if not problems:
        return None
    (detail, files), wheres = next(iter(problems.items()))
    where = wheres[0] if len(wheres) == 1 else f"{wheres[0]} (and {len(wheres) - 1} more using it)"
    more = f" ({len(problems) - 1} other error(s) after this one)" if len(problems) > 1 else ""
    return PodTemplateError(
        f"{where} is not a valid Kubernetes V1PodSpec: {detail} (paths are inside the pod spec){more}",
        file=", ".join(files) or None,
        target=target,
        fix="correct the fields named above in the template file or its overlay",
    )
