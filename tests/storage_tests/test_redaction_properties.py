"""A password in a generated store URL never reaches what the project prints (hypothesis)."""

from __future__ import annotations

import string
from urllib.parse import quote

from hypothesis import assume, given
from hypothesis import strategies as st

from storage import redact_url, scrub

SCHEMES = ["postgresql", "postgresql+psycopg", "mysql+pymysql", "http", "https"]
names = st.text(string.ascii_letters + string.digits + "_.-", min_size=1, max_size=12)
#: Any printable character, URL delimiters included (they are percent-encoded in the URL).
passwords = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Z")), min_size=6, max_size=24
)
hosts = st.sampled_from(["db.internal", "127.0.0.1", "localhost", "pg-1"])
tails = st.sampled_from(["", ":5432", ":5432/", "/onecycle_optuna", ":6543/x?sslmode=require"])


def forms(password: str) -> set[str]:
    """The password as written and as it may appear encoded."""
    return {password, quote(password, safe=""), quote(password)}


@st.composite
def urls(draw: st.DrawFn) -> tuple[str, str, str]:
    scheme, user, password = draw(st.sampled_from(SCHEMES)), draw(names), draw(passwords)
    host, tail = draw(hosts), draw(tails)
    url = f"{scheme}://{user}:{quote(password, safe='')}@{host}{tail}"
    rest = f"{scheme}://{user}:***@{host}{tail}"
    assume(not any(form in rest for form in forms(password)))  # not also the host, say
    return url, user, password


@given(urls())
def test_redacted_url_keeps_the_user_and_drops_the_password(
    generated: tuple[str, str, str],
) -> None:
    url, user, password = generated
    shown = redact_url(url)
    assert not any(form in shown for form in forms(password)), shown
    assert f"{user}:***@" in shown


@given(urls(), st.sampled_from(["{url}", "could not connect to {url}: {password} refused"]))
def test_scrubbed_messages_drop_the_password_wherever_it_is_quoted(
    generated: tuple[str, str, str], template: str
) -> None:
    url, _, password = generated
    message = template.format(url=url, password=password)
    cleaned = scrub(message, url)
    assert not any(form in cleaned for form in forms(password)), cleaned
    assert not any(form in scrub(url) for form in forms(password))  # no URL to learn it from


@given(
    st.lists(st.text(string.ascii_letters + string.digits, min_size=5, max_size=8), min_size=2),
    st.sampled_from(SCHEMES),
)
def test_an_unencoded_at_sign_in_the_password_leaks_nothing(parts: list[str], scheme: str) -> None:
    url = f"{scheme}://ann:{'@'.join(parts)}@db.internal:5432/"
    # Parts that are words of the text around the password (like "faile" of "failed") prove
    # nothing either way.
    assume(all(part not in f"{scheme}://ann:***@db.internal:5432/failed: " for part in parts))
    shown = redact_url(url) + scrub(f"failed: {url}")
    assert not any(part in shown for part in parts), shown
