"""Validate a pod spec against the Kubernetes client's V1PodSpec model.

Usage:  python <runtime>/__main__.py validate_pod [--file NAME] < pod_spec.json
        python <runtime>/__main__.py validate_pod --batch REQUEST.json

Runs in the USER's environment (needs the `kubernetes` client package; stdlib otherwise), as part of the runtime
package (no import of `flytebuild`). Stdin: a pod spec as JSON (camelCase Kubernetes
names), or a rendered template `{"pod_spec": {...}, ...}` of which `pod_spec` is checked.

The spec is walked along the models' `openapi_types`/`attribute_map` (the same in the classic and the
pydantic generations of the client), so every unknown field and wrong type is reported with its field path
(`containers[0].resources.limits`); then it is deserialized with `ApiClient` into a real `V1PodSpec`, which
catches what the walk cannot (required fields). Quantities written as numbers (`cpu: 2`) are accepted, as
the API server accepts them.

Request and answer (one spec on stdin, or --batch: many in one process, as flytebuild's rules use it):
docs/runtime-contract.md (validate_pod).
"""
from __future__ import annotations

import difflib
import inspect
import json
import sys

_PRIMITIVES = {"str", "int", "float", "bool", "object", "date", "datetime", "bytearray", "file"}
# Fields typed `str` (or maps of `str`) by the client that are Kubernetes quantities: numbers are fine.
_QUANTITY_FIELDS = {"limits", "requests", "overhead", "sizeLimit", "capacity", "allocatable"}


def _join(path, key):
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def _kind(value):
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


def _unwrap(typ, *prefixes):
    for prefix in prefixes:
        if typ.startswith(prefix) and typ[-1] in "])":
            return typ[len(prefix) : -1].strip()
    return None


class _Walker:
    def __init__(self, models):
        self.models = models
        self.errors = []

    def error(self, path, message):
        self.errors.append({"path": path, "message": message})

    def model(self, name):
        return getattr(self.models, name, None)

    def check(self, value, typ, path, field_name=""):
        typ = typ.strip()
        inner = _unwrap(typ, "Optional[")
        if inner is not None:
            typ = inner
        if value is None:
            return
        item = _unwrap(typ, "List[", "list[")
        if item is not None:
            if not isinstance(value, list):
                self.error(path, f"expected a list ({typ}), got a {_kind(value)}")
                return
            for i, element in enumerate(value):
                self.check(element, item, _join(path, i), field_name)
            return
        inner = _unwrap(typ, "Dict[", "dict(")
        if inner is not None:
            _, _, item = inner.partition(",")
            if not isinstance(value, dict):
                self.error(path, f"expected a map ({typ}), got a {_kind(value)}")
                return
            for key, element in value.items():
                self.check(element, item, _join(path, key), field_name)
            return
        if typ in _PRIMITIVES:
            self.primitive(value, typ, path, field_name)
            return
        cls = self.model(typ)
        if cls is None or not hasattr(cls, "openapi_types"):
            return  # a type this client does not describe: nothing to check against
        if not isinstance(value, dict):
            self.error(path, f"expected a map ({typ}), got a {_kind(value)}")
            return
        by_json = {json_key: attr for attr, json_key in cls.attribute_map.items()}
        for key, element in value.items():
            sub = _join(path, key)
            attr = by_json.get(key)
            if attr is None:
                if key in cls.openapi_types and cls.attribute_map.get(key) != key:
                    self.error(
                        sub, f"unknown field `{key}` in {typ}; use the Kubernetes name `{cls.attribute_map[key]}`"
                    )
                    continue
                close = difflib.get_close_matches(key, sorted(by_json), n=1)
                hint = f"; did you mean `{close[0]}`?" if close else ""
                self.error(sub, f"unknown field `{key}` in {typ}{hint}")
                continue
            self.check(element, cls.openapi_types[attr], sub, key)

    def primitive(self, value, typ, path, field_name):
        if typ == "object":
            return
        if typ in ("str", "date", "datetime"):
            if isinstance(value, str):
                return
            if field_name in _QUANTITY_FIELDS and isinstance(value, (int, float)) and not isinstance(value, bool):
                return
            self.error(path, f"expected a string, got a {_kind(value)} ({json.dumps(value)}); quote it")
        elif typ == "int":
            if not isinstance(value, int) or isinstance(value, bool):
                self.error(path, f"expected an integer, got a {_kind(value)} ({json.dumps(value)})")
        elif typ == "float":
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                self.error(path, f"expected a number, got a {_kind(value)} ({json.dumps(value)})")
        elif typ == "bool":
            if not isinstance(value, bool):
                self.error(path, f"expected true or false, got a {_kind(value)} ({json.dumps(value)})")


def _quantities_as_strings(value, field_name=""):
    """The client's models type quantities as strings; the API server also takes numbers."""
    if isinstance(value, dict):
        if field_name in ("limits", "requests", "overhead"):
            return {
                k: (str(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v) for k, v in value.items()
            }
        out = {}
        for k, v in value.items():
            if k in _QUANTITY_FIELDS and isinstance(v, (int, float)) and not isinstance(v, bool):
                out[k] = str(v)
            else:
                out[k] = _quantities_as_strings(v, k)
        return out
    if isinstance(value, list):
        return [_quantities_as_strings(v, field_name) for v in value]
    return value


class _Response:
    """What the classic ApiClient.deserialize reads (`.data`)."""

    def __init__(self, data):
        self.data = data


def _deserialize(client_module, spec):
    """Build a real V1PodSpec; returns a list of errors (empty when the client accepts it)."""
    api = client_module.ApiClient()
    text = json.dumps(_quantities_as_strings(spec))
    try:
        params = list(inspect.signature(api.deserialize).parameters)
        if len(params) >= 3:  # pydantic generation: deserialize(response_text, response_type, content_type)
            api.deserialize(text, "V1PodSpec", "application/json")
        else:  # classic generation: deserialize(response, response_type)
            api.deserialize(_Response(text), "V1PodSpec")
    except Exception as err:  # noqa: BLE001 - every client error is the user's spec
        details = getattr(err, "errors", None)
        if callable(details):  # pydantic.ValidationError
            out = []
            for e in details():
                path = ""
                for part in e.get("loc", ()):
                    path = _join(path, part)
                out.append({"path": path, "message": e.get("msg", str(err))})
            return out
        return [{"path": "", "message": " ".join(str(err).split()) or type(err).__name__}]
    return []


def validate(spec, client_module):
    walker = _Walker(client_module.models if hasattr(client_module, "models") else client_module)
    walker.check(spec, "V1PodSpec", "")
    if walker.errors:
        return walker.errors
    return _deserialize(client_module, spec)


def _fail(kind, message, errors=()):
    print(json.dumps({"error": {"kind": kind, "message": message, "errors": list(errors)}}, sort_keys=True))
    return 2


def _check_one(spec, name, client):
    if isinstance(spec, dict) and "pod_spec" in spec:
        spec = spec["pod_spec"]
    if not isinstance(spec, dict):
        return {
            "error": {
                "kind": "bad_input",
                "message": f"expected a pod spec (a JSON object), got {_kind(spec)}",
                "errors": [],
            }
        }
    errors = validate(spec, client)
    if errors:
        detail = "; ".join(f"{e['path'] or '(pod spec)'}: {e['message']}" for e in errors)
        return {
            "error": {
                "kind": "invalid_pod_spec",
                "message": f"{name} is not a valid V1PodSpec: {detail}",
                "errors": errors,
            }
        }
    return {"ok": True}


def _batch(path):
    try:
        with open(path, encoding="utf-8") as f:
            request = json.load(f)
    except (OSError, ValueError) as err:
        return _fail("bad_input", f"cannot read batch request {path}: {err}")
    if not isinstance(request, dict):
        return _fail("bad_input", "the batch request must be a JSON object keyed by template")
    try:
        import kubernetes
        from kubernetes import client
    except ImportError as err:
        return _fail(
            "kubernetes_missing",
            "cannot validate pod templates: the `kubernetes` client package is not installed in this environment "
            f"({err})",
        )
    results = {}
    for key, entry in sorted(request.items()):
        entry = entry if isinstance(entry, dict) else {}
        results[key] = _check_one(entry.get("spec"), str(entry.get("file") or key), client)
    print(json.dumps({"kubernetes": getattr(kubernetes, "__version__", "unknown"), "results": results}, sort_keys=True))
    return 0


def main(argv):
    argv = argv[1:]  # argv[0]: the command name, as for every runtime command
    if len(argv) == 2 and argv[0] == "--batch":
        return _batch(argv[1])
    name = "pod spec"
    if len(argv) >= 2 and argv[0] == "--file":
        name = argv[1]
    try:
        data = json.loads(sys.stdin.read())
    except ValueError as err:
        return _fail("bad_input", f"stdin is not JSON: {err}")
    if isinstance(data, dict) and "pod_spec" in data:
        data = data["pod_spec"]
    if not isinstance(data, dict):
        return _fail("bad_input", f"expected a pod spec (a JSON object), got {_kind(data)}")
    try:
        import kubernetes
        from kubernetes import client
    except ImportError as err:
        return _fail(
            "kubernetes_missing",
            f"cannot validate {name}: the `kubernetes` client package is not installed in this environment ({err})",
        )
    errors = validate(data, client)
    if errors:
        detail = "; ".join(f"{e['path'] or '(pod spec)'}: {e['message']}" for e in errors)
        return _fail("invalid_pod_spec", f"{name} is not a valid V1PodSpec: {detail}", errors)
    print(json.dumps({"kubernetes": getattr(kubernetes, "__version__", "unknown"), "ok": True}, sort_keys=True))
    return 0
