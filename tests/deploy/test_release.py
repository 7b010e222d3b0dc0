"""The release shape: the image the chart installs by default is one the image workflow publishes, and the
chart, the package version, the changelog, the docs and the static manifests agree on it. Until a release
is tagged that is `main`, the tag CI publishes from the main branch; a release (a `v<X.Y.Z>` git tag)
changes appVersion, ``__version__`` and the changelog together, and these tests hold for that shape too.

Also the repository's own documents: NOTICE names files that exist (and every test table ported from
Kubernetes), CONTRIBUTING names make targets that exist, CHANGELOG keeps keep-a-changelog's shape.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlparse

import pytest
import yaml

from kube_oidc_proxy import __version__

ROOT: Final = Path(__file__).resolve().parents[2]
CHART: Final = ROOT / "deploy" / "charts" / "kube-oidc-proxy"
OWNER_EXPRESSION: Final = "${{ github.repository_owner }}"
IMAGE_NAME: Final = "kube-oidc-proxy-python"
# Where a user reads an image reference.
PAGES: Final = [
    ROOT / "README.md",
    ROOT / "CONTRIBUTING.md",
    *sorted((ROOT / "docs").glob("*.md")),
    CHART / "README.md",
    ROOT / "deploy" / "manifests" / "kube-oidc-proxy.yaml",
    ROOT / "deploy" / "image" / "Dockerfile",
]
# ghcr.io/<owner>/kube-oidc-proxy-python[:<tag>], placeholders (<owner>, <appVersion>) included
IMAGE_REFERENCE: Final = re.compile(r"ghcr\.io/([\w.<>-]+)/" + IMAGE_NAME + r"(?::([\w.<>-]+))?")
# metadata-action's type=sha: "sha-" and the first 7 hex digits of the commit
SHA_TAG: Final = re.compile(r"sha-([0-9a-f]{7}|<commit>)")
RELEASE: Final = re.compile(r"\d+\.\d+\.\d+")
# keep-a-changelog's section kinds
CHANGE_KINDS: Final = {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}


def chart_meta() -> dict[str, Any]:
    meta: dict[str, Any] = yaml.safe_load((CHART / "Chart.yaml").read_text())
    return meta


def image_values() -> dict[str, Any]:
    image: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())["image"]
    return image


def default_tag() -> str:
    """The tag a `helm install` without image values runs: values.yaml's, or else the chart's appVersion."""
    return str(image_values()["tag"] or chart_meta()["appVersion"])


def workflow() -> dict[Any, Any]:
    doc: dict[Any, Any] = yaml.safe_load((ROOT / ".github" / "workflows" / "image.yml").read_text())
    doc["on"] = doc.pop(True)  # YAML 1.1 reads the key `on` as True
    return doc


def tag_rules() -> set[str]:
    steps = workflow()["jobs"]["build"]["steps"]
    meta = next(s for s in steps if s.get("uses", "").startswith("docker/metadata-action"))
    return {line.strip() for line in meta["with"]["tags"].splitlines() if line.strip()}


def tags_published_from_a_branch_push() -> set[str]:
    """What a push to one of the workflow's branches publishes, besides the sha-<commit> tag."""
    assert "type=ref,event=branch" in tag_rules()
    return set(workflow()["on"]["push"]["branches"])


def test_the_chart_installs_the_repository_the_workflow_publishes() -> None:
    image = workflow()["env"]["IMAGE"]
    assert image == f"ghcr.io/{OWNER_EXPRESSION}/{IMAGE_NAME}"
    repository = image_values()["repository"]
    assert re.fullmatch(rf"ghcr\.io/[\w.-]+/{IMAGE_NAME}", repository), repository


def test_the_default_image_tag_is_one_ci_publishes() -> None:
    tag = default_tag()
    if tag in tags_published_from_a_branch_push():
        assert tag == "main", tag  # the only branch the workflow builds on push
        return
    # a release: the v<X.Y.Z> git tag publishes X.Y.Z, and the package says the same version
    assert RELEASE.fullmatch(tag), f"the default image tag {tag!r} is neither `main` nor a release"
    assert "v*" in workflow()["on"]["push"]["tags"]
    assert "type=semver,pattern={{version}}" in tag_rules()
    assert __version__ == tag


def test_the_package_version_and_the_changelog_say_whether_this_is_a_release() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text()
    versions = re.findall(r"^## \[([^\]]+)\]", changelog, re.M)
    assert versions and versions[0] == "Unreleased", versions
    if chart_meta()["appVersion"] == "main":
        # nothing called 0.1.0 exists yet: the version says it is a development build of it
        assert re.fullmatch(r"\d+\.\d+\.\d+\.dev\d+", __version__), __version__
        assert __version__.split(".dev")[0] not in versions
    else:
        assert __version__ == chart_meta()["appVersion"]
        assert re.search(rf"^## \[{re.escape(__version__)}\] - \d{{4}}-\d{{2}}-\d{{2}}$", changelog, re.M)


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_every_image_reference_names_a_tag_that_exists(page: Path) -> None:
    owner = image_values()["repository"].split("/")[1]
    allowed_tags = {default_tag(), "<appVersion>", *tags_published_from_a_branch_push()}
    for match in IMAGE_REFERENCE.finditer(page.read_text()):
        reference, image_owner, tag = match.group(0), match.group(1), match.group(2)
        assert image_owner in (owner, "<owner>"), reference
        if tag is not None:
            assert tag in allowed_tags or SHA_TAG.fullmatch(tag), f"{reference}: no such tag is published"


def test_the_static_manifest_runs_the_default_image() -> None:
    documents = yaml.safe_load_all((ROOT / "deploy" / "manifests" / "kube-oidc-proxy.yaml").read_text())
    deployment = next(d for d in documents if d and d["kind"] == "Deployment")
    (container,) = [c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "kube-oidc-proxy"]
    assert container["image"] == f"{image_values()['repository']}:{default_tag()}"


def test_the_deploy_docs_name_every_kind_of_tag_the_workflow_publishes() -> None:
    # a new tag rule in the workflow must be explained in docs/deploy.md (and this list extended)
    documented = {
        "type=ref,event=branch": "`main`",
        "type=sha": "`sha-<commit>`",
        "type=semver,pattern={{version}}": "`<X.Y.Z>`",
        "type=semver,pattern={{major}}.{{minor}}": "`<X.Y>`",
        "type=schedule,pattern={{date 'YYYYMMDD'}}": "`<YYYYMMDD>`",
    }
    assert tag_rules() == set(documented)
    deploy = (ROOT / "docs" / "deploy.md").read_text()
    for rule, name in documented.items():
        assert name in deploy, (rule, name)


def test_the_chart_points_at_its_source() -> None:
    meta = chart_meta()
    urls = [meta["home"], *meta["sources"]]
    for url in urls:
        parsed = urlparse(url)
        assert parsed.scheme == "https" and parsed.netloc, url
    placeholders = [url for url in urls if "TODO" in url]
    if placeholders:
        pytest.skip(
            "RELEASE TODO: Chart.yaml home/sources are placeholders until the repository URL is decided: "
            + ", ".join(placeholders)
        )


# -- the repository's documents ------------------------------------------------------------------------


def test_notice_names_files_that_exist_and_every_ported_kubernetes_table() -> None:
    notice = (ROOT / "NOTICE").read_text()
    assert "Apache License, Version 2.0" in notice
    named = set(re.findall(r"^\s+((?:src|tests)/\S+\.py)\b", notice, re.M))
    assert named, "NOTICE lists no files"
    assert [path for path in sorted(named) if not (ROOT / path).is_file()] == []
    ported_tables = {str(p.relative_to(ROOT)) for p in (ROOT / "tests").rglob("k8s_*_cases.py")}
    assert ported_tables and ported_tables <= named


def test_contributing_names_make_targets_that_exist() -> None:
    targets = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.M))
    named = set(re.findall(r"`make ([\w-]+)", (ROOT / "CONTRIBUTING.md").read_text()))
    assert {"demo", "test"} <= named
    assert named - targets == set()


def test_the_changelog_keeps_keep_a_changelogs_shape() -> None:
    text = (ROOT / "CHANGELOG.md").read_text()
    assert text.startswith("# Changelog\n")
    assert "https://keepachangelog.com/" in text
    kinds = set(re.findall(r"^### (.+)$", text, re.M))
    assert kinds and kinds <= CHANGE_KINDS, kinds - CHANGE_KINDS
