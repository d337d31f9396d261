"""Which local S3 emulator starts: LocalStack where a Python 3.13 interpreter is found, else moto, saying why."""

from __future__ import annotations

import sys

import pytest

from emulation.s3 import choose_emulator, localstack_environment
from emulation.service import ServiceError
from emulation.venvs import find_python
from pipeline.settings import Settings

NOT_313 = sys.executable  # the project's own interpreter is 3.11


def test_auto_falls_back_to_moto_and_says_what_was_missing(tmp_path):
    chosen = choose_emulator(Settings(state_dir=tmp_path, localstack_python=NOT_313))
    assert chosen.name == "moto"
    assert "Python 3.13" in chosen.why and NOT_313 in chosen.why and "OLIST_LOCALSTACK_PYTHON" in chosen.why


def test_localstack_asked_for_without_python_313_is_one_line_naming_the_setting(tmp_path):
    with pytest.raises(ServiceError) as err:
        choose_emulator(Settings(state_dir=tmp_path, s3_emulator="localstack", localstack_python=NOT_313))
    assert "\n" not in str(err.value) and "OLIST_LOCALSTACK_PYTHON" in str(err.value)


def test_moto_asked_for_is_moto_without_looking_for_an_interpreter(tmp_path):
    chosen = choose_emulator(Settings(state_dir=tmp_path, s3_emulator="moto", localstack_python=tmp_path / "none"))
    assert (chosen.name, chosen.python) == ("moto", None)


def test_an_interpreter_of_another_version_is_not_taken_for_313():
    python, missing = find_python((3, 13), configured=NOT_313)
    assert python is None and missing == f"none at {NOT_313}"


@pytest.mark.skipif(find_python((3, 13))[0] is None, reason="no Python 3.13 on this machine: auto means moto here")
def test_auto_takes_localstack_where_python_313_is_found(tmp_path):
    chosen = choose_emulator(Settings(state_dir=tmp_path))
    assert chosen.name == "localstack" and chosen.python and chosen.python in chosen.why


def test_localstack_listens_on_the_given_loopback_address_only_and_calls_nobody(tmp_path):
    env = localstack_environment("127.0.0.1", 4599, tmp_path)
    assert env["GATEWAY_LISTEN"] == "127.0.0.1:4599"
    assert env["GATEWAY_SERVER"] == "hypercorn"  # the default server binds every interface
    assert env["DNS_ADDRESS"] == "0" and env["DISABLE_EVENTS"] == "1" and env["SERVICES"] == "s3"
