"""The image (issue 20): deploy/Containerfile built with buildah (Debian's package, as
.ci/run installs it; vfs storage, chroot isolation) on a Debian base made by
scripts/make_base_image.sh, then run: the package comes from the wheel installed in the
image, never from a source folder where it runs, and `chatrelay up` in it serves the CLI
scenario run from outside it until it is stopped."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import signal
import subprocess

import pytest
import yaml

from chatrelay.links import ShortLink

from realparts import Lines, free_port, ok

ROOT = pathlib.Path(__file__).resolve().parents[2]
BASE = "localhost/chatrelay-base:bookworm"
IMAGE = "localhost/chatrelay-test:0.1.0"
BUILDAH = {**os.environ, "STORAGE_DRIVER": "vfs", "BUILDAH_ISOLATION": "chroot"}
# pip in the build verifies PyPI with the CA bundle pip here uses (a proxy may sign with a
# CA of its own), passed as a build secret: no layer keeps it.
CA_BUNDLE = os.environ.get("PIP_CERT") or "/etc/ssl/certs/ca-certificates.crt"
START_S = 180


def buildah(*args, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run(["buildah", *args], env=BUILDAH, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def image():
    if shutil.which("buildah") is None or shutil.which("debootstrap") is None:
        pytest.skip("buildah or debootstrap is not installed (Debian's packages; .ci/run installs them)")
    made = subprocess.run(["bash", str(ROOT / "scripts" / "make_base_image.sh"), BASE], env=BUILDAH,
                          capture_output=True, text=True, timeout=900)
    assert made.returncode == 0, made.stdout + made.stderr
    secret = ["--secret", f"id=ca-bundle,src={CA_BUNDLE}"] if os.path.isfile(CA_BUNDLE) else []
    built = subprocess.run(
        ["buildah", "build", "--layers=false", "-f", "deploy/Containerfile", "--build-arg", f"BASE={BASE}",
         *secret, "-t", IMAGE, "."], cwd=ROOT, env=BUILDAH, capture_output=True, text=True, timeout=1200)
    assert built.returncode == 0, built.stdout[-4000:] + built.stderr[-4000:]
    yield IMAGE
    buildah("rmi", "--force", IMAGE)


@pytest.fixture
def container(image):
    made = buildah("from", image)
    assert made.returncode == 0, made.stderr
    name = made.stdout.strip()
    yield name
    buildah("rm", name)


def in_container(name: str, *command: str) -> list[str]:
    return ["buildah", "run", "--isolation", "chroot", name, "--", *command]


def test_the_package_comes_from_the_wheel_not_from_where_it_runs(container):
    script = ("import os, chatrelay, chatrelay.cluster.up, ray; "
              "print(chatrelay.__file__); print(ray.__version__); print(os.getcwd()); print(os.getuid()); "
              "print(sorted(n for n in os.listdir() if not n.startswith('.')))")
    seen = subprocess.run(in_container(container, "python3", "-c", script), env=BUILDAH, capture_output=True,
                          text=True, timeout=120)
    assert seen.returncode == 0, seen.stderr
    package, ray_version, cwd, uid, listing = seen.stdout.splitlines()
    assert package == "/opt/chatrelay/lib/python3.11/site-packages/chatrelay/__init__.py"
    values = yaml.safe_load((ROOT / "helm" / "chatrelay" / "values.yaml").read_text())
    assert ray_version == values["ray"]["version"]
    assert (cwd, uid, listing) == ("/home/ray", "1000", "[]")
    found = subprocess.run(in_container(container, "find", "/", "-xdev", "-name", "pyproject.toml", "-path", "*chatrelay*"),
                           env=BUILDAH, capture_output=True, text=True, timeout=120)
    assert found.stdout == ""  # no source tree anywhere in the image


def process_running(command_part: str) -> int:
    """The pid of the one process whose command line holds `command_part` (chroot
    isolation shares this PID namespace)."""
    found = []
    for cmdline in pathlib.Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if command_part in text and "buildah" not in text:
            found.append(int(cmdline.parent.name))
    [pid] = found
    return pid


class UpInImage:
    """`chatrelay up` in a container of the image, on a loopback port; `mounts`, buildah
    run's --mount values."""

    def __init__(self, container: str, log_path: pathlib.Path, mounts=()) -> None:
        self.listen = f"127.0.0.1:{free_port()}"
        self.log_path = log_path
        self.log = open(log_path, "w")
        options = [a for m in mounts for a in ("--mount", m)]
        command = ["buildah", "run", "--isolation", "chroot", *options, container, "--",
                   "chatrelay", "up", "--listen", self.listen]
        self.proc = subprocess.Popen(command, env=BUILDAH, stdout=subprocess.PIPE, stderr=self.log, text=True)
        lines = Lines(self.proc.stdout)
        started = [line.strip() for line in lines.take(2, START_S)]
        if len(started) < 2 or started[1] != "ready":
            self.kill()
            pytest.fail(f"chatrelay up in the image did not start: {started}; {log_path.read_text()[-3000:]}")
        self.link = started[0]
        assert self.link.startswith(f"https://{self.listen}/r#")

    def stop(self) -> int:
        """SIGINT, as a user stops it; its exit status."""
        os.kill(process_running(f"chatrelay up --listen {self.listen}"), signal.SIGINT)
        status = self.proc.wait(timeout=120)
        self.log.close()
        assert "stopping" in self.log_path.read_text().splitlines()
        return status

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=60)
        self.log.close()


def test_chatrelay_up_in_the_image_serves_until_stopped(container, tmp_path):
    up = UpInImage(container, tmp_path / "up.log")
    try:
        owner, bob = str(tmp_path / "owner.json"), str(tmp_path / "bob.json")
        channel = ok("channel", "create", "--relay", up.link, "--name", "From the image", "--state", owner).strip()
        ok("join", channel, "--state", bob, "--name", "Bob")
        ok("post", "--state", owner, "served from the image")
        assert ok("read", "--state", bob).splitlines() == ["served from the image"]
        assert up.stop() == 0
    finally:
        up.kill()


KEY_FILES = ("relay-identity.key", "operator.key", "tls.key", "tls.crt")
FS_GROUP = 1000  # the chart's podSecurityContext.fsGroup, the image's user's group


def test_the_image_runs_on_volumes_as_the_chart_mounts_them(container, tmp_path):
    """As Kubernetes mounts the chart's volumes for a pod running as the image's user,
    with fsGroup: a data volume of root's (group fsGroup, 2777), and the keys of a Secret
    read-only (root, group fsGroup, 0440) on top of it. The relay keeps its identity."""
    volume, secret, again = tmp_path / "volume", tmp_path / "secret", tmp_path / "volume-again"
    for folder in (volume, again):
        folder.mkdir()
        os.chown(folder, 0, FS_GROUP)
        os.chmod(folder, 0o2777)
    first = UpInImage(container, tmp_path / "first.log", [f"type=bind,src={volume},dst=/var/lib/chatrelay,rw"])
    try:
        assert first.stop() == 0  # it made its keys there, its own
    finally:
        first.kill()
    secret.mkdir()
    for name in KEY_FILES:
        shutil.copy(volume / name, secret / name)
        os.chown(secret / name, 0, FS_GROUP)
        os.chmod(secret / name, 0o440)
        (again / name).touch()  # the mount points, as the kubelet makes them for subPath mounts
    keys = [f"type=bind,src={secret / name},dst=/var/lib/chatrelay/{name},ro" for name in KEY_FILES]
    second = UpInImage(container, tmp_path / "second.log", [f"type=bind,src={again},dst=/var/lib/chatrelay,rw", *keys])
    try:
        # The Secret's TLS key (its pin in the link) and operator key (status is signed by it).
        assert ShortLink.parse(second.link).pins == ShortLink.parse(first.link).pins
        seen = json.loads(ok("status", "--relay", second.link, "--operator-key", str(secret / "operator.key"), "--json"))
        assert seen["health"] == "serving"
        assert second.stop() == 0
    finally:
        second.kill()
    assert [oct(os.stat(secret / name).st_mode & 0o777) for name in KEY_FILES] == ["0o440"] * 4
