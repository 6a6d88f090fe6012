"""Real parts on loopback for the tests and the benchmarks: a real etcd (the `etcd` binary
of the etcd-server Debian package) with a data dir of its own, a relay started as
`chatrelay up` starts it, and free ports. Shipped with the relay, like a client's
testing module, so that tests and benchmarks start things one way."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request

from chatrelay.cluster import up
from chatrelay.settings import Settings


class HarnessError(RuntimeError):
    """A real part that could not be started."""


def free_port() -> int:
    """A free loopback port for a server about to start: below the kernel's ephemeral
    range, so no outgoing connection takes it in the seconds before the server binds it
    (`up.pick_port`)."""
    return up.pick_port("127.0.0.1")


def make_tls_files(folder: str, server_ip: str = "127.0.0.1") -> dict[str, str]:
    """A CA, a server certificate for `server_ip` and a client certificate, as PEM files
    in `folder`, as an operator makes them for etcd: {"ca", "server_cert", "server_key",
    "client_cert", "client_key"} -> path."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID

    from chatrelay.tls import certificate, pem

    until = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=2)
    ca_key, server_key, client_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    ca = certificate("test etcd CA", ca_key, "test etcd CA", ca_key, until,
                     (x509.BasicConstraints(ca=True, path_length=0), True))
    server = certificate(
        "etcd", server_key, "test etcd CA", ca_key, until,
        (x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(server_ip)), x509.DNSName("localhost")]), False),
        (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), False),
    )
    client = certificate("chatrelay", client_key, "test etcd CA", ca_key, until,
                         (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False))
    paths = {}
    for label, value in (("ca", ca), ("server_cert", server), ("client_cert", client),
                         ("server_key", server_key), ("client_key", client_key)):
        paths[label] = os.path.join(folder, f"{label}.pem")
        fd = os.open(paths[label], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem(value))
    return paths


class EtcdServer:
    """A real etcd on loopback ports. Without `data_dir` it makes a temporary one and
    removes it when it stops; as a context manager it starts and stops. With `tls`, it
    serves https only to clients with a certificate of its CA (--client-cert-auth):
    `tls_files` names the CA and a client certificate and key."""

    def __init__(self, data_dir: str | None = None, name: str = "test", tls: bool = False) -> None:
        self.own_dir = data_dir is None
        self.data_dir = tempfile.mkdtemp(prefix="chatrelay-etcd-") if data_dir is None else data_dir
        self.name = name
        self.client_port = free_port()
        self.peer_port = free_port()
        self.tls_files = make_tls_files(self.data_dir) if tls else None
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.client_port}"
        self.log = open(os.path.join(self.data_dir, "etcd.log"), "wb")
        self.process: subprocess.Popen | None = None

    def _health_context(self):
        if self.tls_files is None:
            return None
        import ssl

        context = ssl.create_default_context(cafile=self.tls_files["ca"])
        context.load_cert_chain(self.tls_files["client_cert"], self.tls_files["client_key"])
        return context

    def __enter__(self) -> "EtcdServer":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self, timeout: float = 30.0) -> None:
        binary = shutil.which("etcd")
        if binary is None:
            raise HarnessError("etcd is not installed: apt-get install -y etcd-server (see .ci/run)")
        peer = f"http://127.0.0.1:{self.peer_port}"
        tls = [] if self.tls_files is None else [
            "--cert-file", self.tls_files["server_cert"], "--key-file", self.tls_files["server_key"],
            "--client-cert-auth", "--trusted-ca-file", self.tls_files["ca"],
        ]
        self.process = subprocess.Popen(
            [
                binary, "--name", self.name, "--data-dir", os.path.join(self.data_dir, "data"),
                "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
                "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                "--initial-cluster", f"{self.name}={peer}", *tls,
            ],
            stdout=self.log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise HarnessError(f"etcd exited with {self.process.returncode}; see {self.log.name}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=1, context=self._health_context()) as response:
                    if json.loads(response.read()).get("health") == "true":
                        return
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise HarnessError(f"etcd did not become healthy within {timeout} s")

    def restart(self) -> None:
        """Stop and start again on the same ports and data: clients reconnect."""
        self.stop(keep=True)
        self.start()

    def stop(self, keep: bool = False) -> None:
        """Stop it; unless `keep`, close its log (and remove a data dir it made)."""
        _end(self.process)
        if not keep:
            self.log.close()
            if self.own_dir:
                shutil.rmtree(self.data_dir, ignore_errors=True)


def _end(process: subprocess.Popen | None) -> None:
    """A server child stopped: asked to (SIGTERM), then made to."""
    if process and process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def postgres_bindir() -> str:
    """Where PostgreSQL's server programs are: beside `initdb` on the PATH, else the
    newest of Debian's /usr/lib/postgresql/N/bin (the `postgresql` package's place)."""
    found = shutil.which("initdb")
    if found:
        return os.path.dirname(os.path.realpath(found))
    versions = sorted((d for d in os.listdir("/usr/lib/postgresql") if d.isdigit()), key=int) \
        if os.path.isdir("/usr/lib/postgresql") else []
    if not versions:
        raise HarnessError("PostgreSQL is not installed: apt-get install -y postgresql (see .ci/run)")
    return f"/usr/lib/postgresql/{versions[-1]}/bin"


class PostgresServer:
    """A throwaway PostgreSQL cluster on a free loopback port: `initdb` in a temporary
    dir, then `postgres` listening on 127.0.0.1 only, trusting local connections (a test
    server, never a deployment). PostgreSQL refuses to run as root, so a root process
    runs it as the `postgres` system user the Debian package makes. `dsn` is what
    asyncpg takes. As a context manager it starts and stops."""

    USER = "chatrelay"

    def __init__(self) -> None:
        self.data_dir = tempfile.mkdtemp(prefix="chatrelay-pg-")
        self.port = free_port()
        self.dsn = f"postgresql://{self.USER}@127.0.0.1:{self.port}/postgres"
        self.log_path = os.path.join(self.data_dir, "postgres.log")
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> "PostgresServer":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _as_server_user(self) -> list[str]:
        if os.geteuid() != 0:
            return []
        shutil.chown(self.data_dir, "postgres", "postgres")
        return ["runuser", "-u", "postgres", "--"]

    def start(self, timeout: float = 60.0) -> None:
        bindir, run_as = postgres_bindir(), self._as_server_user()
        cluster = os.path.join(self.data_dir, "cluster")
        if not os.path.isdir(cluster):
            initdb = subprocess.run(
                [*run_as, f"{bindir}/initdb", "-D", cluster, "-U", self.USER, "--auth=trust", "-E", "UTF8"],
                capture_output=True, text=True)
            if initdb.returncode != 0:
                raise HarnessError(f"initdb failed: {initdb.stderr.strip()}")
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [*run_as, f"{bindir}/postgres", "-D", cluster, "-p", str(self.port),
                 "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.data_dir}"],
                stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise HarnessError(f"postgres exited with {self.process.returncode}; see {self.log_path}")
            ready = subprocess.run([f"{bindir}/pg_isready", "-h", "127.0.0.1", "-p", str(self.port)],
                                   capture_output=True)
            if ready.returncode == 0:
                return
            time.sleep(0.2)
        self.stop()
        raise HarnessError(f"postgres did not accept connections within {timeout} s")

    def halt(self, mode: str = "fast") -> None:
        """Stop the server, keeping its data (`pg_ctl stop`: `fast` rolls back what is
        going on and closes every connection; `immediate` is a crash)."""
        if self.process is None or self.process.poll() is not None:
            return
        done = subprocess.run(
            [*self._as_server_user(), f"{postgres_bindir()}/pg_ctl", "stop", "-D",
             os.path.join(self.data_dir, "cluster"), "-m", mode, "-w", "-t", "30"], capture_output=True, text=True)
        if done.returncode != 0:
            raise HarnessError(f"pg_ctl stop failed: {done.stderr.strip()}")
        self.process.wait(timeout=30)

    def stop(self) -> None:
        _end(self.process)
        shutil.rmtree(self.data_dir, ignore_errors=True)


def serve_relay_service(servicer, port_queue) -> None:
    """Serve `servicer` (a RelayService) over TLS, as a relay serves, with a certificate
    of its own on a free loopback port, until the process is stopped; `PIN@127.0.0.1:PORT`
    goes on `port_queue`. The benchmarks' reference servers, each in a process of its own."""
    import asyncio

    import grpc

    from chatrelay import tls
    from chatrelay.v1 import relay_pb2_grpc

    async def main():
        server = grpc.aio.server()
        relay_pb2_grpc.add_RelayServiceServicer_to_server(servicer, server)
        key_pem, cert_pem = tls.make_certificate()
        port = server.add_secure_port("127.0.0.1:0", grpc.ssl_server_credentials([(key_pem, cert_pem)]))
        port_queue.put(tls.join_target(tls.pin_of_pem(cert_pem), f"127.0.0.1:{port}"))
        await server.start()
        await server.wait_for_termination()

    asyncio.run(main())


# A benchmark's one client makes thousands of groups over one connection, which the
# per-connection quotas are there to refuse: benchmarks that do start relays without them.
NO_QUOTAS = {
    "registrations_per_minute": 0, "link_stores_per_minute": 0, "queues_per_minute": 0,
    "registrations_per_second": 0, "streams_per_reader": 0,
}


def start_relay(data_dir=None, **overrides) -> up.RunningRelay:
    """A relay as `chatrelay up` starts it (2 shards unless told), on a free loopback
    port, in this process's Ray (started here if there is none)."""
    if data_dir is None:
        data_dir = tempfile.mkdtemp(prefix="chatrelay-relay-")
    return up.start(Settings(**{"data_dir": data_dir, "listen": "127.0.0.1:0", "shards": 2, **overrides}))
