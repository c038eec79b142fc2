"""Small formatting helpers shared by the planner, the CLI and the pictures (a checkpoint's
label is :meth:`exoflow_spark.core.records.CheckpointRecord.label`)."""

from __future__ import annotations


def human_bytes(n: int) -> str:
    """``1536`` -> ``"1.5 KB"``: a byte count in binary units, one decimal above bytes."""
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"


#: Lines of a Spark/Py4J error text that are never the reason: Py4J's call header, JVM frames
#: and the trailers PySpark appends.
_NOISE_PREFIXES = ("An error occurred while calling", "at ", "...", "Traceback ", "File ")
_STACK_MARKERS = ("JVM stacktrace:", "\n\tat ", "\n    at ", "\nCaused by:", "\nDriver stacktrace:")


def error_line(exc: BaseException, limit: int = 500) -> str:
    """The one line of ``exc`` that says what went wrong, without a Java stack trace.

    A ``Py4JJavaError`` reads ``An error occurred while calling o58.getFileSystem.\\n:
    org.apache...UnsupportedFileSystemException: No FileSystem for scheme "foo"\\n\\tat ...``;
    this returns ``UnsupportedFileSystemException: No FileSystem for scheme "foo"``. Other
    exceptions keep their whole message (``Name: message``). Keep the exception itself chained
    (``raise ... from exc``): this is only for messages.

    Example:
        >>> error_line(ValueError("bad input\\n\\tat Foo.bar(Foo.java:1)"))
        'ValueError: bad input'
    """
    text = str(exc)
    name = type(exc).__name__
    if not text.startswith("An error occurred while calling") and not any(
        m in text for m in _STACK_MARKERS
    ):
        line = f"{name}: {text}" if text else name
        return line if len(line) <= limit else line[: limit - 3] + "..."
    for marker in _STACK_MARKERS:
        cut = text.find(marker)
        if cut >= 0:
            text = text[:cut]
    line = ""
    for raw in text.splitlines():
        cand = raw.strip().lstrip(":").strip()
        if cand and not cand.startswith(_NOISE_PREFIXES):
            line = cand
            break
    if not line:
        return name
    head, sep, rest = line.partition(": ")
    if sep and "." in head and " " not in head:  # a Java class name: keep its simple name
        line = f"{head.rsplit('.', 1)[-1]}: {rest}"
    elif not line.startswith(name) and name not in ("Py4JJavaError",):
        line = f"{name}: {line}"
    return line if len(line) <= limit else line[: limit - 3] + "..."
