from flytebuild.core.errors import FlytebuildError, IntrospectionError, LockfileError, PlanError


def test_plain_message_is_kept():
    assert str(FlytebuildError("x:y is a `file` target, not a `flyte_image`. Fix: point it.")) == (
        "x:y is a `file` target, not a `flyte_image`. Fix: point it."
    )


def test_paragraph_shape():
    err = PlanError("Image `gpu` is undefined", target="examples/a:wf", file="examples/a/wf.py", fix="add it")
    assert str(err) == "Image `gpu` is undefined (target examples/a:wf, file examples/a/wf.py). Fix: add it."
    assert isinstance(err, FlytebuildError) and isinstance(LockfileError("x"), FlytebuildError)


def test_introspection_error_appends_user_traceback_only():
    err = IntrospectionError(
        "import_error", "boom", file="a.py", traceback="Traceback:\n  a.py line 1\nValueError: boom"
    )
    first, _, rest = str(err).partition("\n\n")
    assert "import error: boom" in first and "a.py" in first and "Fix:" in first
    assert rest.endswith("ValueError: boom")
    assert "flytebuild/core" not in str(err)
