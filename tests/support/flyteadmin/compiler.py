"""What FlyteAdmin's registration path does with a spec before storing it, reduced to what tests need.

- digests: FlyteAdmin compares a digest of the *compiled* entity (task template with its id set;
  compiled workflow closure; launch plan with its closure); here: deterministic protobuf bytes of
  the same parts, hashed with sha256.
- workflow requirements: the task / launch plan ids a workflow's nodes (and its sub-workflows'
  nodes, branches and array nodes) reference, as flytepropeller's `GetRequirements` collects them.
- the different-structure message lists changed JSON paths, like flyteadmin's jsondiff output.
"""
import hashlib
from typing import Dict, Iterable, List, Tuple

from flyteidl.core import compiler_pb2, identifier_pb2, types_pb2, workflow_pb2
from google.protobuf import json_format, text_format


class CompileError(Exception):
    pass


def id_text(ident) -> str:
    """The identifier as Go's `%+v` renders a proto (one line of text format)."""
    return text_format.MessageToString(ident, as_one_line=True)


def digest(*messages) -> bytes:
    h = hashlib.sha256()
    for m in messages:
        data = m.SerializeToString(deterministic=True)
        h.update(len(data).to_bytes(8, "big"))
        h.update(data)
    return h.digest()


def _walk_nodes(nodes: Iterable[workflow_pb2.Node]):
    for node in nodes:
        yield node
        kind = node.WhichOneof("target")
        if kind == "branch_node":
            ie = node.branch_node.if_else
            children = [ie.case.then_node] + [c.then_node for c in ie.other]
            if ie.HasField("else_node"):
                children.append(ie.else_node)
            yield from _walk_nodes(children)
        elif kind == "array_node":
            yield from _walk_nodes([node.array_node.node])


def id_key(ident) -> Tuple[int, str, str, str, str]:
    return (ident.resource_type, ident.project, ident.domain, ident.name, ident.version)


def requirements(template: workflow_pb2.WorkflowTemplate, sub_workflows: List[workflow_pb2.WorkflowTemplate]):
    """(task ids, launch plan ids) referenced, in first-seen order; sub-workflow refs must be provided."""
    provided = {id_key(s.id) for s in sub_workflows}
    tasks: Dict[tuple, identifier_pb2.Identifier] = {}
    launch_plans: Dict[tuple, identifier_pb2.Identifier] = {}
    for wf in [template, *sub_workflows]:
        for node in _walk_nodes(wf.nodes):
            kind = node.WhichOneof("target")
            if kind == "task_node":
                ref = node.task_node.reference_id
                tasks.setdefault(id_key(ref), ref)
            elif kind == "workflow_node":
                ref_kind = node.workflow_node.WhichOneof("reference")
                if ref_kind == "launchplan_ref":
                    ref = node.workflow_node.launchplan_ref
                    launch_plans.setdefault(id_key(ref), ref)
                elif ref_kind == "sub_workflow_ref":
                    ref = node.workflow_node.sub_workflow_ref
                    if id_key(ref) not in provided:
                        raise CompileError(
                            f"Code: WorkflowReferenceNotFound, Node Id: {node.id}, Description: "
                            f"Referenced Workflow [{id_text(ref)}] not found."
                        )
    return list(tasks.values()), list(launch_plans.values())


def _connections(template: workflow_pb2.WorkflowTemplate) -> compiler_pb2.ConnectionSet:
    conns = compiler_pb2.ConnectionSet()
    for node in template.nodes:
        for up in node.upstream_node_ids:
            conns.upstream[node.id].ids.append(up)
            conns.downstream[up].ids.append(node.id)
    return conns


def compile_workflow(template, sub_workflows, task_templates) -> compiler_pb2.CompiledWorkflowClosure:
    closure = compiler_pb2.CompiledWorkflowClosure()
    closure.primary.template.CopyFrom(template)
    closure.primary.connections.CopyFrom(_connections(template))
    for sub in sub_workflows:
        compiled = closure.sub_workflows.add()
        compiled.template.CopyFrom(sub)
        compiled.connections.CopyFrom(_connections(sub))
    for t in task_templates:
        closure.tasks.add().template.CopyFrom(t)
    return closure


def json_diff(old, new) -> List[str]:
    """Paths whose values differ, formatted like flyteadmin's compareJsons."""

    def flatten(value, path, out):
        if isinstance(value, dict):
            for k, v in value.items():
                flatten(v, f"{path}/{k}", out)
        elif isinstance(value, list):
            for i, v in enumerate(value):
                flatten(v, f"{path}/{i}", out)
        else:
            out[path] = value
        return out

    a = flatten(json_format.MessageToDict(old), "", {})
    b = flatten(json_format.MessageToDict(new), "", {})
    lines = []
    for path in sorted(set(a) | set(b)):
        if a.get(path) != b.get(path):
            lines.append(f"{path}:\n\t- {a.get(path)} \n\t+ {b.get(path)}")
    return lines


# --- literal types (a loose version of flytepropeller's AreTypesCastable) --------------------------

_PRIMITIVE_TO_SIMPLE = {
    "integer": types_pb2.INTEGER,
    "float_value": types_pb2.FLOAT,
    "string_value": types_pb2.STRING,
    "boolean": types_pb2.BOOLEAN,
    "datetime": types_pb2.DATETIME,
    "duration": types_pb2.DURATION,
}


def castable_literal(literal, expected: types_pb2.LiteralType) -> bool:
    """False only when a primitive literal meets a different simple type (no false rejections)."""
    if expected.WhichOneof("type") == "union_type":
        return any(castable_literal(literal, v) for v in expected.union_type.variants)
    if literal.WhichOneof("value") != "scalar" or literal.scalar.WhichOneof("value") != "primitive":
        return True
    if expected.WhichOneof("type") != "simple":
        return False
    actual = _PRIMITIVE_TO_SIMPLE[literal.scalar.primitive.WhichOneof("value")]
    if expected.simple in (types_pb2.NONE,):
        return False
    return actual == expected.simple or (actual == types_pb2.INTEGER and expected.simple == types_pb2.FLOAT)


def castable_type(actual: types_pb2.LiteralType, expected: types_pb2.LiteralType) -> bool:
    """Same kind of type (simple/collection/map/...) and, for simple types, the same simple type."""
    if expected.WhichOneof("type") == "union_type":
        return actual.WhichOneof("type") == "union_type" or any(
            castable_type(actual, v) for v in expected.union_type.variants
        )
    if actual.WhichOneof("type") != expected.WhichOneof("type"):
        return False
    if actual.WhichOneof("type") == "simple":
        return actual.simple == expected.simple
    if actual.WhichOneof("type") == "collection_type":
        return castable_type(actual.collection_type, expected.collection_type)
    if actual.WhichOneof("type") == "map_value_type":
        return castable_type(actual.map_value_type, expected.map_value_type)
    return True
