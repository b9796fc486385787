"""A throwaway certificate authority for TLS tests: a CA, a server certificate for 127.0.0.1
and localhost, and a client certificate, made with the `openssl` command (installed from
Debian when the machine lacks it)."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path  # trusting it must fail for server_cert…
    other_server_cert: Path  # …and succeed for this one (the same names, signed by other_ca)
    other_server_key: Path


def openssl() -> str:
    found = shutil.which("openssl")
    if found is None:
        subprocess.run(["apt-get", "update", "-qq"], check=True, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "openssl"], check=True,
                       capture_output=True)
        found = shutil.which("openssl")
    assert found, "openssl is needed to make test certificates"
    return found


def _run(*args: str, cwd: Path) -> None:
    subprocess.run([openssl(), *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _ca(name: str, folder: Path) -> None:
    _run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2", "-subj", f"/CN={name}",
         cwd=folder)


def _leaf(name: str, ca: str, folder: Path, extensions: str) -> None:
    (folder / f"{name}.ext").write_text(extensions)
    _run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=folder)
    _run("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
         "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext",
         cwd=folder)


def make(folder: Path) -> Pki:
    folder.mkdir(parents=True, exist_ok=True)
    _ca("test-ca", folder)
    _ca("other-ca", folder)
    _leaf("server", "test-ca", folder,
          "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    _leaf("other-server", "other-ca", folder,
          "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    _leaf("client", "test-ca", folder, "extendedKeyUsage=clientAuth\n")
    return Pki(folder / "test-ca.pem", folder / "server.pem", folder / "server.key",
               folder / "client.pem", folder / "client.key", folder / "other-ca.pem",
               folder / "other-server.pem", folder / "other-server.key")
