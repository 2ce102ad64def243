"""`automl ui`: the MLflow UI on the tracking store a search wrote.

Starts `mlflow server` as a child process on 127.0.0.1 (another `--host` only when asked),
waits until it answers, prints the URL of the study's experiment, and stops the server
cleanly on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from automl._errors import UsageError
from automl.preflight import check_tracking_uri, mask_url

STARTUP_SECONDS = 90.0


def serve_ui(
    tracking_uri: str,
    *,
    study: str | None = None,
    host: str = "127.0.0.1",
    port: int = 5000,
    say: Callable[[str], None] = lambda line: print(line, flush=True),
) -> int:
    """Run the MLflow UI until interrupted.

    Args:
        tracking_uri: The store `automl search` wrote (`--tracking-uri`).
        study: A study whose experiment URL to print; without it, every experiment's.
        host: Interface to bind; loopback unless the user asks for more.
        port: TCP port.
        say: Where the URLs are printed.

    Returns:
        0 after a clean stop.

    Raises:
        UsageError: No tracking database, no such study, a busy port, or a server that
            would not start.
    """
    _check_store(tracking_uri)
    _check_port(host, port)
    experiments = _experiments(tracking_uri, study)
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        tracking_uri,
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    # A process group of its own: Ctrl-C reaches us once, and we stop the whole server.
    server = subprocess.Popen(
        command,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    # Our own handlers: a process started in the background inherits SIGINT ignored, and
    # Python then never raises KeyboardInterrupt.
    previous = {
        sig: signal.signal(sig, signal.default_int_handler)
        for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        base = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
        _wait_until_up(server, base)
        say(f"MLflow UI for {mask_url(tracking_uri)} at {base}/  (Ctrl-C stops it)")
        for name, experiment_id in experiments:
            say(f"  {name}: {base}/#/experiments/{experiment_id}")
        while server.poll() is None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        _stop(server)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    say("MLflow UI stopped.")
    return 0


def _stop(server: subprocess.Popen[str]) -> None:
    """SIGTERM to the server's process group; SIGKILL after 15 s."""
    if server.poll() is not None:
        return
    try:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()
    except ProcessLookupError:
        pass


def _check_store(tracking_uri: str) -> None:
    if tracking_uri.startswith("sqlite:///"):
        path = Path(tracking_uri.removeprefix("sqlite:///")).expanduser()
        if not path.is_file():
            raise UsageError(
                f"no MLflow tracking database at {path}; run `automl search` here first, or "
                f"pass the {{tracking_uri}} the search used."
            )
    elif tracking_uri.startswith(("http://", "https://")):
        raise UsageError(
            f"{mask_url(tracking_uri)} is a tracking server already: open it in a browser. "
            f"`automl ui` serves a database (sqlite:///mlflow.db, postgresql://...)."
        )
    else:  # another database: reachable, as `automl search` checks it
        check_tracking_uri(tracking_uri)


def _check_port(host: str, port: int) -> None:
    if not 0 < port < 65536:
        raise UsageError(f"{{port}} must be between 1 and 65535, but got {port}.")
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise UsageError(
                f"cannot listen on {host}:{port} ({exc.strerror}); pass another {{port}}."
            ) from None


def _experiments(tracking_uri: str, study: str | None) -> list[tuple[str, str]]:
    """(name, id) of the study's experiment, or of every experiment but MLflow's Default."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    found = [(e.name, e.experiment_id) for e in client.search_experiments()]
    if study is None:
        return [(name, eid) for name, eid in found if name != "Default"]
    matching = [(name, eid) for name, eid in found if name == study]
    if not matching:
        known = ", ".join(sorted(name for name, _ in found if name != "Default")) or "none"
        raise UsageError(
            f"no study {study!r} in {mask_url(tracking_uri)} (studies there: {known}); "
            f"pass one of them, or the {{tracking_uri}} the search used."
        )
    return matching


def _wait_until_up(server: subprocess.Popen[str], base: str) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            lines = (server.stdout.read() if server.stdout else "").strip().splitlines()
            raise UsageError(
                f"mlflow server exited with code {server.returncode}: "
                f"{lines[-1] if lines else 'no output'}"
            )
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=2) as response:
                if response.status == 200:
                    _drain_log(server)
                    return
        except OSError:
            time.sleep(0.3)
    raise UsageError(f"mlflow server did not answer at {base} within {STARTUP_SECONDS:.0f} s.")


def _drain_log(server: subprocess.Popen[str]) -> None:
    """Drain the server's log in the background so a full pipe never blocks it."""
    import threading

    def drain() -> None:
        if server.stdout:
            for _ in server.stdout:
                pass

    threading.Thread(target=drain, daemon=True).start()
