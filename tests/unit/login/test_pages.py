"""login.pages: every page is escaped, plain and accessible (lang, title, one h1), with no script and no
inline style."""

from __future__ import annotations

import html.parser

import pytest

from kube_oidc_proxy.login import pages
from kube_oidc_proxy.login.whoami import Whoami

EVIL = '<script>alert("x")</script><img src=x onerror=alert(1)>'
WHO = Whoami(EVIL, "uid-1", ("dev", EVIL), (("k", (EVIL,)),))


class Outline(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_title = tag == "title"

    def handle_endtag(self, tag: str) -> None:
        self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data


def every_page() -> dict[str, bytes]:
    signed_in = pages.SignedIn(
        host="kube.example.com",
        issuer=EVIL,
        who=WHO,
        kubeconfig=EVIL,
        kubelogin=EVIL,
        download_plugin="/login/kubeconfig?issuer=x&plugin=kube-oidc-proxy",
        download_kubelogin="/login/kubeconfig?issuer=x&plugin=kubelogin",
        install_command=EVIL,
    )
    return {
        "chooser": pages.chooser("kube.example.com", ["https://a.example", EVIL]),
        "signed_in": pages.signed_in(signed_in),
        "refused": pages.refused("kube.example.com", EVIL, EVIL),
        "error": pages.error(None, "Sign-in failed", EVIL, EVIL),
    }


@pytest.mark.parametrize("name", ["chooser", "signed_in", "refused", "error"])
def test_every_page_escapes_what_it_shows_and_has_no_script_or_inline_style(name: str) -> None:
    body = every_page()[name].decode()
    assert "<script" not in body and "<img" not in body
    outline = Outline()
    outline.feed(body)
    tags = [tag for tag, _ in outline.tags]
    assert "script" not in tags and "style" not in tags and "form" not in tags
    assert not [attrs for _, attrs in outline.tags if "style" in attrs or any(a.startswith("on") for a in attrs)]


@pytest.mark.parametrize("name", ["chooser", "signed_in", "refused", "error"])
def test_every_page_has_a_language_a_title_one_heading_and_the_stylesheet(name: str) -> None:
    outline = Outline()
    outline.feed(every_page()[name].decode())
    assert ("html", {"lang": "en"}) in outline.tags
    assert outline.title.endswith(" · kube-oidc-proxy")
    assert [tag for tag, _ in outline.tags].count("h1") == 1
    assert ("link", {"rel": "stylesheet", "href": "/login/style.css"}) in outline.tags


def test_the_signed_in_page_has_a_section_per_subject_under_its_heading() -> None:
    outline = Outline()
    outline.feed(every_page()["signed_in"].decode())
    sections = [attrs["aria-labelledby"] for tag, attrs in outline.tags if tag == "section"]
    assert sections == ["whoami", "kubeconfig", "install", "kubelogin"]
    headings = {attrs.get("id") for tag, attrs in outline.tags if tag == "h2"}
    assert set(sections) <= headings


def test_the_chooser_links_each_issuer_fully_url_encoded() -> None:
    body = pages.chooser(None, ["https://idp.example/realms/a b?x=1&y=2"]).decode()
    assert 'href="/login?issuer=https%3A%2F%2Fidp.example%2Frealms%2Fa%20b%3Fx%3D1%26y%3D2"' in body


def test_the_stylesheet_is_packaged() -> None:
    assert b"font-family" in pages.stylesheet()
