"""The run's settings: one frozen object, built in exactly one place per front end.

Pants builds it from the `[flyte]` subsystem (pants_backend/subsystems/flyte.py `flyte_settings`), the CLI
from flytebuild.toml (cli/config.py `load_project`); Bazel hands its attributes to the CLI. Everything
downstream (the planner, the service, the runtime requests) reads this object, so a setting cannot mean
one thing on one path and another on the next (as `insecure` unset once did).

Pure: imports neither pants nor flytekit.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Dict, Optional

# What a task's `cache_version` follows: its interface only, or also its code closure.
CACHE_KEY_POLICIES = ("interface", "code")
DEFAULT_CACHE_KEY = "interface"

DEFAULT_PROJECT = "flytesnacks"
DEFAULT_DOMAIN = "development"
DEFAULT_REGISTRY = "localhost:5000"
DEFAULT_BASE = "localhost:5000/flytebuild/python:3.11"
DEFAULT_ADMIN_TIMEOUT = 15


@dataclass(frozen=True)
class AdminSettings:
    """Where FlyteAdmin is and how to talk to it (deploy, run --remote, reference runs and checks).

    `insecure`: True = plaintext gRPC, False = TLS, None (unset) = the flytekit `config` decides, and
    TLS when there is no config. Every path hands this to runtime/deploy.py's `Admin` unchanged.
    """

    endpoint: Optional[str] = None
    insecure: Optional[bool] = None
    config: Optional[str] = None  # absolute path of a flytekit config.yaml
    timeout: int = DEFAULT_ADMIN_TIMEOUT
    # Trust the deploy ledger (runtime/ledger.py): off, every deploy asks FlyteAdmin about every entity, which is
    # what a FlyteAdmin that is wiped or replaced at the same endpoint (a dev cluster) needs.
    ledger: bool = True

    @property
    def configured(self) -> bool:
        return bool(self.endpoint or self.config)

    @property
    def where(self) -> str:
        """For messages: the endpoint, else the config file."""
        return self.endpoint or self.config or "(no FlyteAdmin configured)"

    def request_json(self) -> Dict[str, Any]:
        """The `admin` object of the runtime requests (runtime/deploy.py, remote.py, check_references.py)."""
        return {"endpoint": self.endpoint, "insecure": self.insecure, "config": self.config, "timeout": self.timeout}


@dataclass(frozen=True)
class Settings:
    """Project-wide defaults that targets fall back to, and the admin connection."""

    project: str = DEFAULT_PROJECT
    domain: str = DEFAULT_DOMAIN
    registry: Optional[str] = DEFAULT_REGISTRY  # of flyte_image targets and ImageSpecs that set none
    default_base: str = DEFAULT_BASE  # of flyte_image targets and ImageSpecs that set no base
    # Image of tasks that name none: a flyte_image address (`//path:name`, as the front end spells
    # addresses) or an image reference; None = flytekit's default image.
    default_image: Optional[str] = None
    environment: Optional[str] = None  # the pod templates' overlay
    cache_key: str = DEFAULT_CACHE_KEY  # of workflows that set none
    admin: AdminSettings = field(default_factory=AdminSettings)

    def with_environment(self, environment: Optional[str]) -> "Settings":
        """A per-invocation override (`flyte-render --env`, `--env`): None keeps the configured one."""
        return self if environment is None else replace(self, environment=environment)

    def planning(self, environment: Optional[str] = None) -> "Settings":
        """What a plan is made from: these settings (`environment` as in `with_environment`) without the admin
        connection. A plan is the same whichever FlyteAdmin it goes to, so deploying with another endpoint (or a
        `plan` that names none) re-plans nothing; both front ends key and memoize plans on this value."""
        return replace(self.with_environment(environment), admin=AdminSettings())
