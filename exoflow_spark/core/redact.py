"""Redaction of credentials in storage URIs and free text before they are logged or recorded.

Storage roots may carry credentials: ``s3a://AKIA...:secret@bucket/exo`` (user info),
``...?sig=...&sv=...`` (a SAS token or presigned query), or an error message may quote a
Hadoop setting such as ``fs.s3a.secret.key=...``. Everything exoflow-spark writes to its log
records, to Python logging or into an error message goes through :func:`redact` (text) or
:func:`redact_record` (a JSON-able record) first. Redaction keeps what identifies a location
(scheme, user name, host, path) and replaces only the secret with ``***``.
"""

from __future__ import annotations

import logging
import re
from typing import Any

MASK = "***"

#: ``scheme://user:password@host``: the password goes, the user name stays (for abfss the
#: "user" is the container, which must stay readable).
_USERINFO_RE = re.compile(
    r"(?P<pre>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s/:@?#'\"]*):(?P<pw>[^\s/@'\"]+)@"
)

#: Query parameters that carry secrets (SAS tokens, presigned URLs, OAuth tokens).
_SECRET_QUERY_RE = re.compile(
    r"(?P<pre>[?&](?:sig|signature|x-amz-signature|x-amz-credential|x-amz-security-token|"
    r"token|access_token|secret|password|sv|se|sp|st|skoid|sktid|api[_-]?key|key)=)"
    r"(?P<val>[^&\s#'\"]+)",
    re.IGNORECASE,
)

#: ``key=value`` / ``key: value`` settings whose key names a secret (Hadoop/Spark confs,
#: environment variables, connection strings), e.g. ``fs.s3a.secret.key=...``,
#: ``AWS_SECRET_ACCESS_KEY=...``, ``AccountKey=...``, ``fs.azure.account.key.x.dfs...=...``.
_SECRET_SETTING_RE = re.compile(
    r"(?P<pre>\b[\w.\-]*(?:secret|password|passwd|session[._\-]?token|access[._\-]?key|"
    r"account[._\-]?key|sas[._\-]?token|credential|private[._\-]?key|auth[._\-]?token)"
    r"[\w.\-]*['\"]?\s*[=:]\s*['\"]?)(?P<val>[^\s'\",;&}]+)",
    re.IGNORECASE,
)

_SECRET_KEY_RE = re.compile(
    r"secret|password|passwd|session[._\-]?token|access[._\-]?key|account[._\-]?key|"
    r"sas[._\-]?token|credential|private[._\-]?key|auth[._\-]?token",
    re.IGNORECASE,
)


def redact(text: object) -> str:
    """``text`` with every credential it contains replaced by ``***``.

    Handles URI user info (``s3a://user:secret@bucket``), secret query parameters
    (``?sig=...``) and secret-named settings (``fs.s3a.secret.key=...``). Non-strings are
    converted with ``str`` first.

    Example:
        >>> redact("s3a://AKIA1:hunter2@lake/exo")
        's3a://AKIA1:***@lake/exo'
    """
    s = text if isinstance(text, str) else str(text)
    if not s:
        return s
    s = _USERINFO_RE.sub(lambda m: f"{m.group('pre')}:{MASK}@", s)
    s = _SECRET_QUERY_RE.sub(lambda m: f"{m.group('pre')}{MASK}", s)
    return _SECRET_SETTING_RE.sub(
        lambda m: m.group(0) if m.group("val") == MASK else f"{m.group('pre')}{MASK}", s
    )


def redact_record(value: Any, *, keep: frozenset[str] = frozenset()) -> Any:
    """A copy of a JSON-able ``value`` with :func:`redact` applied to every string in it.

    Keys named in ``keep`` (at any depth) are copied untouched: a task's returned value is
    data, and changing it would change what a restore gives back.
    """
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        out: dict[Any, Any] = {}
        for k, v in value.items():
            if k in keep:
                out[k] = v
            elif isinstance(k, str) and isinstance(v, str) and _SECRET_KEY_RE.search(k):
                out[k] = MASK  # {"fs.s3a.secret.key": "..."}
            else:
                out[k] = redact_record(v, keep=keep)
        return out
    if isinstance(value, (list, tuple)):
        return [redact_record(v, keep=keep) for v in value]
    return value


def has_secret(text: str) -> bool:
    """Whether :func:`redact` would change ``text``."""
    return redact(text) != text


class RedactingFilter(logging.Filter):
    """Redacts credentials in a log record's message, arguments and traceback text."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if record.args:
            if isinstance(record.args, dict):
                record.args = {k: _redact_arg(v) for k, v in record.args.items()}
            else:
                record.args = tuple(_redact_arg(a) for a in record.args)
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(_FORMATTER.formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


_FORMATTER = logging.Formatter()
_FILTER = RedactingFilter()


def _redact_arg(value: Any) -> Any:
    # strings and exceptions may quote a URI; numbers must stay numbers for %d / %.2f
    if isinstance(value, (str, BaseException)):
        return redact(value)
    return value


def protect_loggers(prefix: str = "exoflow_spark") -> None:
    """Attach :class:`RedactingFilter` to every logger of the package (idempotent).

    Filters on a logger apply only to records logged through that very logger, so each
    module's logger gets one. This adds no handler and changes no level: the library still
    leaves logging configuration to the application.
    """
    manager = logging.Logger.manager
    for name in [prefix, *list(manager.loggerDict)]:
        if name == prefix or name.startswith(prefix + "."):
            lg = logging.getLogger(name)
            if _FILTER not in lg.filters:
                lg.addFilter(_FILTER)
