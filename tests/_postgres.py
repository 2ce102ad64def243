"""A throwaway PostgreSQL cluster for tests: Debian's server binaries, a temporary data
folder, listening on loopback only. `.ci/run` installs the `postgresql` package."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import missing

USER, PASSWORD, DATABASE = "automl", "s3cret-pw", "automl"


def _binary(name: str) -> str | None:
    found = shutil.which(name) or sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found if isinstance(found, str) else (found[-1] if found else None)


class PostgresCluster:
    """initdb + pg_ctl start in `folder`; `url` has a password (to check masking)."""

    def __init__(self, folder: Path, port: int) -> None:
        self.folder, self.port = folder, port
        self.data = folder / "data"
        self.url = f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{port}/{DATABASE}"

    def _run(self, *command: str) -> None:
        # The server refuses to run as root: run it as Debian's `postgres` user then.
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*prefix, *command], check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
        if not (initdb and pg_ctl):
            missing("PostgreSQL's initdb and pg_ctl", ".ci/run installs `postgresql`")
        self.folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
        password_file = self.folder / "password"
        password_file.write_text(PASSWORD)
        if os.geteuid() == 0:
            shutil.chown(password_file, "postgres", "postgres")
        self._run(
            initdb, "-D", str(self.data), "-U", USER, "--pwfile", str(password_file),
            "-A", "scram-sha-256",
        )  # fmt: skip
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1"
        self._run(
            pg_ctl,
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.folder / "log"),
            "-w",
            "start",
        )
        env = {**os.environ, "PGPASSWORD": PASSWORD}
        createdb = _binary("createdb") or "createdb"
        subprocess.run(
            [createdb, "-h", "127.0.0.1", "-p", str(self.port), "-U", USER, DATABASE],
            check=True, capture_output=True, env=env, timeout=60,
        )  # fmt: skip

    def stop(self) -> None:
        pg_ctl = _binary("pg_ctl")
        if pg_ctl and self.data.is_dir():
            self._run(pg_ctl, "-D", str(self.data), "-m", "immediate", "stop")


@contextlib.contextmanager
def running_cluster() -> Iterator[PostgresCluster]:
    """A started cluster on a free loopback port, stopped and deleted afterwards (a
    module fixture's body)."""
    from tests.test_ui import free_port

    # Not under pytest's tmp folders: those are private to root, and the server runs as
    # the `postgres` user.
    folder = Path(tempfile.mkdtemp(prefix="automl-pg-"))
    cluster = PostgresCluster(folder, free_port())
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(folder, ignore_errors=True)
