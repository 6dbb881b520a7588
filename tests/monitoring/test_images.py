"""monitoring/images.yml: the one place the stack's image versions are pinned (a contract)."""

from __future__ import annotations

import re

from stacks.monitoring_files import IMAGE_KEYS, load_images
from tests.monitoring.files import MONITORING, load_yaml

IMAGES = MONITORING / "images.yml"
# repository[:port]/path:tag, the tag a full version (x.y.z with an optional v and suffix).
IMAGE_REF = re.compile(r"(?P<repo>[a-z0-9][a-z0-9._/-]*(:\d+)?[a-z0-9/._-]*):(?P<tag>[^:@/]+)")
VERSION_TAG = re.compile(r"v?\d+\.\d+\.\d+(-[a-z0-9.]+)?")
# PostgreSQL numbers its releases major.minor since 10: 17.7 is a full version, 17 is not.
TWO_PART_VERSIONS = {"postgres": re.compile(r"\d+\.\d+(-[a-z0-9.]+)?")}


def test_images_file_is_a_flat_map_of_the_stacks_services() -> None:
    # The file's own format is parsed here; the key list is the program's, so the file can
    # neither lack an image the stack pulls nor pin one nothing uses.
    images = load_yaml(IMAGES)
    assert isinstance(images, dict)
    assert set(images) == set(IMAGE_KEYS)
    assert all(isinstance(value, str) for value in images.values())


def test_the_stack_program_accepts_the_file_as_it_is() -> None:
    assert load_images({}) == load_yaml(IMAGES)


def test_every_image_is_pinned_to_a_full_version_never_latest() -> None:
    for service, ref in load_yaml(IMAGES).items():
        match = IMAGE_REF.fullmatch(ref)
        assert match, f"{service}: {ref!r} is not repository:tag"
        tag = match.group("tag")
        assert tag != "latest" and "latest" not in tag, f"{service}: {ref}"
        pattern = TWO_PART_VERSIONS.get(service, VERSION_TAG)
        assert pattern.fullmatch(tag), f"{service}: tag {tag!r} is not a full version"


def test_cadvisor_comes_from_its_current_registry() -> None:
    # cAdvisor moved from gcr.io/cadvisor to ghcr.io/google at v0.53.
    assert load_yaml(IMAGES)["cadvisor"].startswith("ghcr.io/google/cadvisor:")
