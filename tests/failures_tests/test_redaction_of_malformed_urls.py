"""Redaction that does not depend on the URL being well formed.

A password with an unencoded ``@`` (``postgresql://ann:pa@ss@host/``) used to have its tail
printed: the URL parser took ``ss@host`` for the host, so both the redacted URL and the
driver's "cannot resolve host" error showed it. Now redaction hides everything between the user
and the last ``@``, and a store URL whose password would be parsed wrongly is refused (exit 2)
before any connection is tried.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from storage import redact_url, resolve_store, scrub
from storage.errors import StoreConfigError
from sweeps.cli import main

#: (URL, the fragments of its password that must never be shown).
MALFORMED = [
    ("postgresql://ann:pa@ss@db.internal/", ["pa", "ss"]),
    ("postgresql://ann:pa@ss@127.0.0.1:5432/", ["pa", "ss"]),
    ("postgresql://ann:p/w@ss@db.internal:5432/x", ["p/w", "ss"]),
    ("postgresql://ann:sec ret@db.internal/", ["sec", "ret"]),
    ("postgresql://ann:a@b@c@db.internal/", ["a@b", "c@db"]),
    ("postgresql+psycopg://ann:top@secret@db.internal/", ["top", "secret"]),
    ("postgresql://ann@db.internal/x?password=hunter@two", ["hunter", "two"]),
    ("http://ann:pa@ss@tracking.internal:5000/", ["pa", "ss"]),
]


def _absent(shown: str, fragments: list[str]) -> None:
    for fragment in fragments:
        assert f":{fragment}" not in shown and f"{fragment}@" not in shown, shown
        assert f"={fragment}" not in shown and f"'{fragment}" not in shown, shown


@pytest.mark.parametrize(("url", "fragments"), MALFORMED)
def test_redact_and_scrub_hide_every_part_of_the_password(url: str, fragments: list[str]) -> None:
    shown = redact_url(url)
    _absent(shown, fragments)
    assert "ann" in shown and "***" in shown
    message = f"could not connect to {url}: failed to resolve host '{fragments[-1]}@db.internal'"
    cleaned = scrub(message, url)
    _absent(cleaned, fragments)


@pytest.mark.parametrize(("url", "fragments"), [m for m in MALFORMED if m[0].startswith("post")])
def test_a_misparsed_store_url_is_refused_before_connecting(
    url: str, fragments: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(StoreConfigError, match="must be percent-encoded") as refused:
        resolve_store(url, env={})
    _absent(str(refused.value), fragments)
    for command in (["list"], ["store", "info"]):
        assert main([*command, "--store", url]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "must be percent-encoded (@ as %40" in err
        _absent(err, fragments)


@pytest.mark.parametrize("flag", ["--optuna-storage", "--mlflow-uri"])
def test_misparsed_override_urls_are_refused_too(
    flag: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = "postgresql://ann:pa@ss@db.internal/x"
    assert main(["list", "--store", str(tmp_path / "s"), flag, url]) == 2
    err = capsys.readouterr().err
    assert "must be percent-encoded" in err
    _absent(err, ["pa", "ss"])
    assert not (tmp_path / "s").exists()


def test_well_formed_urls_with_unusual_passwords_still_work() -> None:
    """Only a URL the parser would split wrongly is refused; encoded or harmless ones pass."""
    for url in (
        "postgresql://ann:pa%40ss@db.internal/",
        "postgresql://ann:pa:ss@db.internal/",
        "postgresql://ann:pa/ss@db.internal/",
        "postgresql://ann@db.internal:5432/",
    ):
        spec = resolve_store(url, env={})
        assert "pa" not in spec.describe().replace("postgresql", "")
