"""A small OCI distribution client over urllib: refs, auth, pull (with a content-addressed cache), push.

Errors are `RegistryError`s naming the registry, the repository and the fix. Transient failures
(connection reset, 5xx, 429) are retried with exponential backoff; a refused connection is not
(the registry is simply not there), so a wrong address fails fast.
"""
from __future__ import annotations

import base64
import errno
import hashlib
import http.client
import io
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Callable, Dict, Mapping, Optional, Tuple, Union

from flytebuild.oci.image import DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, INDEX_TYPES, OCI_INDEX, OCI_MANIFEST, BaseImage
from flytebuild.oci.layers import temp_path

# Without the OCI *and* Docker v2 types a registry may convert to schema1 and report another digest.
MANIFEST_ACCEPT = ", ".join([OCI_MANIFEST, DOCKER_MANIFEST, OCI_INDEX, DOCKER_MANIFEST_LIST])
DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")
_CHUNK = 1 << 20


class RegistryError(RuntimeError):
    """One clear paragraph: what failed, against which registry and repository, and the fix."""

    def __init__(self, message: str, *, registry: str = "", repository: str = "", status: Optional[int] = None):
        super().__init__(message)
        self.registry = registry
        self.repository = repository
        self.status = status


class Cancelled(RegistryError):
    """The caller withdrew (Ctrl-C on the build tool): no request is sent after it, a body being sent stops."""


class _CancellableBody:
    """A request body read block by block (http.client sends file-like bodies so), stopping at cancellation: a blob
    upload is abandoned mid-body, and the registry never stores a partial blob (its digest would not match)."""

    def __init__(self, data: Any, cancelled: threading.Event, what: str, raise_cancelled: Callable[[str], None]):
        self._data = io.BytesIO(data) if isinstance(data, (bytes, bytearray)) else data
        self._cancelled, self._what, self._raise = cancelled, what, raise_cancelled

    def read(self, size: int = -1) -> bytes:
        if self._cancelled.is_set():
            self._raise(self._what)
        return self._data.read(size)

    def close(self) -> None:
        if hasattr(self._data, "close"):
            self._data.close()


# --------------------------------------------------------------------------- references


@dataclass(frozen=True)
class Reference:
    registry: str  # "docker.io", "127.0.0.1:5000", "ghcr.io"
    repository: str  # "library/python", "team/app"
    tag: Optional[str] = None
    digest: Optional[str] = None

    @classmethod
    def parse(cls, ref: str) -> "Reference":
        original = ref
        ref = ref.strip()
        if not ref or any(c.isspace() for c in ref):
            raise ValueError(f"invalid image reference {original!r}")
        digest = None
        if "@" in ref:
            ref, digest = ref.split("@", 1)
            if not _DIGEST_RE.match(digest):
                raise ValueError(f"invalid image reference {original!r}: digest must be sha256:<64 hex>")
        tag = None
        last = ref.rsplit("/", 1)[-1]
        if ":" in last:
            ref, tag = ref.rsplit(":", 1)
            if not _TAG_RE.match(tag):
                raise ValueError(f"invalid image reference {original!r}: bad tag {tag!r}")
        parts = ref.split("/", 1)
        if len(parts) == 2 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
            registry, repo = parts
        else:
            registry, repo = DOCKER_HUB, ref
        if registry in ("index.docker.io", "registry-1.docker.io"):
            registry = DOCKER_HUB
        if registry == DOCKER_HUB and "/" not in repo:
            repo = "library/" + repo
        if (
            not repo
            or repo != repo.lower()
            or not re.match(r"^[a-z0-9]+([._/-][a-z0-9]+|__[a-z0-9]+)*$", repo.replace("--", "-"))
        ):
            raise ValueError(f"invalid image reference {original!r}: bad repository name {repo!r}")
        if tag is None and digest is None:
            tag = "latest"
        return cls(registry, repo, tag, digest)

    @property
    def ref(self) -> str:
        """The digest if pinned, else the tag: what goes after /manifests/."""
        return self.digest or self.tag or "latest"

    def with_tag(self, tag: str) -> "Reference":
        return Reference(self.registry, self.repository, tag, None)

    def with_digest(self, digest: str) -> "Reference":
        return Reference(self.registry, self.repository, self.tag, digest)

    def __str__(self) -> str:
        s = f"{self.registry}/{self.repository}"
        if self.tag:
            s += f":{self.tag}"
        if self.digest:
            s += f"@{self.digest}"
        return s


def api_host(registry: str) -> str:
    return DOCKER_HUB_API if registry == DOCKER_HUB else registry


def is_insecure(registry: str) -> bool:
    """Plain HTTP only for loopback registries."""
    host = registry.rsplit(":", 1)[0] if not registry.endswith("]") else registry
    return host in ("localhost", "127.0.0.1", "[::1]", "::1")


# --------------------------------------------------------------------------- credentials


def _docker_config_path() -> Path:
    return Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker") / "config.json"


class DockerConfigError(RegistryError):
    """The Docker config (or its credential helper) cannot be used: one message per problem, with the path."""


def _config_error(path: Path, problem: str, fix: str, registry: str) -> DockerConfigError:
    origin = " (from $DOCKER_CONFIG)" if os.environ.get("DOCKER_CONFIG") and path == _docker_config_path() else ""
    return DockerConfigError(f"The Docker config {path}{origin} {problem}. Fix: {fix}.", registry=registry)


def load_credentials(registry: str, config_path: Optional[Path] = None) -> Optional[Tuple[str, str]]:
    """(username, password) for `registry` from the Docker config, via a credential helper if set.

    A missing config means no credentials; a config that exists but cannot be used is an error
    naming the file (never "no credentials configured").
    """
    path = config_path or _docker_config_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        raise _config_error(
            path,
            f"cannot be read ({getattr(e, 'strerror', None) or e})",
            "make it readable by this user, or point DOCKER_CONFIG at a directory with a readable config.json",
            registry,
        ) from None
    try:
        cfg = json.loads(text) if text.strip() else {}
    except ValueError as e:
        raise _config_error(
            path, f"is not valid JSON ({e})", "fix the JSON (or run `docker login` again to rewrite it)", registry
        ) from None
    if not isinstance(cfg, dict):
        raise _config_error(path, "is not a JSON object", 'it must look like {"auths": {...}}', registry)
    keys = [registry]
    if registry == DOCKER_HUB:
        keys = ["https://index.docker.io/v1/", "index.docker.io", "docker.io", DOCKER_HUB_API]
    helpers = cfg.get("credHelpers", {}) if cfg.get("credHelpers") is not None else {}
    auths = cfg.get("auths", {}) if cfg.get("auths") is not None else {}
    for name, value in (("credHelpers", helpers), ("auths", auths)):
        if not isinstance(value, dict):
            raise _config_error(path, f"has `{name}` that is not an object", f"make `{name}` a JSON object", registry)
    helper = next((helpers.get(k) for k in keys if helpers.get(k)), None)
    helper = helper or cfg.get("credsStore")
    if helper:
        creds = _from_helper(str(helper), keys, path, registry)
        if creds:
            return creds
    for key, entry in auths.items():
        host = urllib.parse.urlparse(key).netloc if "://" in key else key.split("/", 1)[0]
        if key not in keys and host not in keys:
            continue
        if not isinstance(entry, dict):
            raise _config_error(
                path,
                f"has an `auths` entry for {key} that is not an object",
                f"run `docker login {registry}` again",
                registry,
            )
        if entry.get("auth"):
            try:
                decoded = base64.b64decode(str(entry["auth"]), validate=True).decode("utf-8")
            except (ValueError, UnicodeDecodeError):
                raise _config_error(
                    path,
                    f"has an `auth` for {key} that is not base64 of `user:password`",
                    f"run `docker login {registry}` again, or set auth to `echo -n user:password | base64`",
                    registry,
                ) from None
            user, sep, pw = decoded.partition(":")
            if not sep:
                raise _config_error(
                    path,
                    f"has an `auth` for {key} without a `:` between user and password",
                    f"run `docker login {registry}` again",
                    registry,
                )
            return user, pw
        if entry.get("username"):
            return str(entry["username"]), str(entry.get("password", ""))
    return None


def _from_helper(helper: str, keys, path: Path, registry: str) -> Optional[Tuple[str, str]]:
    exe = shutil.which(f"docker-credential-{helper}")
    if not exe:
        raise _config_error(
            path,
            f"names the credential helper `{helper}`, but docker-credential-{helper} is not on PATH",
            f"install docker-credential-{helper}, or remove `{helper}` from credsStore/credHelpers",
            registry,
        )
    for key in keys:
        try:
            out = subprocess.run([exe, "get"], input=key.encode(), capture_output=True, timeout=30)
        except subprocess.TimeoutExpired:
            raise _config_error(
                path,
                f"names the credential helper {exe}, which did not answer within 30 s",
                "check the helper (it may be waiting for an unlock prompt)",
                registry,
            ) from None
        except OSError as e:
            raise _config_error(
                path,
                f"names the credential helper {exe}, which cannot run ({e.strerror})",
                "reinstall the helper",
                registry,
            ) from None
        if out.returncode == 0:
            try:
                data = json.loads(out.stdout)
                return str(data.get("Username", "")), str(data.get("Secret", ""))
            except (ValueError, AttributeError):
                raise _config_error(
                    path,
                    f"names the credential helper {exe}, whose answer is not JSON",
                    "check the helper's version",
                    registry,
                ) from None
    return None


# --------------------------------------------------------------------------- client


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int


Body = Union[None, bytes, Callable[[], BinaryIO]]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Upload sessions answer 202/201 with Location: never follow those; GET/HEAD redirects are fine."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if req.get_method() in ("GET", "HEAD"):
            return super().redirect_request(req, fp, code, msg, headers, newurl)
        return None


class RegistryClient:
    """Talks to one registry. Thread-safe: tokens are shared, requests are independent."""

    def __init__(
        self,
        registry: str,
        *,
        cache_dir: Optional[Union[str, Path]] = None,
        credentials: Optional[Tuple[str, str]] = None,
        docker_config: Optional[Path] = None,
        insecure: Optional[bool] = None,
        timeout: float = 30.0,
        retries: int = 4,
        backoff: float = 0.5,
        cancelled: Optional[threading.Event] = None,
    ):
        """`cancelled`: once set, every request (and a body being sent, and a backoff wait) raises `Cancelled`."""
        self.registry = DOCKER_HUB if registry in ("index.docker.io", DOCKER_HUB_API) else registry
        scheme = "http" if (is_insecure(self.registry) if insecure is None else insecure) else "https"
        self.base_url = f"{scheme}://{api_host(self.registry)}"
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.docker_config = docker_config or _docker_config_path()
        # Read at the first auth challenge (inside request()), so a broken config fails a request
        # with its own message, and registries that need no credentials never read it.
        self._given_creds = credentials
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.cancelled = cancelled
        self._auth_header: Dict[str, str] = {}  # scope -> Authorization value
        self._lock = threading.Lock()
        self._opener = urllib.request.build_opener(_NoRedirect())

    @property
    def _creds(self) -> Optional[Tuple[str, str]]:
        if self._given_creds is None:
            self._given_creds = load_credentials(self.registry, self.docker_config) or ()
        return self._given_creds or None  # type: ignore[return-value]

    # ---------------------------------------------------------------- plumbing

    def _url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else self.base_url + path

    def _check_cancelled(self, what: str) -> None:
        if self.cancelled is not None and self.cancelled.is_set():
            raise Cancelled(f"Stopped before {what} at registry {self.registry}: the build was cancelled",
                            registry=self.registry)

    def _open(self, method: str, url: str, headers: Mapping[str, str], body: Body, auth: Optional[str]):
        data = body() if callable(body) else body
        size = len(data) if isinstance(data, (bytes, bytearray)) else None
        if self.cancelled is not None and data is not None:
            data = _CancellableBody(data, self.cancelled, f"{method} {url}", self._check_cancelled)
        req = urllib.request.Request(url, data=data, method=method)
        for k, v in headers.items():
            req.add_header(k, v)
        if size is not None and not req.has_header("Content-length"):
            req.add_header("Content-Length", str(size))  # what urllib sets for bytes: never a chunked body
        if auth:
            req.add_unredirected_header("Authorization", auth)  # never sent on to a blob CDN
        try:
            return self._opener.open(req, timeout=self.timeout)
        finally:
            if callable(body) and hasattr(data, "close"):
                data.close()  # the body has been sent by the time a response (or error) is back

    def request(
        self,
        method: str,
        path: str,
        *,
        repo: str,
        actions: str = "pull",
        headers: Optional[Mapping[str, str]] = None,
        body: Body = None,
        ok: Tuple[int, ...] = (200,),
        what: str = "",
        retry: bool = True,
    ) -> http.client.HTTPResponse:
        """Send with auth, retries and clear errors. Returns the open response (status in `ok`).

        `retry=False` is for requests that cannot simply be sent again (a PUT into an upload
        session the registry may already have consumed): the caller decides what a retry is.
        """
        retries = self.retries if retry else 0
        scope = f"repository:{repo}:{actions}" if repo else "registry:catalog:*"
        url = self._url(path)
        headers = dict(headers or {})
        attempt = 0
        authed_once = False
        while True:
            attempt += 1
            self._check_cancelled(what or f"{method} {path}")
            try:
                resp = self._open(method, url, headers, body, self._auth_header.get(scope))
                if resp.status in ok:
                    return resp
                resp.close()
                raise RegistryError(f"unexpected HTTP {resp.status}", status=resp.status)
            except urllib.error.HTTPError as e:
                status = e.code
                if status in ok:
                    return e  # type: ignore[return-value]
                if status == 401 and not authed_once:
                    authed_once = True
                    challenge = e.headers.get("WWW-Authenticate", "")
                    e.close()
                    self._authenticate(challenge, scope, repo)
                    attempt -= 1
                    continue
                detail = _error_detail(e)
                if (status >= 500 or status == 429) and attempt <= retries:
                    self._sleep(attempt, e.headers.get("Retry-After"))
                    continue
                raise self._http_error(status, method, repo, what or path, detail) from None
            except RegistryError:
                raise
            except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
                reason = getattr(e, "reason", e)
                refused = isinstance(reason, ConnectionRefusedError) or "refused" in str(reason).lower()
                unresolvable = isinstance(reason, socket.gaierror)
                if not refused and not unresolvable and attempt <= retries:
                    self._sleep(attempt, None)
                    continue
                if not retry and not refused and not unresolvable:
                    raise RegistryError(
                        f"Lost the connection to registry {self.registry} during {what or path}: {reason}",
                        registry=self.registry,
                        repository=repo,
                        status=-1,
                    ) from None
                raise RegistryError(
                    f"Cannot reach registry {self.registry} ({self.base_url}) for repository {repo or '-'}: "
                    f"{reason}. Fix: check that the registry address is right and the registry is running and "
                    f"reachable from this machine (plain HTTP is used only for localhost/127.0.0.1; other "
                    f"registries must serve HTTPS).",
                    registry=self.registry,
                    repository=repo,
                ) from None

    def _sleep(self, attempt: int, retry_after: Optional[str]) -> None:
        delay = self.backoff * (2 ** (attempt - 1))
        if retry_after and retry_after.isdigit():
            delay = max(delay, min(float(retry_after), 30.0))
        if self.cancelled is not None:
            self.cancelled.wait(min(delay, 30.0))  # a cancellation ends the wait; the next request raises
        else:
            time.sleep(min(delay, 30.0))

    def _http_error(self, status: int, method: str, repo: str, what: str, detail: str) -> RegistryError:
        where = f"registry {self.registry}, repository {repo}"
        if status == 401:
            msg = (
                f"Authentication failed at {where} ({what}){detail}. Fix: log in with "
                f"`docker login {self.registry}` (credentials are read from {self.docker_config} "
                f"`auths` or its credential helper) and check the account may access {repo}."
            )
        elif status == 403:
            msg = (
                f"Access denied at {where} ({what}){detail}. Fix: the credentials for {self.registry} "
                f"lack {'push' if method in ('PUT', 'POST', 'PATCH') else 'pull'} permission on {repo}."
            )
        elif status == 404 and "BLOB_UPLOAD_UNKNOWN" in detail:
            msg = (
                f"The upload session at {where} is gone ({what}){detail}. Fix: retry; if it keeps happening, "
                f"a proxy in front of {self.registry} may be dropping answers or the registry restarted."
            )
        elif status == 404:
            msg = (
                f"Not found at {where}: {what}{detail}. Fix: check the image name and tag "
                f"(and that it was pushed to {self.registry})."
            )
        else:
            fix = (
                "retry later or check the registry's health"
                if status >= 500 or status == 429
                else "check the image/request against the registry's logs"
            )
            msg = f"HTTP {status} from {where} on {method} {what}{detail}. Fix: {fix}."
        return RegistryError(msg, registry=self.registry, repository=repo, status=status)

    def _authenticate(self, challenge: str, scope: str, repo: str) -> None:
        scheme, _, params_s = challenge.partition(" ")
        params = dict(re.findall(r'(\w+)="([^"]*)"', params_s))
        basic = None
        if self._creds:
            basic = "Basic " + base64.b64encode(f"{self._creds[0]}:{self._creds[1]}".encode()).decode()
        if scheme.lower() == "basic":
            if not basic:
                raise self._http_error(
                    401, "GET", repo, f"no credentials for {self.registry} in {self.docker_config}", ""
                )
            with self._lock:
                self._auth_header[scope] = basic
            return
        if scheme.lower() != "bearer" or "realm" not in params:
            raise self._http_error(401, "GET", repo, f"unsupported auth challenge {challenge!r}", "")
        query = {"service": params.get("service", "")}
        query["scope"] = params.get("scope") or scope
        token_url = params["realm"] + ("&" if "?" in params["realm"] else "?") + urllib.parse.urlencode(query)
        req = urllib.request.Request(token_url)
        if basic:
            req.add_unredirected_header("Authorization", basic)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                data = json.loads(resp.read())
        except urllib.error.HTTPError as e:
            raise self._http_error(
                401, "GET", repo, f"token request to {params['realm']} (HTTP {e.code})", ""
            ) from None
        except (urllib.error.URLError, OSError, ValueError) as e:
            raise RegistryError(
                f"Cannot get a token for registry {self.registry}, repository {repo} from {params['realm']}: {e}. "
                f"Fix: check network access to the registry's token service.",
                registry=self.registry,
                repository=repo,
            ) from None
        token = data.get("token") or data.get("access_token")
        if not token:
            raise self._http_error(401, "GET", repo, "token service returned no token", "")
        with self._lock:
            self._auth_header[scope] = f"Bearer {token}"

    # ---------------------------------------------------------------- API

    def ping(self) -> None:
        self.request("GET", "/v2/", repo="", ok=(200,), what="/v2/").close()

    def head_manifest(self, repo: str, ref: str) -> Optional[Descriptor]:
        try:
            resp = self.request(
                "HEAD",
                f"/v2/{repo}/manifests/{ref}",
                repo=repo,
                headers={"Accept": MANIFEST_ACCEPT},
                ok=(200, 404),
                what=f"manifest {ref}",
            )
        except RegistryError as e:
            if e.status == 404:
                return None
            raise
        with resp:
            if resp.status == 404:
                return None
            return Descriptor(
                resp.headers.get("Content-Type", ""),
                resp.headers.get("Docker-Content-Digest", ""),
                int(resp.headers.get("Content-Length") or 0),
            )

    def get_manifest(self, repo: str, ref: str) -> Tuple[bytes, str, str]:
        """(raw bytes, media type, digest) of the manifest or index at `ref`, digest-verified."""
        with self.request(
            "GET",
            f"/v2/{repo}/manifests/{ref}",
            repo=repo,
            headers={"Accept": MANIFEST_ACCEPT},
            what=f"manifest {ref} of {self.registry}/{repo}",
        ) as resp:
            data = resp.read()
            media_type = (resp.headers.get("Content-Type") or "").split(";")[0].strip()
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if ref.startswith("sha256:") and ref != digest:
            raise RegistryError(
                f"Manifest {ref} from registry {self.registry}, repository {repo} has digest "
                f"{digest}. Fix: the registry served corrupt data; retry or check the registry.",
                registry=self.registry,
                repository=repo,
            )
        if not media_type or media_type in ("application/json", "text/plain"):
            media_type = json.loads(data).get("mediaType", "")
        return data, media_type, digest

    def resolve(
        self, ref: Union[str, Reference], platform: Tuple[str, str] = ("linux", "amd64")
    ) -> Tuple[Dict[str, Any], str]:
        """The platform manifest (dict) and its digest, following an index/manifest list."""
        r = Reference.parse(ref) if isinstance(ref, str) else ref
        try:
            data, media_type, digest = self.get_manifest(r.repository, r.ref)
        except RegistryError as e:
            if e.status == 404:
                raise RegistryError(
                    f"Image {r} not found: registry {self.registry} has no manifest {r.ref} in repository "
                    f"{r.repository}. Fix: check the base image name and tag, or push the base image to "
                    f"{self.registry} first.",
                    registry=self.registry,
                    repository=r.repository,
                    status=404,
                ) from None
            raise
        doc = json.loads(data)
        if media_type in INDEX_TYPES or "manifests" in doc:
            os_, arch = platform
            for m in doc.get("manifests", []):
                p = m.get("platform") or {}
                if p.get("os") == os_ and p.get("architecture") == arch:
                    return self.resolve(r.with_digest(m["digest"]), platform)
            found = sorted(
                f"{(m.get('platform') or {}).get('os')}/{(m.get('platform') or {}).get('architecture')}"
                for m in doc.get("manifests", [])
            )
            raise RegistryError(
                f"Image {r} has no {os_}/{arch} manifest (it has: {', '.join(found) or 'none'}). "
                f"Fix: use a base image built for {os_}/{arch}.",
                registry=self.registry,
                repository=r.repository,
            )
        if doc.get("schemaVersion") != 2:
            raise RegistryError(
                f"Image {r} is a schema {doc.get('schemaVersion')} manifest. Fix: re-push it "
                f"with a current Docker/OCI client.",
                registry=self.registry,
                repository=r.repository,
            )
        return doc, digest

    def pull(
        self, ref: Union[str, Reference], *, layers: bool = False, platform: Tuple[str, str] = ("linux", "amd64")
    ) -> BaseImage:
        """Resolve `ref` to a platform image; fetch and verify its config (and layers if asked)."""
        r = Reference.parse(ref) if isinstance(ref, str) else ref
        manifest, digest = self.resolve(r, platform)
        config = json.loads(self.fetch_blob(r.repository, manifest["config"]["digest"]))
        if layers:
            for d in manifest.get("layers", []):
                self.fetch_blob_path(r.repository, d["digest"])
        return BaseImage(str(r), manifest, config, digest)

    def blob_exists(self, repo: str, digest: str) -> bool:
        resp = self.request("HEAD", f"/v2/{repo}/blobs/{digest}", repo=repo, ok=(200, 404), what=f"blob {digest}")
        with resp:
            return resp.status == 200

    def _cache_path(self, digest: str) -> Path:
        if self.cache_dir is None:
            raise ValueError("this RegistryClient has no cache_dir")
        algo, _, hexd = digest.partition(":")
        return self.cache_dir / "blobs" / algo / hexd

    def fetch_blob_path(self, repo: str, digest: str) -> Path:
        """Fetch a blob into the content-addressed cache (verified) and return its path."""
        if not _DIGEST_RE.match(digest):
            raise ValueError(f"unsupported digest {digest!r}")
        dest = self._cache_path(digest)
        if dest.exists():
            return dest
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = temp_path(dest)
        for attempt in range(1, self.retries + 2):
            sha = hashlib.sha256()
            try:
                with (
                    self.request("GET", f"/v2/{repo}/blobs/{digest}", repo=repo, what=f"blob {digest}") as resp,
                    open(tmp, "wb") as out,
                ):
                    while True:
                        chunk = resp.read(_CHUNK)
                        if not chunk:
                            break
                        sha.update(chunk)
                        out.write(chunk)
            except (OSError, http.client.HTTPException) as e:
                tmp.unlink(missing_ok=True)
                if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EROFS):
                    raise RegistryError(
                        f"Cannot write blob {digest} of {self.registry}/{repo} into the layer cache "
                        f"{self.cache_dir}: {e.strerror}. Fix: free disk space there (or make it "
                        f"writable), or point the image cache at another directory.",
                        registry=self.registry,
                        repository=repo,
                    ) from None
                if attempt > self.retries:
                    raise RegistryError(
                        f"Download of blob {digest} from registry {self.registry}, repository "
                        f"{repo} kept failing. Fix: retry later.",
                        registry=self.registry,
                        repository=repo,
                    ) from None
                self._sleep(attempt, None)
                continue
            if "sha256:" + sha.hexdigest() != digest:
                tmp.unlink(missing_ok=True)
                raise RegistryError(
                    f"Blob {digest} from registry {self.registry}, repository {repo} does not match "
                    f"its digest (got sha256:{sha.hexdigest()}). Fix: the registry served corrupt "
                    f"data; retry or check the registry.",
                    registry=self.registry,
                    repository=repo,
                )
            os.replace(tmp, dest)
            return dest
        raise AssertionError("unreachable")

    def fetch_blob(self, repo: str, digest: str) -> bytes:
        if self.cache_dir is not None:
            return self.fetch_blob_path(repo, digest).read_bytes()
        with self.request("GET", f"/v2/{repo}/blobs/{digest}", repo=repo, what=f"blob {digest}") as resp:
            data = resp.read()
        if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            raise RegistryError(
                f"Blob {digest} from registry {self.registry}, repository {repo} does not match its "
                f"digest. Fix: retry or check the registry.",
                registry=self.registry,
                repository=repo,
            )
        return data

    def upload_blob(
        self,
        repo: str,
        digest: str,
        size: int,
        body: Union[bytes, Callable[[], BinaryIO]],
        *,
        mount_from: Optional[str] = None,
    ) -> str:
        """Monolithic upload (POST, then PUT ?digest=). Returns "mounted" or "uploaded".

        An upload session is consumed by its PUT. When the PUT's answer is lost (connection reset,
        timeout, 5xx) the registry may or may not have stored the blob, so a retry first asks
        whether the blob exists and otherwise opens a new session; it never PUTs into the old one.
        """
        for attempt in range(1, self.retries + 2):
            query = f"?mount={digest}&from={urllib.parse.quote(mount_from)}" if mount_from else ""
            resp = self.request(
                "POST",
                f"/v2/{repo}/blobs/uploads/{query}",
                repo=repo,
                actions="pull,push",
                headers={"Content-Length": "0"},
                body=b"",
                ok=(201, 202),
                what=f"upload of {digest}",
            )
            with resp:
                status, location = resp.status, resp.headers.get("Location")
            if status == 201:
                return "mounted"
            if not location:
                raise RegistryError(
                    f"Registry {self.registry} started an upload to {repo} without a Location. Fix: "
                    f"use an OCI distribution compliant registry.",
                    registry=self.registry,
                    repository=repo,
                )
            location = urllib.parse.urljoin(self.base_url + "/", location)
            location += ("&" if "?" in location else "?") + "digest=" + urllib.parse.quote(digest)
            headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
            try:
                self.request(
                    "PUT",
                    location,
                    repo=repo,
                    actions="pull,push",
                    headers=headers,
                    body=body,
                    ok=(201, 204),
                    what=f"upload of blob {digest}",
                    retry=False,
                ).close()
                return "uploaded"
            except RegistryError as e:
                transient = (
                    e.status == -1
                    or (e.status is not None and (e.status >= 500 or e.status == 429))
                    or (e.status == 404 and "BLOB_UPLOAD_UNKNOWN" in str(e))
                )
                if not transient:
                    raise
                if self.blob_exists(repo, digest):
                    return "uploaded"  # the lost answer was a success
                if attempt > self.retries:
                    raise RegistryError(
                        f"Upload of blob {digest} to registry {self.registry}, repository {repo} kept failing "
                        f"({attempt} sessions; last: {e}). Fix: retry later or check the registry's health and "
                        f"free space.",
                        registry=self.registry,
                        repository=repo,
                        status=e.status,
                    ) from None
                self._sleep(attempt, None)
        raise AssertionError("unreachable")

    def put_manifest(self, repo: str, ref: str, data: bytes, media_type: str) -> str:
        resp = self.request(
            "PUT",
            f"/v2/{repo}/manifests/{ref}",
            repo=repo,
            actions="pull,push",
            headers={"Content-Type": media_type},
            body=data,
            ok=(201, 200),
            what=f"manifest {ref}",
        )
        with resp:
            return resp.headers.get("Docker-Content-Digest") or "sha256:" + hashlib.sha256(data).hexdigest()


def _error_detail(e: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(e.read() or b"{}")
        errs = body.get("errors") or []
        if errs:
            return ": " + "; ".join(f"{x.get('code')}: {x.get('message')}" for x in errs)
    except (ValueError, OSError, AttributeError):
        pass
    return ""
