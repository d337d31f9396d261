"""Ports of the local engines: configured, else kept from the last start while free, else new; never shared."""

from __future__ import annotations

import socket

from emulation.resources import engine
from emulation.s3 import S3Service
from pipeline.settings import Settings

HOST = "127.0.0.1"


def service(tmp_path) -> S3Service:
    return engine("s3", Settings(state_dir=tmp_path))


def test_a_configured_port_wins_and_free_ones_are_distinct(tmp_path):
    svc = service(tmp_path)
    ports = svc._keep_ports(HOST, port=0, controller_port=0, other=0)
    assert len(set(ports.values())) == 3
    assert svc._keep_ports(HOST, port=12345)["port"] == 12345


def test_the_saved_port_is_kept_while_free_and_replaced_when_taken(tmp_path):
    svc = service(tmp_path)
    first = svc._keep_ports(HOST, port=0)["port"]
    svc._save_endpoint(host=HOST, port=first)
    assert svc._keep_ports(HOST, port=0)["port"] == first
    with socket.socket() as busy:
        busy.bind((HOST, first))
        busy.listen()
        assert svc._keep_ports(HOST, port=0)["port"] != first
