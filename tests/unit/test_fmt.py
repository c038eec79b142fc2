"""Message helpers: the one line of a Spark failure."""

from __future__ import annotations

import pytest

from exoflow_spark.core.fmt import error_line
from exoflow_spark.errors import TaskFailedError


class Py4JJavaError(Exception):
    """Stands in for py4j's class: only its name and text matter to error_line."""


JAVA = (
    "An error occurred while calling o58.getFileSystem.\n"
    ': org.apache.hadoop.fs.UnsupportedFileSystemException: No FileSystem for scheme "foo"\n'
    "\tat org.apache.hadoop.fs.FileSystem.getFileSystemClass(FileSystem.java:3586)\n"
    "\tat org.apache.hadoop.fs.FileSystem.createFileSystem(FileSystem.java:3617)\n"
)


class AnalysisException(Exception):
    pass


@pytest.mark.parametrize(
    ("exc", "line"),
    [
        (Py4JJavaError(JAVA), 'UnsupportedFileSystemException: No FileSystem for scheme "foo"'),
        (
            AnalysisException(
                "[PATH_NOT_FOUND] Path does not exist: file:/x. SQLSTATE: 42K03\n\n"
                "JVM stacktrace:\norg.apache.spark.sql.AnalysisException: ...\n\tat a.b(C.java:1)"
            ),
            "AnalysisException: [PATH_NOT_FOUND] Path does not exist: file:/x. SQLSTATE: 42K03",
        ),
        # a Python error's message is kept whole: only Java dumps are cut
        (ValueError("bad row 3\nexpected an int"), "ValueError: bad row 3\nexpected an int"),
        (RuntimeError(), "RuntimeError"),
    ],
)
def test_error_line_keeps_the_line_that_matters(exc: BaseException, line: str) -> None:
    assert error_line(exc) == line


def test_a_wrapped_spark_failure_shows_one_line_and_keeps_its_cause() -> None:
    cause = Py4JJavaError(JAVA)
    try:
        raise TaskFailedError("wf", "t", 1, cause) from cause
    except TaskFailedError as err:
        assert "\tat " not in str(err) and "An error occurred" not in str(err)
        assert 'No FileSystem for scheme "foo"' in str(err)
        assert err.__cause__ is cause
