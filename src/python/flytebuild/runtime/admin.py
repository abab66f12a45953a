"""The connection to FlyteAdmin, shared by deploy, remote and check_references: a plain gRPC channel for an endpoint,
flytekit's (authenticated) one for a flytekit config file."""
from __future__ import annotations

import os


class DeployError(Exception):
    """A deploy (or a connection to FlyteAdmin) that could not start: answered as {"error": to_json()}."""

    def __init__(self, kind: str, message: str, fix: str = ""):
        super().__init__(message)
        self.kind, self.message, self.fix = kind, message, fix

    def to_json(self) -> dict:
        return {"kind": self.kind, "message": self.message, "fix": self.fix}


class Admin:
    """FlyteAdmin's AdminService and DataProxyService stubs, without flytekit's retry wrapper: one call, one
    answer (FlyteAdmin's ALREADY_EXISTS is an answer, not a failure to retry)."""

    def __init__(self, admin: dict):
        import grpc
        from flyteidl.service import admin_pb2_grpc, dataproxy_pb2_grpc

        self.timeout = float(admin.get("timeout") or 15)
        if admin.get("config"):
            # A flytekit config may carry authentication: let flytekit build (and authenticate) the channel.
            base, channel, self.endpoint, insecure = self._flytekit_channel(admin)
        else:
            # A plain endpoint needs no flytekit (whose import costs seconds): a gRPC channel is all there is.
            self.endpoint = admin.get("endpoint")
            insecure = bool(admin.get("insecure"))
            if not self.endpoint:
                raise DeployError("no_endpoint", "no FlyteAdmin endpoint configured",
                                  "set [flyte].endpoint (or --flyte-endpoint, PANTS_FLYTE_ENDPOINT) or [flyte].config")
            target = self.endpoint
            base = grpc.insecure_channel(target) if insecure else grpc.secure_channel(
                target, grpc.ssl_channel_credentials())
            channel = base
        try:
            grpc.channel_ready_future(base).result(timeout=self.timeout)
        except grpc.FutureTimeoutError:
            base.close()
            raise DeployError(
                "unreachable",
                f"cannot reach FlyteAdmin at {self.endpoint} ({'insecure' if insecure else 'TLS'}) "
                f"within {self.timeout:g}s",
                "check that FlyteAdmin is running and reachable there (e.g. `kubectl port-forward` it), or set "
                "[flyte].endpoint / --flyte-endpoint"
                + ("" if insecure else " (and [flyte].insecure for a plaintext endpoint)"),
            ) from None
        self.admin = admin_pb2_grpc.AdminServiceStub(channel)
        self.data = dataproxy_pb2_grpc.DataProxyServiceStub(channel)
        self.grpc = grpc

    @staticmethod
    def _flytekit_channel(admin: dict):
        import dataclasses

        from flytekit.clients.auth_helper import (
            get_channel,
            upgrade_channel_to_authenticated,
            upgrade_channel_to_proxy_authenticated,
        )
        from flytekit.configuration import Config

        path = admin["config"]
        if not os.path.isfile(path):
            raise DeployError(
                "bad_config",
                f"flytekit config file {path} does not exist",
                "point [flyte].config at an existing flytekit config.yaml",
            )
        cfg = Config.auto(path).platform
        overrides = {}
        if admin.get("endpoint"):
            overrides["endpoint"] = admin["endpoint"]
        if admin.get("insecure") is not None:
            overrides["insecure"] = bool(admin["insecure"])
        cfg = dataclasses.replace(cfg, **overrides)
        if not cfg.endpoint:
            raise DeployError(
                "no_endpoint",
                f"the flytekit config {path} names no admin endpoint",
                "set admin.endpoint in it, or [flyte].endpoint",
            )
        base = get_channel(cfg)
        channel = upgrade_channel_to_authenticated(cfg, upgrade_channel_to_proxy_authenticated(cfg, base))
        return base, channel, cfg.endpoint, cfg.insecure

    def call(self, method, request):
        return method(request, timeout=self.timeout)


def grpc_code(err) -> str:
    try:
        return err.code().name
    except Exception:  # noqa: BLE001 - not an RpcError
        return "UNKNOWN"


def grpc_details(err) -> str:
    try:
        return err.details() or str(err)
    except Exception:  # noqa: BLE001
        return str(err)
