"""TLS files that cannot be used are a broken update, not a silent one (issue 15, row 11): a key
that is not the certificate's or a PEM that does not parse keeps the last good certificate and
is warned about like any other broken update; at startup it names the file and exits 2. gRPC
core's failed-handshake lines go through the server's log, rate-limited, in --log-format."""

from __future__ import annotations

import contextlib
import json
import math
import signal
import socket
import time
from pathlib import Path

import pytest

import llmconfig

import pki
from conftest import startup_refusal

GARBAGE_CERT = "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n"


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> pki.Pki:
    return pki.make(tmp_path_factory.mktemp("pki"))


def refused(workspace, args: list[str]) -> str:
    """What the command prints refusing to start (exit 2), from its own rules in-process."""
    handle = startup_refusal(workspace, args)
    assert "Failed to bind" not in handle.log and "Traceback" not in handle.log
    return handle.log


def test_a_key_that_is_not_the_certificates_exits_2_naming_it(workspace, certs):
    log = refused(workspace, ["--tls-cert", str(certs.server_cert),
                                   "--tls-key", str(certs.other_server_key)])
    assert f"--tls-key: {certs.other_server_key} is not the key of the certificate in " \
           f"{certs.server_cert}" in log


def test_a_certificate_that_does_not_parse_exits_2_naming_it(certs, workspace):
    garbage = workspace.write("garbage.pem", GARBAGE_CERT)
    log = refused(workspace, ["--tls-cert", str(garbage), "--tls-key",
                                   str(certs.server_key)])
    assert f"--tls-cert: {garbage} holds no readable PEM certificate" in log


def test_a_client_ca_that_does_not_parse_exits_2_naming_it(certs, workspace):
    garbage = workspace.write("garbage-ca.pem", GARBAGE_CERT)
    log = refused(workspace, ["--tls-cert", str(certs.server_cert), "--tls-key",
                                   str(certs.server_key), "--tls-client-ca", str(garbage)])
    assert f"--tls-client-ca: {garbage} holds no readable PEM certificate" in log


def served_with(serve, workspace, certs: pki.Pki) -> tuple[str, Path, Path]:
    cert = workspace.write("tls/tls.crt", certs.server_cert.read_text())
    key = workspace.write("tls/tls.key", certs.server_key.read_text())
    target = serve(args=["--tls-cert", str(cert), "--tls-key", str(key),
                         "--reload-interval", "0"]).target
    return target, cert, key


UPDATES = {
    "a key that is not the certificate's": lambda certs, cert, key: key.write_text(
        certs.other_server_key.read_text()),
    "a certificate that does not parse": lambda certs, cert, key: cert.write_text(GARBAGE_CERT),
}


@pytest.mark.parametrize("update", sorted(UPDATES))
def test_a_bad_tls_update_is_a_broken_update_and_the_old_certificate_serves(
        serve, servers, workspace, certs, update):
    target, cert, key = served_with(serve, workspace, certs)
    UPDATES[update](certs, cert, key)
    assert servers[0].reload() == "failed"
    with llmconfig.Client(target, ca_file=str(certs.ca), timeout=5) as client:
        answer = client.resolve()  # a new connection: the last good certificate
    warning = answer.warnings[-1]
    assert "could not be reloaded" in warning and "--tls-" in warning


def test_a_fixed_tls_update_is_applied(serve, servers, workspace, certs):
    target, cert, key = served_with(serve, workspace, certs)
    key.write_text(certs.other_server_key.read_text())
    servers[0].reload()
    cert.write_text(certs.other_server_cert.read_text())
    assert servers[0].reload() == "applied"
    with llmconfig.Client(target, ca_file=str(certs.other_ca), timeout=5) as client:
        assert not any("could not be reloaded" in w for w in client.resolve().warnings)


def test_failed_handshakes_are_logged_rate_limited_in_the_log_format(server_process, certs):
    from llmconfig_server.observe.corelog import LIMIT, WINDOW

    handle = server_process(["--tls-cert", str(certs.server_cert), "--tls-key",
                             str(certs.server_key), "--log-format", "json"])
    host, port = handle.target.rsplit(":", 1)
    began = time.monotonic()
    for _ in range(200):  # plaintext HTTP at a TLS port: a failed handshake each
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            with contextlib.suppress(OSError):
                sock.recv(64)
    elapsed = time.monotonic() - began
    handle.wait_for("Handshake failed")
    handle.proc.send_signal(signal.SIGTERM)
    assert handle.finish() == 0
    records = [json.loads(line) for line in handle.lines]  # every line is one JSON object
    failed = [r for r in records if "Handshake failed" in r["message"]]
    assert failed and all(r["logger"] == "grpc" for r in failed)
    assert len(failed) <= LIMIT * (math.ceil(elapsed / WINDOW) + 1)
    held = [r for r in records if r["message"].startswith("gRPC logged")]
    assert sum(r["suppressed"] for r in held) + len(failed) >= 200 * 0.9  # counted, not lost
