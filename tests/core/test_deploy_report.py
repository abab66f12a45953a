"""core/deploy_report.py: the flyte-deploy summary for people and machines."""
import json

from flytebuild.core.bundle import BundleWarning
from flytebuild.core.deploy_report import render_deploy_json, render_deploy_table


def summary(dry_run=False, bundle=None, bytes_uploaded=0):
    return {
        "endpoint": "127.0.0.1:8089",
        "dry_run": dry_run,
        "entities": [
            {"kind": "task", "name": "a.t1", "version": "0123456789abcdef" * 2, "status": "registered", "message": ""},
            {"kind": "task", "name": "a.t2", "version": "f" * 32, "status": "unchanged", "message": ""},
            {"kind": "task", "name": "a.t3", "version": "e" * 32, "status": "failed", "message": "differs"},
            {"kind": "workflow", "name": "a.wf", "version": "d" * 32, "status": "blocked",
             "message": "not registered: its task a.t3 failed"},
        ],
        "bundle": bundle,
        "bytes_uploaded": bytes_uploaded,
    }


def test_table_counts_statuses_and_shows_bundle_and_bytes():
    bundle = {"name": "fastab.tar.gz", "size": 2048, "uploaded": True, "present": False,
              "native_url": "s3://b/fastab.tar.gz"}
    out = render_deploy_table(summary(bundle=bundle, bytes_uploaded=2048),
                              [BundleWarning("a.c", "raw container task")])
    assert "1 registered, 1 unchanged, 1 failed, 1 blocked" in out
    assert "0123456789ab " in out and "0123456789abc" not in out  # short versions in the table
    assert "launch plan" not in out and "not registered: its task a.t3 failed" in out
    assert "code bundle: fastab.tar.gz (2.0 KiB), uploaded to s3://b/fastab.tar.gz" in out
    assert "bytes uploaded: 2048" in out and "warning: a.c: raw container task" in out


def test_dry_run_says_would_and_no_bundle_says_none():
    out = render_deploy_table(summary(dry_run=True))
    assert "dry run" in out and "would register" in out and "1 would register" in out
    assert "code bundle: none (no fast task)" in out


def test_json_carries_full_versions_counts_and_warnings():
    data = json.loads(render_deploy_json(summary(), [BundleWarning("a.c", "w")]))
    assert data["counts"] == {"registered": 1, "unchanged": 1, "failed": 1, "blocked": 1}
    assert data["entities"][0]["version"] == "0123456789abcdef" * 2
    assert data["warnings"] == [{"task": "a.c", "message": "w"}]


def test_pushed_images_are_listed():
    data = summary()
    data["images"] = [
        {"address": "ex:img", "ref": "r/img:abc", "digest": "sha256:" + "1" * 64, "pushed": True, "bytes_uploaded": 10},
        {"address": "ex:rt", "ref": "r/rt:def", "digest": "sha256:" + "2" * 64, "pushed": False, "bytes_uploaded": 0},
    ]
    out = render_deploy_table(data)
    assert "images: 1 pushed (10 bytes), 1 already in the registry" in out
    assert "ex:img  r/img:abc@sha256:111111111111  pushed" in out
