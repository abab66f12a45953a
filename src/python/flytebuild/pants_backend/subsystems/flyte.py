"""The `[flyte]` options scope."""
from __future__ import annotations

from pants.option.option_types import BoolOption, IntOption, StrOption
from pants.option.subsystem import Subsystem
from pants.util.strutil import help_text

from flytebuild import __version__
from flytebuild.core.errors import DEFAULT_USER_CODE_TIMEOUT
from flytebuild.core.settings import (
    DEFAULT_ADMIN_TIMEOUT,
    DEFAULT_BASE,
    DEFAULT_DOMAIN,
    DEFAULT_PROJECT,
    DEFAULT_REGISTRY,
)


class FlyteSubsystem(Subsystem):
    options_scope = "flyte"
    help = f"Settings for Flyte targets (flytebuild {__version__})."

    default_image = StrOption(
        default=None,
        help=help_text(
            """
            Image for tasks that name none in code, `task_images` or the workflow's `image`:
            `//path:target` names a `flyte_image`, anything else is an image reference.
            Without it, flytekit's default image for the interpreter version is used.
            """
        ),
    )
    default_base = StrOption(
        default=DEFAULT_BASE,
        help="Base image of `flyte_image` targets that set no `base`.",
    )
    registry = StrOption(
        default=DEFAULT_REGISTRY, help="Registry of `flyte_image` targets that set no `registry`."
    )
    project = StrOption(default=DEFAULT_PROJECT, help="Default Flyte project.")
    domain = StrOption(default=DEFAULT_DOMAIN, help="Default Flyte domain.")

    # --- images (package / publish of flyte_image targets)
    image_output = StrOption(
        default="oci",
        help=help_text(
            """
            What `package` does with a `flyte_image` (tagged with its content version): `oci` writes an OCI
            image layout directory under dist/, `cache` only builds it into the local layer cache, `docker`
            loads it into the local Docker engine, `push` pushes it to its registry (nothing is built or
            pushed when the tag exists). `publish` always pushes; `flyte-deploy` pushes what it registers.
            """
        ),
    )
    image_push_jobs = IntOption(default=4, help="Blobs uploaded at once when pushing an image.")
    user_code_timeout = IntOption(
        default=DEFAULT_USER_CODE_TIMEOUT,
        help=help_text(
            """
            Seconds a process running your code (introspection, serialization, pod-template
            validation) may take before it is stopped with an error naming the target.
            """
        ),
    )
    worker = BoolOption(
        default=True,
        help=help_text(
            """
            Run introspection and serialization in a warm worker that pantsd starts in the user's
            environment (flytekit imported once; a fresh fork per request, given the sources by
            content), instead of a new sandboxed process each time. Results are still keyed by
            their input digests; when the worker cannot be used the sandboxed process runs instead,
            with the same answer. See docs/performance.md.
            """
        ),
    )
    image_cache_dir = StrOption(
        default=None,
        help=help_text(
            """
            Where built layers and pulled base blobs are kept (content-addressed). Defaults to
            `flytebuild_oci` under Pants' named caches directory.
            """
        ),
    )

    # --- flyte-deploy: where to register (flags: --flyte-endpoint ..., env: PANTS_FLYTE_ENDPOINT ...) ---
    endpoint = StrOption(
        default=None,
        help=help_text(
            """
            FlyteAdmin's gRPC endpoint (`host:port`) that `flyte-deploy` registers to. Overrides the
            endpoint of `config`.
            """
        ),
    )
    insecure = BoolOption(
        # Pants bools have no unset value: util_rules/settings.py reads "not given" as unset (config decides).
        default=False,
        help=help_text(
            """
            Talk plaintext gRPC (`true`) or TLS (`false`) to FlyteAdmin, for `flyte-deploy`, `run --remote`,
            reference runs and the reference check alike. Unset: `config` decides, TLS without one.
            """
        ),
    )
    config = StrOption(
        default=None,
        help=help_text(
            """
            A flytekit config file (`~/.flyte/config.yaml` style; relative to the build root) for
            `flyte-deploy`: endpoint, TLS and authentication. `endpoint`/`insecure` override it.
            """
        ),
    )
    admin_timeout = IntOption(
        default=DEFAULT_ADMIN_TIMEOUT,
        help="Seconds `flyte-deploy` waits to connect to FlyteAdmin, and for each call.",
    )
    ledger = BoolOption(
        default=True,
        help=help_text(
            """
            Trust the deploy ledger (`.pants.d/flytebuild/ledger`): an entity registered from this repository
            with the same content costs no gRPC call. Off: every deploy asks FlyteAdmin about every entity, for
            a FlyteAdmin that may be wiped or replaced at the same endpoint.
            """
        ),
    )

    environment = StrOption(
        default=None,
        help=help_text(
            """
            Environment whose overlay is merged into every `flyte_pod_template` that has
            `overlays` (e.g. `dev`, `prod`); also `${env}` in templates. Unset: no overlay.
            """
        ),
    )
