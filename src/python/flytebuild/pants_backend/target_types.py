"""Target types: `flyte_image` and `flyte_workflow` (fields with help, in the style of
pants.backend.docker.target_types)."""
from __future__ import annotations

from typing import Dict, Optional, Union

from pants.backend.python.target_types import (
    EntryPointField,
    InterpreterConstraintsField,
    PythonResolveField,
)
from pants.engine.addresses import Address
from pants.engine.target import (
    COMMON_TARGET_FIELDS,
    Dependencies,
    DictStringToStringField,
    Field,
    InvalidFieldException,
    InvalidFieldTypeException,
    SingleSourceField,
    StringField,
    Target,
)
from pants.util.frozendict import FrozenDict
from pants.util.strutil import help_text

from flytebuild.core.settings import CACHE_KEY_POLICIES, DEFAULT_CACHE_KEY

# --- flyte_image -------------------------------------------------------------------------------


class FlyteImageNameField(StringField):
    alias = "image_name"
    help = help_text(
        """
        The name tasks use for this image: in `{{.image.<name>.fqn}}` templates or
        `ImageSpec(name=<name>)` in code. Defaults to the target name.
        """
    )


class FlyteImageBaseField(StringField):
    alias = "base"
    help = help_text(
        """
        Base image reference (`registry/repository:tag` or `...@sha256:...`) the image's layers
        go on top of. Defaults to `[flyte].default_base`.
        """
    )


class FlyteImageRegistryField(StringField):
    alias = "registry"
    help = "Registry the image is pushed to, e.g. `localhost:5000`. Defaults to `[flyte].registry`."


class FlyteImageRepositoryField(StringField):
    alias = "repository"
    help = "Repository inside the registry. Defaults to the image name."


class FlyteImageDependenciesField(Dependencies):
    help = help_text(
        """
        What is baked into the image: first-party sources (`python_source(s)`, `resource(s)`)
        and third-party requirements (`python_requirement`), with their transitive closure.
        Nothing else lands in the image.
        """
    )


class FlyteImageEnvField(DictStringToStringField):
    alias = "env"
    help = "Environment variables set in the image config."


class FlyteImagePythonField(StringField):
    alias = "python"
    default = "/usr/bin/python3"
    help = "Path of the Python interpreter inside the image."


class FlyteImageTarget(Target):
    alias = "flyte_image"
    core_fields = (
        *COMMON_TARGET_FIELDS,
        FlyteImageNameField,
        FlyteImageBaseField,
        FlyteImageRegistryField,
        FlyteImageRepositoryField,
        FlyteImageDependenciesField,
        FlyteImageEnvField,
        FlyteImagePythonField,
        PythonResolveField,
    )
    help = help_text(
        """
        A container image for Flyte tasks that holds exactly the first-party sources and
        third-party requirements of its `dependencies` closure. Tasks whose whole closure is in
        their image are registered to run from it (no fast-register code bundle).
        """
    )


# --- flyte_workflow ----------------------------------------------------------------------------


# An EntryPointField, not a PexEntryPointField: Pants' pex_binary packager and runner match any target with the
# latter, so `package`/`run` on a flyte_workflow would also build a .pex. Ours is inferred in util_rules/entrypoint.py.
class FlyteEntrypointField(EntryPointField):
    alias = "entrypoint"
    required = True
    help = help_text(
        """
        The Flyte entity this target deploys: a workflow, launch plan or task, as
        `module.path:attr` or `file.py:attr` (a file relative to this BUILD file). The
        dependency on its module is inferred.
        """
    )


class FlyteWorkflowDependenciesField(Dependencies):
    help = "Extra dependencies; the entrypoint's module is inferred."


class FlyteWorkflowImageField(StringField):
    alias = "image"
    help = help_text(
        """
        Address of the `flyte_image` that tasks run in when their code names no image
        (e.g. `":image"`). Falls back to `[flyte].default_image`.
        """
    )


class FlyteWorkflowImagesField(DictStringToStringField):
    alias = "images"
    help = help_text(
        """
        Image names used in code (`{{.image.<name>...}}` or `ImageSpec(name=<name>)`) mapped to
        `flyte_image` addresses. Names not mapped here are matched to the `flyte_image` whose
        `image_name` equals them.
        """
    )


class FlyteWorkflowTaskImagesField(DictStringToStringField):
    alias = "task_images"
    help = help_text(
        """
        Per-task image: task name (e.g. `"my_project.tasks.train"`) → `flyte_image` address. Used
        for tasks whose code names no image; wins over `image`.
        """
    )


class FlyteProjectField(StringField):
    alias = "project"
    help = "Flyte project to register into. Defaults to `[flyte].project`."


class FlyteDomainField(StringField):
    alias = "domain"
    help = "Flyte domain to register into. Defaults to `[flyte].domain`."


class FlyteWorkflowPodTemplateField(StringField):
    alias = "pod_template"
    help = help_text(
        """
        Address of the `flyte_pod_template` for every task of this workflow (e.g. `":pod"`).
        `task_pod_templates` wins for the tasks it names.
        """
    )


class FlyteWorkflowTaskPodTemplatesField(DictStringToStringField):
    alias = "task_pod_templates"
    help = help_text(
        """
        Per-task pod template: task name (full, e.g. `"my_project.tasks.train"`, or the function
        name) → `flyte_pod_template` address. Wins over `pod_template`.
        """
    )


class FlyteWorkflowCacheKeyField(Field):
    alias = "cache_key"
    default = DEFAULT_CACHE_KEY
    help = help_text(
        """
        What the `cache_version` registered for cached tasks follows, besides the user's
        `cache_version`: `"interface"` (the task's full interface: a changed dataclass field is
        a cache miss) or `"code"` (also the task's source closure: any code change is a cache
        miss, no manual version bumps). A dict sets it per task: `{"my_project.tasks.train":
        "code"}`; tasks it does not name use `"interface"`.
        """
    )

    @classmethod
    def compute_value(  # annotated: `pants help` reads the raw value's type from this signature
        cls, raw_value: Optional[Union[str, Dict[str, str]]], address: Address
    ) -> Union[str, FrozenDict[str, str]]:
        value = super().compute_value(raw_value, address)
        if isinstance(value, str):
            if value not in CACHE_KEY_POLICIES:
                raise InvalidFieldException(
                    f"The `{cls.alias}` field of {address} is `{value}`; use one of "
                    f"{', '.join(CACHE_KEY_POLICIES)}, or a dict of task name to one of them."
                )
            return value
        if isinstance(value, dict) and all(isinstance(k, str) for k in value):
            bad = sorted(k for k, v in value.items() if v not in CACHE_KEY_POLICIES)
            if bad:
                raise InvalidFieldException(
                    f"The `{cls.alias}` field of {address} maps {', '.join(bad)} to an unknown "
                    f"policy; use one of {', '.join(CACHE_KEY_POLICIES)}."
                )
            return FrozenDict(sorted(value.items()))
        raise InvalidFieldTypeException(
            address, cls.alias, raw_value, expected_type='"interface", "code" or a dict of task name to one of them'
        )


class FlyteWorkflowTarget(Target):
    alias = "flyte_workflow"
    core_fields = (
        *COMMON_TARGET_FIELDS,
        FlyteEntrypointField,
        FlyteWorkflowDependenciesField,
        FlyteWorkflowImageField,
        FlyteWorkflowImagesField,
        FlyteWorkflowTaskImagesField,
        FlyteProjectField,
        FlyteDomainField,
        PythonResolveField,
        InterpreterConstraintsField,
        FlyteWorkflowPodTemplateField,
        FlyteWorkflowTaskPodTemplatesField,
        FlyteWorkflowCacheKeyField,
    )
    help = help_text(
        """
        A Flyte workflow, launch plan or task and everything it reaches. `flyte-plan` shows,
        per task, the image it runs in, whether its code is baked into that image or needs
        fast-register, and its content-addressed version.
        """
    )


# --- flyte_pod_template ------------------------------------------------------------------------

class FlytePodTemplateSourceField(SingleSourceField):
    expected_file_extensions = (".yaml", ".yml", ".json")
    help = help_text(
        """
        The pod template: a bare Kubernetes pod spec (`containers`, `nodeSelector`, ...), a
        flytekit `PodTemplate`-shaped document (`labels`, `annotations`,
        `primary_container_name`, `pod_spec`), or a `kind: PodTemplate` / `kind: Pod` manifest.
        YAML, or JSON for `.json` files. `${name}` is replaced by `values` and flytebuild's
        built-in values (`${image}`, `${project}`, `${domain}`, `${env}`, `${task}`, ...);
        `$${` is a literal `${`.
        """
    )


class FlytePodTemplateValuesField(DictStringToStringField):
    alias = "values"
    help = help_text(
        """
        Values for `${name}` in the template and its overlays. An unknown name is an error
        naming it and the file; redefining a built-in value is an error.
        """
    )


class FlytePodTemplateOverlaysField(DictStringToStringField):
    alias = "overlays"
    help = help_text(
        """
        Per environment, a file (relative to this BUILD file) merged on top of `source` with
        Kubernetes strategic-merge rules (containers, env, volumes by name, volumeMounts by
        mountPath, tolerations by key+effect; `null` or `$patch: delete` deletes). The
        environment is `[flyte].environment` (`--flyte-environment`), or `flyte-render --env`.
        Example: `{"dev": "dev.yaml", "prod": "prod.yaml"}`.
        """
    )


class FlytePodTemplatePrimaryContainerField(StringField):
    alias = "primary_container_name"
    help = help_text(
        """
        The container Flyte puts the task's command, image and resources into. Overrides the
        document's `primary_container_name`; defaults to it, else `primary`.
        """
    )


class FlytePodTemplateTarget(Target):
    alias = "flyte_pod_template"
    core_fields = (
        *COMMON_TARGET_FIELDS,
        FlytePodTemplateSourceField,
        FlytePodTemplateValuesField,
        FlytePodTemplateOverlaysField,
        FlytePodTemplatePrimaryContainerField,
    )
    help = help_text(
        """
        A Kubernetes pod template for Flyte tasks, with `${var}` values and per-environment
        overlays. Attach it with `pod_template` / `task_pod_templates` on a `flyte_workflow`;
        `with_overrides(pod_template=...)` and `@task(pod_template=...)` in code are merged on
        top of it. The result is validated as a Kubernetes V1PodSpec in the workflow's own
        environment (which needs the `kubernetes` package) and is part of the task's version.
        `pants flyte-render` prints the final pod spec per task.
        """
    )


# --- flyte_reference ---------------------------------------------------------------------------


class FlyteReferenceKindField(StringField):
    alias = "kind"
    required = True
    # Checked where it is used (core/validate.py), not when BUILD files load: a bad value fails only the goals
    # that run this reference, never the plans of unrelated targets (which may load every target).
    help = "What is registered under `name`: `task`, `workflow` or `launch_plan`."


class FlyteReferenceNameField(StringField):
    alias = "entity_name"
    required = True
    help = help_text(
        """
        The registered name of the task, workflow or launch plan (e.g. `my_project.workflows.train`).
        """
    )


class FlyteReferenceVersionField(StringField):
    alias = "version"
    help = "The registered version. Without it, the latest registered version is used (logged at run time)."


class FlyteReferenceDefaultInputsField(DictStringToStringField):
    alias = "default_inputs"
    help = help_text(
        """
        Input values used when neither the command line nor the launch plan (its fixed or
        default inputs) gives one, written as on the command line: `{"n": "3", "cfg": '{"a": 2}'}`.
        """
    )


class FlyteReferenceTarget(Target):
    alias = "flyte_reference"
    core_fields = (
        *COMMON_TARGET_FIELDS,
        FlyteReferenceKindField,
        FlyteReferenceNameField,
        FlyteReferenceVersionField,
        FlyteProjectField,
        FlyteDomainField,
        FlyteReferenceDefaultInputsField,
        PythonResolveField,
    )
    help = help_text(
        """
        A task, workflow or launch plan registered on the Flyte cluster (`[flyte] endpoint`),
        runnable with `pants run <target> -- --<input> <value> ...`: its interface is fetched
        from the cluster and an execution is created; nothing is compiled locally. Inputs:
        command line > launch plan fixed/default inputs > `default_inputs`. flytekit comes from
        the target's `resolve`.
        """
    )
