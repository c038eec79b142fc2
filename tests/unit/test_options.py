"""Task declaration: options are validated when the decorator runs."""

from __future__ import annotations

import pytest

import exoflow_spark as xf


def test_bare_decorator_and_defaults() -> None:
    @xf.task
    def double(x):
        return x * 2

    assert isinstance(double, xf.Task)
    assert double.name == "double"
    assert double.opts == xf.TaskOptions()
    assert double.opts.checkpoint is False and double.opts.deterministic is True
    assert double.fn(21) == 42


def test_options_with_arguments() -> None:
    @xf.task(
        checkpoint="async",
        deterministic=False,
        max_retries=1,
        retry_exceptions=True,
        catch_exceptions=True,
        wait_until_committed=["a", "b"],
        name="custom",
    )
    def f(x):
        return x

    assert f.name == "custom"
    assert f.opts.checkpoint == "async"
    assert f.opts.wait_until_committed == ("a", "b")
    assert f.opts.checkpoint_label == "async"
    g = f.options(checkpoint=True)
    assert g.opts.checkpoint is True and f.opts.checkpoint == "async"


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"checkpoint": "sync"}, "checkpoint='sync' is not valid"),
        ({"checkpoint": 1}, "checkpoint=1 is not valid"),
        ({"checkpoint": None}, "checkpoint=None is not valid"),
        ({"max_retries": -1}, "max_retries=-1 must be an integer >= 0"),
        ({"max_retries": 1.5}, "max_retries=1.5"),
        ({"deterministic": "yes"}, "deterministic='yes' must be True or False"),
        ({"wait_until_committed": "upstream"}, "wait_until_committed=['upstream']"),
        ({"wait_until_committed": [3]}, "must contain task names"),
        ({"name": "../etc"}, "task name '../etc' is not allowed"),
        ({"name": "a/b"}, "task name 'a/b' is not allowed"),
    ],
)
def test_bad_options_fail_at_decoration(kwargs: dict, fragment: str) -> None:
    with pytest.raises(xf.InvalidOptionError) as info:

        @xf.task(**kwargs)
        def f(x):
            return x

    assert fragment in str(info.value)
    assert isinstance(info.value, xf.ExoflowError)


def test_unknown_option_in_options_call() -> None:
    @xf.task
    def f(x):
        return x

    with pytest.raises(xf.InvalidOptionError, match=r"unknown option.*checkpoints"):
        f.options(checkpoints=True)


def test_calling_a_task_directly_explains_bind() -> None:
    @xf.task
    def f(x):
        return x

    with pytest.raises(TypeError, match=r"use f\.bind\(\.\.\.\)"):
        f(1)


def test_option_defaults_have_one_source() -> None:
    """@task and @streaming_task take their defaults from TaskOptions' fields."""
    import dataclasses
    import inspect

    from exoflow_spark.core.options import TASK_DEFAULTS, UNDECLARED

    fields = {f.name: f for f in dataclasses.fields(xf.TaskOptions)}
    for decorator in (xf.task, xf.streaming_task):
        params = inspect.signature(decorator).parameters
        shared = [p for p in params if p in fields]
        assert "deterministic" in shared and "max_retries" in shared
        for p in shared:
            if decorator is xf.task and p == "checkpoint":
                # not declared: the run's policy decides (False under the default policy)
                assert params[p].default is UNDECLARED
                continue
            assert params[p].default == getattr(TASK_DEFAULTS, p), (decorator.__name__, p)
    assert xf.TaskOptions() == TASK_DEFAULTS


@xf.task
def one_task():
    return 1


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (lambda: xf.run(one_task.bind(), workflow_id="x", recovery="fast"), "recovery='fast'"),
        (lambda: xf.resume(one_task.bind(), workflow_id="x", recovery=None), "recovery=None"),
        (lambda: xf.explain("x", recovery="replay"), "recovery='replay'"),
        (lambda: xf.run(one_task.bind(), checkpoint_format="orc"), "checkpoint_format='orc'"),
        (lambda: xf.run(one_task.bind(), max_parallel=0), "max_parallel=0"),
        (lambda: xf.run(one_task.bind(), max_parallel=2.5), "max_parallel=2.5"),
        (lambda: xf.run(one_task.bind(), progress="loud"), "progress='loud'"),
        (lambda: xf.run(one_task, workflow_id="x"), "expects a DAG node"),
        (lambda: xf.explain(one_task.bind()), "needs workflow_id="),
        (lambda: xf.show_dag(42), "show_dag expects a workflow id or a DAG node"),
        (lambda: xf.show_dag(one_task.bind(), format="gif"), "format='gif'"),
        (lambda: xf.run(one_task.bind(), workflow_id="x", storage=""), "storage='' is empty"),
        (lambda: xf.run(one_task.bind(), storage="  "), "storage='  ' is empty"),
        (lambda: xf.get_status("x", storage=7), "not int 7"),
        (lambda: xf.set_default_storage(123), "set_default_storage(...) must be"),
        (lambda: xf.set_default_storage(""), "set_default_storage(...) is empty"),
        (lambda: xf.run(one_task.bind(), replace="yes"), "replace='yes'"),
    ],
)
def test_bad_argument_values_raise_invalid_option_error(call, fragment: str) -> None:
    """Every bad option or argument value is an InvalidOptionError (a ValueError too),
    raised before Spark or storage is touched."""
    with pytest.raises(xf.InvalidOptionError) as info:
        call()
    assert fragment in str(info.value)
    assert isinstance(info.value, ValueError) and isinstance(info.value, xf.ExoflowError)
