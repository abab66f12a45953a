"""How both adapters (Pants, CLI) turn what runtime/serialize.py and runtime/deploy.py answer into errors."""
import pytest

from flytebuild.core.registration import DeployError, SerializationError, deploy_summary


def test_serialization_error_names_entrypoint_kind_file_and_traceback():
    e = SerializationError.from_runtime("src/proj:wf", "proj.tasks:wf", {
        "kind": "serialization_failed", "message": "boom", "file": "src/proj/tasks.py",
        "traceback": "Traceback ...\nRuntimeError: boom\n"})
    assert str(e).startswith(
        "Cannot serialize proj.tasks:wf: serialization failed: boom\n\nTraceback ...\nRuntimeError: boom"
    )
    assert "target src/proj:wf" in str(e) and "file src/proj/tasks.py" in str(e) and "Fix:" in str(e)


def test_serialization_error_without_a_payload_still_says_what_failed():
    assert str(SerializationError.from_runtime("t", "m:wf", {})).startswith(
        "Cannot serialize m:wf: serialization failed: "
    )


def test_deploy_summary_is_the_scripts_json():
    assert deploy_summary('{"counts": {"registered": 2}}', "log") == {"counts": {"registered": 2}}


def test_deploy_error_carries_the_scripts_message_and_fix():
    with pytest.raises(DeployError) as e:
        deploy_summary('{"error": {"kind": "unreachable", "message": "cannot reach x:1", "fix": "start it"}}', "")
    assert str(e.value) == "cannot reach x:1. Fix: start it."


def test_a_crashed_deploy_reports_the_end_of_its_stderr():
    with pytest.raises(DeployError) as e:
        deploy_summary("", "Traceback ...\nSegfault-ish death\n")
    assert "Segfault-ish death" in str(e.value) and "flytebuild bug" in str(e.value)
