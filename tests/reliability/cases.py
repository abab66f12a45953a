"""The reliability suite's case tables: every bad input and fault the suite drives, with the message a
user must see. Tests parametrize over these tables; docs/reliability.md is generated from them
(`python -m tests.reliability.cases > docs/reliability.md`) and test_docs checks the file matches.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import List, Tuple


@dataclass(frozen=True)
class FieldCase:
    kind: str  # image | workflow | reference
    field: str
    value: str
    expect: Tuple[str, ...]  # fragments of the message (besides the field name and the value)

    @property
    def id(self) -> str:
        return f"{self.kind}.{self.field}={self.value!r}"


# Bad values of every field kind that reaches a registry, a path or FlyteAdmin.
FIELD_CASES: List[FieldCase] = [
    # image names become `<dist>/<name>.oci` (and the default repository)
    FieldCase("image", "image_name", "../evil", ("path separator",)),
    FieldCase("image", "image_name", "a/b", ("path separator",)),
    FieldCase("image", "image_name", "..", ("path separator",)),
    FieldCase("image", "image_name", ".hidden", ("start with a letter or digit",)),
    FieldCase("image", "image_name", "two words", ("start with a letter or digit",)),
    FieldCase("image", "image_name", "-dash", ("start with a letter or digit",)),
    # base: a full image reference
    FieldCase("image", "base", "http://exa mple:abc/x", ("not a valid image reference", "whitespace")),
    FieldCase("image", "base", "https://ghcr.io/org/python:3.11", ("URL scheme",)),
    FieldCase("image", "base", "Python:3.11", ("repository", "lowercase")),
    FieldCase("image", "base", "localhost:5000/x:-bad", ("tag",)),
    FieldCase("image", "base", "localhost:5000/x@sha256:1234", ("sha256 digest",)),
    FieldCase("image", "base", "localhost:99999/python:3.11", ("out of range",)),
    FieldCase("image", "base", "localhost:5000/a//b:1", ("repository",)),
    FieldCase("image", "base", "exa_mple.com/python:3", ("host name",)),
    # registry: host[:port][/path]
    FieldCase("image", "registry", "http://localhost:5000", ("URL scheme",)),
    FieldCase("image", "registry", "exa mple", ("whitespace",)),
    FieldCase("image", "registry", "localhost:abc", ("host name",)),
    FieldCase("image", "registry", "a_b.com", ("host name",)),
    FieldCase("image", "registry", "localhost:5000/UPPER", ("lowercase",)),
    FieldCase("image", "registry", "localhost:0", ("out of range",)),
    # repository: the OCI distribution spec's name grammar
    FieldCase("image", "repository", "Team/App", ("OCI repository name",)),
    FieldCase("image", "repository", "-x", ("OCI repository name",)),
    FieldCase("image", "repository", "a//b", ("OCI repository name",)),
    FieldCase("image", "repository", "team/", ("OCI repository name",)),
    FieldCase("image", "repository", "a..b", ("OCI repository name",)),
    FieldCase("image", "repository", "x y", ("OCI repository name",)),
    # python: the interpreter pyflyte-execute's shebang names
    FieldCase("image", "python", "python3", ("absolute path",)),
    FieldCase("image", "python", "bin/python", ("absolute path",)),
    FieldCase("image", "python", "/usr/bin/python 3", ("whitespace",)),
    FieldCase("image", "python", "/usr/../bin/python3", ("without `..`",)),
    FieldCase("image", "python", "/usr/bin/", ("interpreter file",)),
    # env names
    FieldCase("image", "env", "1BAD", ("environment variable name",)),
    FieldCase("image", "env", "A-B", ("environment variable name",)),
    # Flyte project / domain ids
    FieldCase("workflow", "project", "Flyte Snacks", ("lowercase",)),
    FieldCase("workflow", "project", "UPPER", ("lowercase",)),
    FieldCase("workflow", "project", "-x", ("lowercase",)),
    FieldCase("workflow", "project", "a_b", ("lowercase",)),
    FieldCase("workflow", "project", "p" * 64, ("1-63",)),
    FieldCase("workflow", "domain", "Dev", ("lowercase",)),
    FieldCase("workflow", "domain", "prod uction", ("lowercase",)),
    FieldCase("workflow", "domain", "d.e", ("lowercase",)),
    # a reference's (flyte_reference / [references.NAME]) ids reach FlyteAdmin as they are
    FieldCase("reference", "project", "Flyte Snacks", ("lowercase",)),
    FieldCase("reference", "domain", "Dev", ("lowercase",)),
    FieldCase("reference", "kind", "nope", ("not one of task, workflow, launch_plan",)),
    FieldCase("reference", "entity_name", "two words", ("whitespace",)),
]

# Values that must pass (no false alarms on what registries and FlyteAdmin accept).
GOOD_VALUES: List[Tuple[str, str]] = [
    ("base", "localhost:5000/flytebuild/python:3.11"),
    ("base", "python:3.11"),
    ("base", "ghcr.io/org/team/app@sha256:" + "a" * 64),
    ("base", "[::1]:5000/x:y"),
    ("base", "registry.example.com:443/a_b/c__d/e-f.g:v1.2-rc_3"),
    ("registry", "localhost:5000"),
    ("registry", "ghcr.io/my-org"),
    ("registry", "127.0.0.1:5000"),
    ("repository", "flytebuild/baked"),
    ("repository", "a-b/c__d/e.f"),
    ("image_name", "baked"),
    ("image_name", "mixed-runtime_2.x"),
    ("python", "/usr/bin/python3"),
    ("python", "/opt/venv/bin/python3.11"),
    ("project", "flytesnacks"),
    ("domain", "development"),
]

# Front ends a field case runs through: the pure core check, and the CLI's commands (in-process,
# through main(), so exit code and stderr are what a user gets).
CLI_COMMANDS = ("plan", "package", "deploy")


@dataclass(frozen=True)
class FaultCase:
    operation: str  # what the client was doing
    method: str
    path: str  # regex on the request path
    action: str  # faultproxy action
    times: int  # 1: transient, -1: persistent
    outcome: str  # "pushed" (recovered, tag correct) | "error"
    expect: Tuple[str, ...] = ()

    @property
    def id(self) -> str:
        return f"{self.operation}-{self.action}-{'once' if self.times == 1 else 'always'}"


_OPS = [
    ("tag check", "HEAD", r"/manifests/"),
    ("blob check", "HEAD", r"/blobs/sha256:"),
    ("upload start", "POST", r"/blobs/uploads/"),
    ("blob PUT", "PUT", r"/blobs/uploads/"),
    ("manifest PUT", "PUT", r"/manifests/"),
]

# A lost answer to a PUT (drop) is a success the client cannot see: the blob's existence, or the tag's digest,
# is checked before anything is sent again, so even a persistent drop ends in a correct push.
_CHECKED_AFTER_LOSS = ("blob PUT", "manifest PUT")

FAULT_CASES: List[FaultCase] = []
for _op, _method, _path in _OPS:
    for _action in ("reset", "drop", "status"):
        FAULT_CASES.append(FaultCase(_op, _method, _path, _action, 1, "pushed"))
        if _action == "drop" and _op in _CHECKED_AFTER_LOSS:
            FAULT_CASES.append(FaultCase(_op, _method, _path, _action, -1, "pushed"))
        else:
            FAULT_CASES.append(FaultCase(_op, _method, _path, _action, -1, "error", ("registry 127.0.0.1", "Fix:")))
    FAULT_CASES.append(FaultCase(_op, _method, _path, "delay", -1, "error", ("registry 127.0.0.1", "Fix:")))


@dataclass(frozen=True)
class ConfigCase:
    name: str
    config: str  # the config.json text ("" = none written)
    expect: Tuple[str, ...]


DOCKER_CONFIG_CASES: List[ConfigCase] = [
    ConfigCase("malformed JSON", '{"auths": {', ("is not valid JSON", "config.json")),
    ConfigCase("not an object", '["x"]', ("is not a JSON object",)),
    ConfigCase("auths not an object", '{"auths": []}', ("`auths` that is not an object",)),
    ConfigCase("auth not base64", '{"auths": {"REGISTRY": {"auth": "%%%not-base64"}}}', ("not base64",)),
    ConfigCase("auth without colon", '{"auths": {"REGISTRY": {"auth": "dXNlcm9ubHk="}}}', ("without a `:`",)),
    ConfigCase("missing credential helper", '{"credsStore": "nope-helper"}', ("docker-credential-nope-helper",
                                                                             "not on PATH")),
    ConfigCase("entry not an object", '{"auths": {"REGISTRY": "x"}}', ("not an object",)),
    ConfigCase("no credentials for an auth registry", '{"auths": {}}', ("Authentication failed", "no credentials",
                                                                        "config.json")),
    ConfigCase("wrong password", '{"auths": {"REGISTRY": {"auth": "dXNlcjp3cm9uZw=="}}}', ("Authentication failed",
                                                                                           "docker login")),
]


@dataclass(frozen=True)
class Scenario:
    """A single end-to-end case with its expected message and result."""

    name: str
    expect: str
    result: str


SCENARIOS: List[Scenario] = [
    Scenario("tag exists with another fingerprint label", "already exists in registry ... with other content; Fix: "
             "delete the tag ... or set `repository`", "error, nothing pushed, tag unchanged"),
    Scenario("tag exists without a fingerprint label (pushed by another tool)", "carries no flytebuild fingerprint "
             "label", "error, nothing pushed, tag unchanged"),
    Scenario("tag exists with this image's fingerprint", "-", "reused: nothing built or pushed"),
    Scenario("publish() over a foreign tag", "TagConflict", "error, manifest not overwritten"),
    Scenario("lost answer after the registry stored a blob", "-", "retry sees the blob exists: no second PUT"),
    Scenario("layer cache on a full disk", "No space left on the device holding ...; Fix: free disk space",
             "error, no traceback, no tag"),
    Scenario("base layer download into a full cache", "Cannot write blob ... into the layer cache",
             "error, no traceback"),
    Scenario("user module blocks at import (CLI plan)", "did not finish within N s ... raise `user_code_timeout`",
             "exit 1 in ~N s, target named"),
    Scenario("user module blocks at import (pants flyte-plan)", "did not finish within N s ... "
             "[flyte].user_code_timeout", "exit 1, target named"),
    Scenario("deploy to a project FlyteAdmin does not have", "project `x` does not exist ... nothing was uploaded",
             "exit 1, 0 uploads, 0 entities"),
    Scenario("deploy to a domain the project lacks", "has no domain", "exit 1, 0 uploads, 0 entities"),
    Scenario("FlyteAdmin not running", "cannot reach FlyteAdmin", "exit 1, nothing registered"),
    Scenario("a complete deploy run again", "-", "every entity `unchanged`, nothing registered, no conflict"),
    Scenario("SIGINT during CLI deploy", "interrupted", "exit 130, no traceback"),
    Scenario("deploy killed at a random point, 20 times, then re-run", "interrupted: what was registered so far is "
             "kept and consistent (SIGINT; no traceback after SIGINT or SIGTERM)",
             "server holds exactly the plan's entities; none duplicated or dangling"),
    Scenario("unrelated broken image (CLI plan of another workflow)", "-", "plan succeeds"),
    Scenario("unrelated broken image (pants flyte-plan of another workflow)", "-", "plan succeeds"),
    Scenario("flyte_reference with a bad `kind` elsewhere (pants flyte-plan of a workflow naming images in code)",
             "-", "plan succeeds; `pants run` of the reference fails naming `kind`"),
    Scenario("image_name `../evil` with OCI output (Pants)", "the `image_name` field ... path separator",
             "exit 1, nothing written outside dist/"),
    Scenario("image_name `../evil` with OCI output (CLI)", "`image_name` in [images.img] ... path separator",
             "exit 1, nothing written outside --dist"),
    Scenario("image_name `../evil` with OCI output (Bazel)", "`image_name` ... path separator",
             "build fails, nothing written outside bazel-out"),
    Scenario("flyte_image target named `sub/evil` (Bazel allows `/`; the image name defaults to it)",
             "`image_name` ... 'sub/evil' ... path separator", "build fails, nothing written outside bazel-out"),
    Scenario("workflow table named `..` / `../evil` (CLI package)", 'The table name [workflows.".."] is \'..\' ...',
             "exit 1, nothing written outside --dist"),
    Scenario("image table named `..` / `../evil` (CLI package)", 'The table name [images.".."] is \'..\' ...',
             "exit 1, nothing written outside --dist"),
    Scenario("flyte_workflow target named `..` (Pants package: `dist/<dir>/<name>/`)",
             "The target name of flyte_workflow ... is '..': ... path separator", "exit 1, nothing written in dist/"),
    Scenario("bad base in Pants BUILD", "The `base` field of flyte_image ... not a valid image reference",
             "exit 1 before resolving"),
    Scenario("bad registry in Pants BUILD", "The `registry` field of flyte_image", "exit 1 before resolving"),
    Scenario("bad project in Pants BUILD", "The `project` field of flyte_workflow", "exit 1 before introspection"),
    Scenario("verify: python path missing in the image (static)", "the image's python /nope/bin/python3 ... is not "
             "a file in the image, so the task cannot start; Fix: set the flyte_image's `python`",
             "verify fails, task named"),
    Scenario("verify: python path missing in the image (docker, a real engine)", "the image's python "
             "/nope/bin/python3 cannot start (is the flyte_image's `python` right?); Fix: set the flyte_image's "
             "`python`", "verify fails, task named"),
    Scenario("Ctrl-C on `pants package` (image_output=push) during a slow push", "-",
             "client stops at once; no registry request after the grace; no tag; a re-run pushes the whole image"),
    Scenario("Ctrl-C on `pants publish` during a slow push", "-",
             "client stops at once; no registry request after the grace; no tag; a re-run pushes the whole image"),
    Scenario("Ctrl-C on `pants flyte-deploy` while it pushes its image", "-",
             "no tag, nothing uploaded to or registered with FlyteAdmin"),
    Scenario("Ctrl-C on `pants flyte-deploy` while it registers (FlyteAdmin answers in 1 s)", "-",
             "no FlyteAdmin call after it, nothing dangling; a re-run registers every entity once"),
    Scenario("SIGINT to the push `pants publish` runs (`python -m flytebuild.service.push`)",
             "interrupted: ... was not tagged", "exit 130, queued uploads stopped, no tag"),
]


def count() -> int:
    """Cases the suite runs (each row of each table is at least one test)."""
    return (len(FIELD_CASES) * (1 + len(CLI_COMMANDS)) + len(GOOD_VALUES) + len(FAULT_CASES)
            + len(DOCKER_CONFIG_CASES) + len(SCENARIOS))


def render_markdown() -> str:
    lines = [
        "# Reliability: bad input and faults",
        "",
        "<!-- generated by `python -m tests.reliability.cases` from tests/reliability/cases.py; "
        "tests/reliability/test_docs.py checks it is current -->",
        "",
        "flytebuild checks every field where it is read, before anything resolves, builds or runs, and answers",
        "bad input and faults with one paragraph naming the target, the field and the fix, a non-zero exit and",
        "no traceback of its own. Nothing half-done claims success: no tag is created for a failed image, no",
        "entity is registered after a refused check. The suite in `tests/reliability/` drives every row below",
        f"against real parts ({count()} cases): a real registry behind a fault-injecting proxy, the stand-in",
        "FlyteAdmin, real signals, and real `./pants`, `flytebuild` and Bazel runs.",
        "",
        "## Choices",
        "",
        "- **Tags are trusted only with our fingerprint.** An existing tag is reused only when its manifest's config",
        "  carries the `org.flytebuild.fingerprint` label equal to the plan's (one extra GET of a small blob);",
        "  anything else is an error naming the image and the registry, and the tag is never overwritten.",
        "- **Tasks name the content tag, never a digest, on every path.** The tag is the image's content version",
        "  and is trusted only with its fingerprint label, so pinning added nothing but a difference between",
        "  `flyte-deploy --no-push-images` (which cannot know a digest) and a normal deploy; both now register",
        "  identical entities, and a later normal deploy finds everything already registered.",
        "- **User code has a time limit.** Introspection, serialization and pod-template validation stop after",
        "  `[flyte].user_code_timeout` (Pants) / `user_code_timeout` (flytebuild.toml) /",
        "  `FLYTEBUILD_USER_CODE_TIMEOUT` seconds (default 600) with a message naming the target.",
        "- **Blob uploads retry by the protocol.** A PUT whose answer was lost is never sent again into the same",
        "  (consumed) upload session: the retry asks whether the blob exists and otherwise opens a new session.",
        "- **The project is checked before anything is uploaded.** `flyte-deploy` asks FlyteAdmin for the project",
        "  (and its domains) first; a missing one fails with nothing uploaded or registered.",
        "- **Ctrl-C stops pushes, not only the client.** Inside a Pants rule a push runs on a thread while the rule",
        "  waits on a tiny process that Pants kills on Ctrl-C; its end (or the rule's) sets a flag the registry",
        "  client checks before every request and every block it sends. The manifest is pushed last, so no tag",
        "  appears after Ctrl-C and none without its blobs. Registration runs in a process Pants stops, and it",
        "  creates tasks before the workflows and launch plans that name them, so nothing is left dangling.",
        "",
        "## Bad field values",
        "",
        "Each row runs through the pure check and through `flytebuild plan`, `package` and `deploy`; a handful",
        "also through `./pants` and Bazel (see the end-to-end table).",
        "",
        "| case | expected message | result |",
        "|---|---|---|",
    ]
    for c in FIELD_CASES:
        value = c.value if len(c.value) < 40 else c.value[:20] + "…"
        lines.append(f"| {c.kind} `{c.field}` = `{value}` | names `{c.field}`, the value and: "
                     f"{'; '.join(c.expect)}; Fix: … | exit 1, nothing built, written or registered |")
    lines += ["", "Accepted without complaint: " + ", ".join(f"`{f}={v}`" for f, v in GOOD_VALUES) + ".", "",
              "## Registry faults (real registry behind a fault proxy)", "",
              "`once` is a transient fault (the client must recover and the tag must name the right image);",
              "`always` a persistent one (a clear error, and no tag).", "",
              "| case | expected message | result |", "|---|---|---|"]
    for f in FAULT_CASES:
        expect = "-" if f.outcome == "pushed" else "names the registry and repository; Fix: …"
        result = "recovered: pushed, tag names the built digest" if f.outcome == "pushed" else \
            "error, no tag created"
        lines.append(f"| {f.operation}: {f.action} {'once' if f.times == 1 else 'always'} | {expect} | {result} |")
    lines += ["", "## Docker config problems", "", "| case | expected message | result |", "|---|---|---|"]
    for c in DOCKER_CONFIG_CASES:
        lines.append(f"| {c.name} | {'; '.join(c.expect)} (with the real path, incl. `$DOCKER_CONFIG`) | "
                     f"error, nothing pushed |")
    lines += ["", "## End to end", "", "| case | expected message | result |", "|---|---|---|"]
    for s in SCENARIOS:
        lines.append(f"| {s.name} | {s.expect} | {s.result} |")
    lines += ["", "## Running the suite", "",
              "The tables above are `tests/reliability/cases.py`; after changing it, regenerate this page from the",
              "repository root (the suite's `test_docs.py` fails while it is stale):", "",
              "<!-- tested: tests/reliability/test_docs.py::test_doc_is_generated_from_the_case_tables -->",
              "```", "python -m tests.reliability.cases > docs/reliability.md", "```"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render_markdown())
