"""The deploy ledger: what this checkout registered at a FlyteAdmin, with which content digest.

A cache, never the truth. runtime/deploy.py trusts a hit (same id, same digest) without asking FlyteAdmin, so a
deploy where nothing changed makes no gRPC call at all; a miss or a mismatch falls back to Get as before. Whenever
a deploy talks to FlyteAdmin anyway it first checks one entity the ledger vouches for; if FlyteAdmin no longer has
it (a wiped or replaced server), that whole partition is forgotten and every entity is checked again.

One JSON file per (endpoint, project, domain), under the directory the front end gives (Pants: `.pants.d`'s
`flytebuild/ledger`, the CLI: `$FLYTEBUILD_CACHE_DIR/ledger`, default `~/.cache/flytebuild/ledger`). Deleting the
directory is always safe: the next deploy asks FlyteAdmin about every entity. Concurrent deploys merge their
entries under a file lock; a file that cannot be read counts as empty.

Stdlib only, Python >= 3.9: runs in the user's environment, before grpc or flyteidl are imported, and pantsd loads
this very file too (service/runtime_package.py `stdlib_module`), so that the Pants rule decides "the ledger vouches
for every entity" with the same digests as deploy.py, without starting a process (`judged` + `vouched`).

What that skip means for a wiped server: with every entity vouched for, a deploy asks FlyteAdmin nothing, so it
cannot notice the server lost them; the next deploy that has anything to register checks one vouched entity first
and registers the partition again. That was already deploy.py's behaviour for every front end (the CLI runs it);
the rule-level skip is the same decision taken earlier, never a different one.
"""
from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import typing

FORMAT = 1


def entity_digest(kind: str, fast: bool, raw: bytes, pins: typing.Mapping[str, str]) -> str:
    """The content a deploy would register: the serialized entity plus the image pins that apply to it."""
    h = hashlib.sha256()
    h.update(f"{FORMAT}\0{kind}\0{int(bool(fast))}\0".encode())
    h.update(raw)
    for tag in sorted(pins):
        if tag.encode() in raw:  # only the pins this entity names: another image's push changes nothing here
            h.update(f"\0{tag}\0{pins[tag]}".encode())
    return h.hexdigest()


def server_key(admin: typing.Mapping[str, typing.Any]) -> str:
    """Which FlyteAdmin: the endpoint, or the flytekit config file's content (its endpoint is inside it)."""
    endpoint = (admin.get("endpoint") or "").replace("dns:///", "")
    if admin.get("config"):
        try:
            with open(admin["config"], "rb") as f:
                config = hashlib.sha256(f.read()).hexdigest()
        except OSError:
            config = "unreadable:" + str(admin["config"])
        return f"config:{config}|{endpoint}|{admin.get('insecure')}"
    return f"grpc:{endpoint}|{bool(admin.get('insecure'))}"


def entity_key(kind: str, name: str, version: str) -> str:
    return f"{kind}/{name}/{version}"


def of_request(req: typing.Mapping[str, typing.Any]) -> typing.Optional["Ledger"]:
    """The ledger a deploy request names (`ledger.dir`), for its FlyteAdmin; None without one."""
    directory = (req.get("ledger") or {}).get("dir")
    return Ledger(directory, server_key(req.get("admin") or {})) if directory else None


def entity_bytes(item: typing.Mapping[str, typing.Any], read_file: typing.Callable[[str], bytes]) -> bytes:
    """A request entity's serialized bytes: inline (`data`, base64) or read from its `file`. Inline, a deploy of
    a thousand entities is one request file, not a thousand small files to create first."""
    data = item.get("data")
    return base64.b64decode(data) if data is not None else read_file(item["file"])


def judged(req: typing.Mapping[str, typing.Any], ledger: typing.Optional["Ledger"],
           read_file: typing.Callable[[str], bytes]) -> typing.List[dict]:
    """The request's entities with their bytes (`raw`, see `entity_bytes`), content digests and whether the
    ledger vouches for them (`hit`). The digests cover the request's own `pin_images`: the pins the deploy would
    register."""
    pins = req.get("pin_images") or {}
    out = []
    for item in req.get("entities") or []:
        raw = entity_bytes(item, read_file)
        entry = {k: v for k, v in item.items() if k != "data"}
        entry.update(raw=raw, digest="", hit=False)
        if ledger is not None:
            entry["digest"] = entity_digest(item["kind"], bool(item.get("fast")), raw, pins)
            ident = [item.get(k) for k in ("project", "domain", "name", "version")]
            entry["hit"] = all(ident) and ledger.hit(ident[0], ident[1], item["kind"], ident[2], ident[3],
                                                     entry["digest"])
        out.append(entry)
    return out


RANK = {"task": 0, "workflow": 1, "launch_plan": 2}  # the order summaries list entities in


def vouched(req: typing.Mapping[str, typing.Any], items: typing.Sequence[dict],
            size: typing.Callable[[str], int]) -> typing.Optional[typing.Tuple[dict, typing.List[str]]]:
    """When the ledger vouches for every entity (`judged`): deploy.py's summary without a single call to
    FlyteAdmin, and its progress lines; else None. The bundle is neither probed nor uploaded: it goes up only
    when something that runs from it is registered, and here nothing is."""
    if not items or not all(i["hit"] for i in items):
        return None
    unique: typing.Dict[tuple, dict] = {}
    for i in items:
        unique.setdefault((i["kind"], i["project"], i["domain"], i["name"], i["version"]), i)
    rows = [{"kind": k[0], "project": k[1], "domain": k[2], "name": k[3], "version": k[4], "status": "unchanged",
             "message": "", "fast": bool(i.get("fast"))}
            for k, i in sorted(unique.items(), key=lambda kv: (RANK.get(kv[0][0], 3), kv[0][3], kv[0][4]))]
    lines = [f"{'unchanged':>14}  {r['kind']:<11} {r['name']}  {r['version']}  (ledger)" for r in rows]
    bundle = req.get("bundle")
    admin = req.get("admin") or {}
    summary = {
        "endpoint": admin.get("endpoint") or admin.get("config"),
        "dry_run": bool(req.get("dry_run")),
        "entities": rows,
        "bundle": {"name": bundle["name"], "size": size(bundle["path"]), "uploaded": False,
                   "present": None, "native_url": None} if bundle else None,
        "bytes_uploaded": 0,
        "counts": {"unchanged": len(rows)},
        "ledger": {"hits": len(rows), "calls": 0},
    }
    return summary, lines


class Ledger:
    def __init__(self, directory: str, server: str):
        self.directory = directory
        self.server = server
        self._parts: typing.Dict[typing.Tuple[str, str], dict] = {}
        self._new: typing.Dict[typing.Tuple[str, str], dict] = {}
        self._forgotten: typing.Set[typing.Tuple[str, str]] = set()

    def _path(self, project: str, domain: str) -> str:
        name = hashlib.sha256(f"{self.server}\0{project}\0{domain}".encode()).hexdigest()[:32]
        return os.path.join(self.directory, f"{name}.json")

    def _read(self, project: str, domain: str) -> dict:
        try:
            with open(self._path(project, domain), encoding="utf-8") as f:
                data = json.load(f)
            if data.get("format") == FORMAT and data.get("server") == self.server:
                return data
        except (OSError, ValueError, AttributeError):
            pass
        return {}

    def _part(self, project: str, domain: str) -> dict:
        key = (project, domain)
        if key not in self._parts:
            self._parts[key] = self._read(project, domain)
        return self._parts[key]

    def hit(self, project: str, domain: str, kind: str, name: str, version: str, digest: str) -> bool:
        return self._part(project, domain).get("entities", {}).get(entity_key(kind, name, version)) == digest

    def bundle(self, project: str, domain: str, name: str) -> typing.Optional[str]:
        """The native URL a content-addressed bundle was uploaded to (or found at), if recorded."""
        return self._part(project, domain).get("bundles", {}).get(name)

    def forget(self, project: str, domain: str) -> None:
        """FlyteAdmin lost what this partition vouches for: drop it (also on disk, at save)."""
        self._parts[(project, domain)] = {}
        self._new.pop((project, domain), None)
        self._forgotten.add((project, domain))

    def record(self, project: str, domain: str, kind: str, name: str, version: str, digest: str) -> None:
        self._new.setdefault((project, domain), {"entities": {}, "bundles": {}})["entities"][
            entity_key(kind, name, version)] = digest

    def record_bundle(self, project: str, domain: str, name: str, native_url: str) -> None:
        self._new.setdefault((project, domain), {"entities": {}, "bundles": {}})["bundles"][name] = native_url

    def save(self) -> None:
        """Merge what this deploy learned into the files (another deploy may have written meanwhile)."""
        touched = set(self._new) | self._forgotten
        if not touched:
            return
        os.makedirs(self.directory, exist_ok=True)
        with _locked(os.path.join(self.directory, ".lock")):
            for project, domain in sorted(touched):
                current = {} if (project, domain) in self._forgotten else self._read(project, domain)
                new = self._new.get((project, domain), {})
                data = {
                    "format": FORMAT, "server": self.server, "project": project, "domain": domain,
                    "entities": {**current.get("entities", {}), **new.get("entities", {})},
                    "bundles": {**current.get("bundles", {}), **new.get("bundles", {})},
                }
                path = self._path(project, domain)
                tmp = f"{path}.{os.getpid()}.tmp"
                with open(tmp, "w", encoding="utf-8") as f:
                    json.dump(data, f, sort_keys=True, indent=0)
                os.replace(tmp, path)


@contextlib.contextmanager
def _locked(path: str) -> typing.Iterator[None]:
    with open(path, "a+") as f:
        try:
            import fcntl

            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        except (ImportError, OSError):  # no flock (not POSIX): last writer wins, which only costs Gets later
            pass
        yield
