"""Keep passwords out of everything the project prints, logs or writes.

SQLAlchemy renders a URL with ``***`` in place of the password; :func:`scrub` also removes a
known password from free text such as a driver's error message, which may quote the
connection string it was given.
"""

from __future__ import annotations

import re

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:/@\s]*):[^@/\s]*@")


def redact_url(url: str) -> str:
    """Return ``url`` with any password replaced by ``***``.

    Example:
        >>> redact_url("postgresql://ann:s3cret@db:5432/")
        'postgresql://ann:***@db:5432/'
    """
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return _USERINFO.sub(r"\g<scheme>\g<user>:***@", url)


def password_of(url: str) -> str | None:
    """The password a URL carries, or None."""
    try:
        return make_url(url).password
    except (ArgumentError, ValueError):
        return None


def scrub(text: str, *urls: str) -> str:
    """Remove every URL's password, and any ``user:password@`` pattern, from ``text``.

    Example:
        >>> scrub("failed: postgresql://ann:s3cret@db/x (s3cret)", "postgresql://ann:s3cret@db/")
        'failed: postgresql://ann:***@db/x (***)'
    """
    cleaned = _USERINFO.sub(r"\g<scheme>\g<user>:***@", text)
    for url in urls:
        secret = password_of(url)
        if secret:
            cleaned = cleaned.replace(secret, "***")
    return cleaned
