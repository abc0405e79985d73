"""The generated README tells the truth: image tags the workflow publishes, the local-run settings."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from baking import read_env_file

METADATA_ACTION = "docker/metadata-action@"
SEMVER = re.compile(r"v?(?P<major>\d+)\.(?P<minor>\d+)\.(?P<patch>\d+)(?P<pre>-[0-9A-Za-z.-]+)?")
# How the README writes the commit of a `type=sha` tag; the simulation below produces the same.
SHA_TAG = "sha-<commit>"
IMAGE_REF = re.compile(r"ghcr\.io/<owner>/<repo>:(?P<tag>[\w.<>-]+)")
INLINE_TAG = re.compile(r"`:(?P<tag>[\w.<>-]+)`")
GIT_TAG = re.compile(r"\bv\d+\.\d+\.\d+(?:-[0-9A-Za-z.]*[0-9A-Za-z])?")


def metadata_inputs(workflow: dict[str, Any]) -> dict[str, str]:
    """The ``with:`` of the workflow's docker/metadata-action step."""
    steps = [
        step
        for job in workflow["jobs"].values()
        for step in job.get("steps", [])
        if str(step.get("uses", "")).startswith(METADATA_ACTION)
    ]
    assert len(steps) == 1, f"expected one {METADATA_ACTION} step in ci.yml, found {len(steps)}"
    return {key: str(value) for key, value in steps[0]["with"].items()}


def published_tags(inputs: dict[str, str], git_tag: str) -> set[str]:
    """The image tags docker/metadata-action v5 makes for a push of ``git_tag`` (the rules ci.yml uses)."""
    version = SEMVER.fullmatch(git_tag)
    flavor = dict(line.split("=", 1) for line in inputs.get("flavor", "").split() if "=" in line)
    tags: set[str] = set()
    latest = False
    for line in inputs["tags"].splitlines():
        if not line.strip() or line.strip().startswith("#"):
            continue
        attrs = dict(part.split("=", 1) for part in line.strip().split(","))
        kind = attrs.pop("type")
        if kind == "sha":
            tags.add(SHA_TAG)
        elif kind == "ref" and attrs.get("event") == "tag":
            tags.add(git_tag)
            latest = True
        elif kind == "semver":
            if version is None:
                continue  # metadata-action ignores a git tag that is not semver
            pattern = attrs["pattern"]
            if version["pre"] and "{{version}}" not in pattern:
                continue  # a pre-release gets its full version only
            tags.add(
                pattern.replace("{{version}}", git_tag.removeprefix("v"))
                .replace("{{major}}", version["major"])
                .replace("{{minor}}", version["minor"])
                .replace("{{patch}}", version["patch"])
            )
            latest = latest or not version["pre"]
        else:
            pytest.fail(f"ci.yml uses tag rule {line.strip()!r}, which this test does not model: extend it")
    if flavor.get("latest", "auto") == "true" or (flavor.get("latest", "auto") == "auto" and latest):
        tags.add("latest")
    return tags


def readme_tags(readme: str) -> set[str]:
    """Every image tag the README shows: ``ghcr.io/<owner>/<repo>:TAG`` and inline `` `:TAG` ``."""
    return {m["tag"] for m in IMAGE_REF.finditer(readme)} | {m["tag"] for m in INLINE_TAG.finditer(readme)}


@pytest.fixture(scope="module")
def readme(project: Path) -> str:
    return (project / "README.md").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def metadata(project: Path) -> dict[str, str]:
    workflow = yaml.safe_load((project / ".github" / "workflows" / "ci.yml").read_text(encoding="utf-8"))
    return metadata_inputs(workflow)


def test_every_image_tag_the_readme_shows_is_one_the_workflow_publishes(
    readme: str, metadata: dict[str, str]
) -> None:
    git_tags = sorted(set(GIT_TAG.findall(readme)))
    assert git_tags, "the README names no release tag (git tag v1.0.0) to publish an image from"
    published = set().union(*(published_tags(metadata, tag) for tag in git_tags))
    shown = readme_tags(readme)
    assert shown, "the README shows no image tag"
    assert shown <= published, f"the README shows tags ci.yml never publishes: {sorted(shown - published)}"


def test_the_readme_lists_every_tag_a_release_publishes(readme: str, metadata: dict[str, str]) -> None:
    release = next(tag for tag in GIT_TAG.findall(readme) if "-" not in tag)
    missing = published_tags(metadata, release) - readme_tags(readme)
    assert not missing, f"a push of {release} also publishes {sorted(missing)}: the README should say so"


def test_a_release_tag_publishes_its_bare_semver_and_a_pre_release_never_moves_latest(
    metadata: dict[str, str],
) -> None:
    assert published_tags(metadata, "v1.0.0") == {"1.0.0", "1.0", "latest", SHA_TAG}
    assert published_tags(metadata, "v1.1.0-rc.1") == {"1.1.0-rc.1", SHA_TAG}


def test_the_local_run_advice_names_localhost_urls_and_the_published_redis_port(
    project: Path, readme: str
) -> None:
    example = (project / ".env.example").read_text(encoding="utf-8")
    for text in (readme, example):
        assert "ORCHESTRATOR_URL=http://localhost:8080" in text
        assert "REDIS_URL=redis://localhost:6379/0" in text
        assert "REDIS_PORT" in text
    assert read_env_file(project / ".env.example")["REDIS_PORT"] == "6379"
