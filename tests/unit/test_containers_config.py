"""The containers backend without an engine: which service the settings give, the image rule, podman's private
configuration, the apt mirror debootstrap reads, and the message where there is no engine."""

from __future__ import annotations

import tempfile
from pathlib import Path

import docker.errors
import pytest

from emulation import containers
from emulation.containers import PostgresContainerService, S3ContainerService, choose_image, find_engine, podman_env
from emulation.images import LOCAL_IMAGES, apt_mirror
from emulation.postgres import PostgresService
from emulation.resources import engine
from emulation.s3 import S3Service
from emulation.service import ServiceError
from pipeline.settings import Settings


def test_the_settings_choose_the_service_variant(tmp_path):
    assert type(engine("postgres", Settings(state_dir=tmp_path))) is PostgresService
    assert type(engine("s3", Settings(state_dir=tmp_path))) is S3Service
    assert type(engine("postgres", Settings(state_dir=tmp_path, engines="containers"))) is PostgresContainerService
    assert type(engine("s3", Settings(state_dir=tmp_path, engines="containers"))) is S3ContainerService


class FakeImages:
    def __init__(self, present):
        self.present = set(present)

    def get(self, tag):
        if tag not in self.present:
            raise docker.errors.ImageNotFound(tag)


class FakeClient:
    def __init__(self, *present):
        self.images = FakeImages(present)


@pytest.mark.parametrize(("present", "expected"), [
    ({"postgres:15.18-bookworm", "localhost/olist-postgres:15"}, "postgres:15.18-bookworm"),  # the official first
    ({"localhost/olist-postgres:15"}, "localhost/olist-postgres:15"),  # else the equivalent built here
    (set(), "postgres:15.18-bookworm"),  # else the official, pulled
])
def test_the_default_image_falls_back_to_the_local_equivalent_only_when_absent(present, expected):
    assert choose_image(Settings(), "postgres_image", FakeClient(*present))[0] == expected


def test_a_configured_image_is_used_exactly():
    settings = Settings(postgres_image="registry.example/pg:15")
    assert choose_image(settings, "postgres_image", FakeClient("localhost/olist-postgres:15"))[0] == \
        "registry.example/pg:15"


def test_every_local_image_stands_in_for_the_default_of_its_setting():
    defaults = {Settings.model_fields[f].default for f in ("postgres_image", "localstack_image")}
    assert {spec.equivalent_of for spec in LOCAL_IMAGES.values()} == defaults


def test_podmans_configuration_is_private_and_keeps_the_host_network(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # podman's run-time folder goes there
    (tmp_path / "tmp").mkdir()
    env = podman_env()
    conf = Path(env["CONTAINERS_CONF"])
    assert conf.is_relative_to(tmp_path) and Path(env["CONTAINERS_STORAGE_CONF"]).is_relative_to(tmp_path)
    text = conf.read_text()
    for line in ('runtime = "runc"', 'cgroup_manager = "cgroupfs"', 'netns = "slirp4netns"', "default_ulimits"):
        assert line in text
    no_cni = tmp_path / "olist-lambda" / "containers" / "no-cni-plugins"
    assert f'cni_plugin_dirs = ["{no_cni}"]' in text and not any(no_cni.iterdir())


def test_the_mirror_comes_from_the_apt_sources_in_either_format(tmp_path):
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.invalid/debian-security\nSuites: bookworm-security\nComponents: main\n\n"
        "Types: deb\nURIs: http://mirror.invalid/debian\nSuites: bookworm bookworm-updates\nComponents: main\n")
    assert apt_mirror(tmp_path) == "http://mirror.invalid/debian"
    (tmp_path / "sources.list").write_text("deb [arch=amd64] http://other.invalid/debian bookworm main contrib\n")
    assert apt_mirror(tmp_path) == "http://other.invalid/debian"
    with pytest.raises(ServiceError, match="no apt source for Debian bookworm"):
        apt_mirror(tmp_path / "nowhere")


def test_no_engine_names_what_is_missing(monkeypatch):
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.setattr(containers, "_answers", lambda _: False)
    monkeypatch.setattr(containers.shutil, "which", lambda _: None)
    with pytest.raises(ServiceError, match=r"no container engine.*nox -s images"):
        find_engine()
