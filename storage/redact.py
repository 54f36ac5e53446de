"""Keep passwords out of everything the project prints, logs or writes.

Redaction does not parse the URL: a password with an unencoded ``@``, ``/`` or ``:``
(``postgresql://ann:pa@ss@host/``) is a malformed URL that a parser splits in the wrong place,
printing the password's tail as the host. Here the user information runs from after ``://`` to
the *last* ``@`` of the URL's token, and everything between the user and that ``@`` is replaced
by ``***``; a ``password=`` query parameter is masked too. Over-redacting a malformed URL is
harmless, printing part of a password is not. :func:`scrub` removes a known password from free
text such as a driver's error message, in every form it may take (as written, decoded, encoded).
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote

_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:/@\s]*):\S*@")
_QUERY_PASSWORD = re.compile(r"(?P<key>[?&;]password=)[^&;#\s]*", re.IGNORECASE)
_SPLIT = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://(?P<user>[^:/?#@]*):(?P<password>.*)@")


def redact_url(url: str) -> str:
    """Return ``url`` with any password replaced by ``***``, well formed or not.

    Example:
        >>> redact_url("postgresql://ann:s3cret@db:5432/")
        'postgresql://ann:***@db:5432/'
        >>> redact_url("postgresql://ann:pa@ss@db/")
        'postgresql://ann:***@db/'
        >>> redact_url("postgresql://ann:pa ss@db/")
        'postgresql://ann:***@db/'
        >>> redact_url("postgresql://ann@db/x?sslmode=require&password=s3cret")
        'postgresql://ann@db/x?sslmode=require&password=***'
    """
    masked = _QUERY_PASSWORD.sub(r"\g<key>***", url)
    head, separator, rest = masked.partition("://")
    if separator and "@" in rest:
        userinfo, _, host = rest.rpartition("@")
        user, colon, _ = userinfo.partition(":")
        if colon and not any(c in user for c in "/?#@"):
            return f"{head}://{user}:***@{host}"
    return _USERINFO.sub(r"\g<scheme>\g<user>:***@", masked)


def password_of(url: str) -> str | None:
    """The password a URL carries (up to its last ``@``, or in a ``password=`` query), or None."""
    found = _SPLIT.match(url.strip())
    if found and found.group("password"):
        return found.group("password")
    query = _QUERY_PASSWORD.search(url)
    if query:
        value = url[query.end("key") : query.end()]
        return value or None
    return None


def scrub(text: str, *urls: str) -> str:
    """Remove every URL's password, and any ``user:password@`` pattern, from ``text``.

    Example:
        >>> scrub("failed: postgresql://ann:s3cret@db/x (s3cret)", "postgresql://ann:s3cret@db/")
        'failed: postgresql://ann:***@db/x (***)'
    """
    cleaned = _QUERY_PASSWORD.sub(r"\g<key>***", _USERINFO.sub(r"\g<scheme>\g<user>:***@", text))
    for url in urls:
        secret = password_of(url)
        if not secret:
            continue
        for form in sorted(password_forms(secret), key=len, reverse=True):
            cleaned = cleaned.replace(form, "***")
        for tail in re.split(r"[@/\s]", unquote(secret))[1:]:  # a misparsed URL's "host"
            if tail:
                cleaned = cleaned.replace(f"{tail}@", "***@")
    return cleaned


def password_forms(secret: str) -> set[str]:
    """The forms a password takes in text: as written, decoded, and percent-encoded (``/`` too).

    Example:
        >>> sorted(password_forms("a%20b"))
        ['a b', 'a%20b']
    """
    plain = unquote(secret)
    return {secret, plain, quote(plain, safe=""), quote(plain)}


def first_line(error: BaseException, *urls: str) -> str:
    r"""An error's first line (its repr when it has no text), with ``urls``' secrets scrubbed.

    Example:
        >>> first_line(ValueError("bad postgresql://a:pw@h/\nmore"), "postgresql://a:pw@h/")
        'bad postgresql://a:***@h/'
    """
    text = str(error).strip()
    return scrub(text.splitlines()[0] if text else repr(error), *urls)
