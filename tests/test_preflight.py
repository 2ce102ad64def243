"""Preflight checks (`automl/preflight.py`): a missing PostgreSQL driver names the extra
that brings it, and a tracking server is asked through MLflow's own client, so MLflow's
TLS settings (MLFLOW_TRACKING_INSECURE_TLS, MLFLOW_TRACKING_SERVER_CERT_PATH) apply: a
real `mlflow server` over HTTPS with a self-signed certificate."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

from automl._errors import UsageError
from automl.preflight import check_storage_url, check_tracking_uri
from tests.conftest import sqlite_url
from tests.test_ui import free_port


def test_a_missing_postgresql_driver_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if never installed
    with pytest.raises(UsageError, match=r"pip install 'automl\[postgres\]'") as error:
        check_storage_url("postgresql://bob:secret@127.0.0.1:1/db")
    assert "secret" not in str(error.value) and "\n" not in str(error.value)


def test_an_unreachable_server_answers_at_once_with_the_password_masked():
    started = time.monotonic()
    with pytest.raises(UsageError, match=r"http://bob:\*\*\*@127\.0\.0\.1:1 \(.*refused"):
        check_tracking_uri("http://bob:secret@127.0.0.1:1")
    assert time.monotonic() - started < 10  # no MLflow retries with backoff


@pytest.fixture(scope="module")
def https_server(tmp_path_factory):
    """`mlflow server` over HTTPS (uvicorn) with a self-signed certificate for 127.0.0.1."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a certificate")
    folder = tmp_path_factory.mktemp("https")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
         "-out", cert, "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    port = free_port()
    command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--workers", "1"]
    command += ["--backend-store-uri", sqlite_url(folder / "server.db")]
    command += ["--uvicorn-opts", f"--ssl-certfile {cert} --ssl-keyfile {key}"]
    log = (folder / "server.log").open("ab")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=folder,
                               start_new_session=True)  # fmt: skip
    url = f"https://127.0.0.1:{port}"
    try:
        _wait_until_serving(url, cert, process)
        yield url, cert
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # uvicorn's workers with it
        process.wait(timeout=30)
        log.close()


def _wait_until_serving(url: str, cert: Path, process: subprocess.Popen[bytes]) -> None:
    import requests

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        try:
            requests.get(f"{url}/health", verify=str(cert), timeout=2)
            return
        except requests.RequestException:
            time.sleep(0.3)
    raise AssertionError("mlflow server did not start over HTTPS")


@pytest.mark.slow  # the server takes about 20 s to start here
def test_a_self_signed_server_passes_with_mlflows_tls_settings(https_server, monkeypatch):
    """Refused as MLflow itself would refuse it; accepted once MLflow's own variables
    say to trust it (the certificate file, or no verification)."""
    url, cert = https_server
    monkeypatch.delenv("MLFLOW_TRACKING_INSECURE_TLS", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_SERVER_CERT_PATH", raising=False)
    with pytest.raises(UsageError, match="cannot reach the MLflow tracking server .*certificate"):
        check_tracking_uri(url)
    monkeypatch.setenv("MLFLOW_TRACKING_SERVER_CERT_PATH", str(cert))
    check_tracking_uri(url)
    monkeypatch.delenv("MLFLOW_TRACKING_SERVER_CERT_PATH")
    monkeypatch.setenv("MLFLOW_TRACKING_INSECURE_TLS", "true")
    with warnings.catch_warnings():  # urllib3 says so on each unverified request
        warnings.simplefilter("ignore")
        check_tracking_uri(url)
