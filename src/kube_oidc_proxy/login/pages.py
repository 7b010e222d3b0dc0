"""The login's HTML pages, from Jinja2 templates with autoescaping on (every value a page shows came from
outside at some point: claims, an IdP's error text, issuer URLs).

Plain, accessible pages: ``lang``, a title and one ``h1`` per page, sections under ``h2`` headings, no script
and no inline style (the CSP forbids both; the stylesheet is ``/login/style.css``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib.resources import files
from typing import Any, Final
from urllib.parse import quote

import jinja2

from kube_oidc_proxy.login.whoami import Whoami

TEMPLATES: Final = "templates"


@functools.cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("kube_oidc_proxy.login", TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["urlencode_all"] = lambda value: quote(str(value), safe="")
    return env


def _render(name: str, **values: Any) -> bytes:
    return _environment().get_template(name).render(**values).encode("utf-8")


@functools.cache
def stylesheet() -> bytes:
    return files("kube_oidc_proxy.login").joinpath(TEMPLATES, "style.css").read_bytes()


def chooser(host: str | None, issuers: list[str]) -> bytes:
    return _render("chooser.html", title="Sign in", host=host, issuers=issuers)


@dataclass(frozen=True, slots=True)
class SignedIn:
    host: str
    issuer: str
    who: Whoami
    kubeconfig: str
    kubelogin: str
    download_plugin: str  # relative URLs of the two downloads
    download_kubelogin: str
    install_command: str


def signed_in(page: SignedIn) -> bytes:
    return _render(
        "signed_in.html",
        title=f"Signed in as {page.who.username}",
        host=page.host,
        issuer=page.issuer,
        who=page.who,
        kubeconfig=page.kubeconfig,
        kubelogin=page.kubelogin,
        download_plugin=page.download_plugin,
        download_kubelogin=page.download_kubelogin,
        install_command=page.install_command,
    )


def refused(host: str | None, issuer: str, reason: str) -> bytes:
    return _render("refused.html", title="Access refused", host=host, issuer=issuer, reason=reason)


def error(host: str | None, title: str, message: str, detail: str = "", *, again: bool = True) -> bytes:
    return _render("error.html", title=title, host=host, message=message, detail=detail, again=again)
