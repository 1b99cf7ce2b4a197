"""Real ``containerd`` and ``dockerd`` daemons for tests, on private sockets and directories.

Each daemon lives in a directory of its own under ``/tmp`` (``wkd<pid>x<n>``,
short enough for Unix socket paths) holding its sockets, data and state, its
log and the runc state of its containers. Nothing touches the machine's usual
``/var/lib/docker``, ``/run/docker.sock`` or ``/run/containerd/containerd.sock``:

* containerd runs with its own config (root, state, sockets in the
  directory; the CRI plugin disabled);
* dockerd runs in the root network namespace with ``--bridge=none
  --iptables=false --ip6tables=false --ip-masq=false`` (it creates no network
  at all), its own config file, data and exec roots, and either its own
  containerd or a given one. It is never started under ``ip netns exec``,
  which remounts ``/sys`` and hides the cgroups dockerd needs.

A busybox image is built from the ``busybox-static`` binary, never pulled:
``docker import`` of a rootfs tarball, ``ctr images import`` of an OCI archive
built here (:func:`write_oci_archive`).

:func:`containerd_daemon` and :func:`docker_daemon` are context managers that
start a daemon, wait until it answers, and on exit -- also on failure --
kill every container it runs, stop it, kill any shim left behind, unmount
what it mounted and remove the directory. A daemon that cannot start raises
:class:`DaemonError` with the tail of its log. :func:`remove_stale` clears
what test processes that died without cleaning up left behind (``/run`` and
``/tmp`` are on disk on these machines).

The pytest fixtures in :mod:`weavek.testing.pytest_plugin` wrap these.
Everything here needs root, like the daemons themselves.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = [
    "BUSYBOX_IMAGE",
    "Containerd",
    "DaemonError",
    "Dockerd",
    "build_busybox_rootfs",
    "containerd_daemon",
    "docker_daemon",
    "remove_stale",
    "write_oci_archive",
]

PREFIX = "wkd"
BUSYBOX_IMAGE = "docker.io/library/wkbusybox:latest"
"""The busybox image every daemon started here has (docker calls it ``wkbusybox:latest``)."""
START_TIMEOUT = 60.0  # two shared cores: a daemon can take seconds under load
STOP_TIMEOUT = 20.0
_counter = itertools.count()


class DaemonError(RuntimeError):
    """A daemon (or a command against it) failed; the message ends with its log tail."""


def _check_prerequisites(*tools: str) -> None:
    if os.geteuid() != 0:
        raise DaemonError("dockerd and containerd tests must run as root")
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        needed = "apt-get install docker.io containerd runc busybox-static"
        raise DaemonError(f"missing {', '.join(missing)}: {needed}")


def _run(argv: list[str], *, what: str, timeout: float = 60, stdin: bytes | None = None) -> str:
    done = subprocess.run(
        argv,
        input=stdin,
        capture_output=True,
        timeout=timeout,
        check=False,
        stdin=None if stdin is not None else subprocess.DEVNULL,
    )
    if done.returncode != 0:
        err = done.stderr.decode(errors="replace").strip()
        raise DaemonError(f"{what}: {' '.join(argv)} failed ({done.returncode}): {err}")
    return done.stdout.decode(errors="replace")


def _tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return "  (no log)"
    return "\n".join(f"  | {line}" for line in text.splitlines()[-lines:])


def _new_workdir() -> Path:
    """A fresh directory named after this process, so :func:`remove_stale` can tell it is ours."""
    return Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}x{next(_counter)}", dir="/tmp"))


# -- the busybox image ---------------------------------------------------------


def build_busybox_rootfs(dest: Path) -> Path:
    """A minimal root filesystem in ``dest``: ``/bin/busybox`` (static) and a link per applet."""
    busybox = shutil.which("busybox")
    if busybox is None:
        raise DaemonError("busybox not found: apt-get install busybox-static")
    for sub in ("bin", "proc", "sys", "dev", "etc", "tmp", "run"):
        (dest / sub).mkdir(parents=True, exist_ok=True)
    shutil.copy2(busybox, dest / "bin" / "busybox")
    applets = _run([busybox, "--list"], what="list busybox applets").split()
    for applet in applets:
        link = dest / "bin" / applet
        if applet != "busybox" and not link.exists():
            link.symlink_to("busybox")
    (dest / "etc" / "passwd").write_text("root:x:0:0:root:/:/bin/sh\n")
    (dest / "etc" / "group").write_text("root:x:0:\n")
    return dest


def _rootfs_tar(rootfs: Path) -> bytes:
    """The rootfs as an uncompressed tar, deterministic (sorted, owned by root, mtime 0)."""
    buf = io.BytesIO()

    def reset(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        info.mtime = 0
        return info

    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(rootfs.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(rootfs)), recursive=False, filter=reset)
    return buf.getvalue()


def _sha256(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def write_oci_archive(rootfs: Path, archive: Path, ref: str = BUSYBOX_IMAGE) -> Path:
    """An OCI image layout tarball of ``rootfs`` named ``ref``, for ``ctr images import``."""
    layer_tar = _rootfs_tar(rootfs)
    layer = gzip.compress(layer_tar, mtime=0)
    blobs: dict[str, bytes] = {}

    def blob(data: bytes) -> dict[str, object]:
        digest = _sha256(data)
        blobs[digest] = data
        return {"digest": digest, "size": len(data)}

    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [_sha256(layer_tar)]},
    }
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            **blob(json.dumps(config).encode()),
        },
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **blob(layer)}],
    }
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                **blob(json.dumps(manifest).encode()),
                "annotations": {
                    "io.containerd.image.name": ref,
                    "org.opencontainers.image.ref.name": ref.rpartition(":")[2],
                },
            }
        ],
    }
    with tarfile.open(archive, "w") as tar:

        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        add("oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode())
        add("index.json", json.dumps(index).encode())
        for digest, data in blobs.items():
            add(f"blobs/sha256/{digest.removeprefix('sha256:')}", data)
    return archive


# -- cleanup shared by both daemons --------------------------------------------


def _mounts_under(base: Path) -> list[str]:
    """Mount points below ``base`` (deepest first), from this process's mount table."""
    found = []
    prefix = str(base).rstrip("/") + "/"
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point.startswith(prefix) or point == str(base):
            found.append(point)
    return sorted(set(found), key=len, reverse=True)


def _pids_mentioning(text: str) -> list[int]:
    """Processes whose command line contains ``text`` (daemons and shims of one directory)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            pids.append(int(entry.name))
    return pids


def _kill_runc_containers(base: Path) -> None:
    """SIGKILL and delete every runc container whose state lives below ``base``."""
    runc = shutil.which("runc")
    if runc is None:
        return
    for state in base.rglob("state.json"):
        root, ident = state.parent.parent, state.parent.name
        for argv in (["kill", ident, "KILL"], ["delete", "--force", ident]):
            subprocess.run(
                [runc, "--root", str(root), *argv],
                capture_output=True,
                timeout=30,
                check=False,
                stdin=subprocess.DEVNULL,
            )


def _remove_dead_shim_sockets() -> None:
    """Remove sockets of dead shims from ``/run/containerd/s`` (containerd 1.6 keeps them there).

    A shim deletes its socket when it exits cleanly; only a killed one leaves
    it behind, under a hashed name we cannot tie to a daemon. So we remove the
    sockets no process listens on any more, which are nobody's.
    """
    shim_dir = Path("/run/containerd/s")
    if not shim_dir.is_dir():
        return
    for sock in shim_dir.iterdir():
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.settimeout(0.2)
            probe.connect(str(sock))
        except OSError:
            sock.unlink(missing_ok=True)
        finally:
            probe.close()


def _delete_netns(name: str) -> None:
    """Kill what runs in network namespace ``name`` (it would keep it alive), then delete it."""
    listed = subprocess.run(
        ["ip", "netns", "pids", name], capture_output=True, text=True, check=False, timeout=30
    )
    for pid in listed.stdout.split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)
    subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False, timeout=30)


def _sweep(base: Path) -> None:
    """Kill, unmount and remove everything of one daemon directory; never raises."""
    with contextlib.suppress(Exception):
        _kill_runc_containers(base)
    for _ in range(2):  # twice: a daemon killed mid-start may just have spawned a child
        for pid in _pids_mentioning(f"{base}/"):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
    for point in _mounts_under(base):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False, timeout=30)
    with contextlib.suppress(Exception):
        _remove_dead_shim_sockets()
    shutil.rmtree(base, ignore_errors=True)


def remove_stale() -> None:
    """Clear what test processes that are gone left: daemon directories, host namespaces."""
    netns_dir = Path("/run/netns")
    for path in netns_dir.glob(f"{PREFIX}*-host") if netns_dir.is_dir() else ():
        found = re.match(rf"{PREFIX}(\d+)x", path.name)
        if found and not Path(f"/proc/{found.group(1)}").exists():
            _delete_netns(path.name)
    for path in Path("/tmp").glob(f"{PREFIX}*"):
        found = re.match(rf"{PREFIX}(\d+)x", path.name)
        if found and path.is_dir() and not Path(f"/proc/{found.group(1)}").exists():
            _sweep(path)


class _Daemon:
    """A daemon process started by a test, its directory and log."""

    kind = "daemon"

    def __init__(self, base: Path) -> None:
        self.base = base
        self.log_path = base / f"{self.kind}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def _argv(self) -> list[str]:
        raise NotImplementedError

    def _answers(self) -> bool:
        raise NotImplementedError

    def log_tail(self, lines: int = 30) -> str:
        return _tail(self.log_path, lines)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        """Start the daemon and wait until it answers; raise with its log if it does not."""
        if self.running:
            return
        with open(self.log_path, "ab") as log:
            log.write(f"---- test: starting {' '.join(self._argv())}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self._argv(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while not self._answers():
            code = self.proc.poll()
            if code is not None:
                raise DaemonError(f"{self.kind} exited ({code}) at start:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise DaemonError(
                    f"{self.kind} did not answer in {START_TIMEOUT:g} s:\n{self.log_tail()}"
                )
            time.sleep(0.05)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the daemon (SIGTERM, then SIGKILL after a while); its containers stay on disk."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(sig)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(STOP_TIMEOUT)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


# -- containerd ------------------------------------------------------------------


class Containerd(_Daemon):
    """A containerd with its own config and directories; :attr:`address` is its socket path.

    :attr:`namespace` is the containerd namespace the helpers use by default;
    the busybox image is imported there (:data:`BUSYBOX_IMAGE`).
    """

    kind = "containerd"

    def __init__(self, base: Path, namespace: str = "weavek-test") -> None:
        super().__init__(base)
        self.namespace = namespace
        self.address = str(base / "containerd.sock")
        self.runc_root = base / "runc"
        self.config = base / "config.toml"
        self.config.write_text(
            "\n".join(
                [
                    "version = 2",
                    f'root = "{base / "root"}"',
                    f'state = "{base / "state"}"',
                    'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
                    "[grpc]",
                    f'  address = "{self.address}"',
                    "[ttrpc]",
                    f'  address = "{self.address}.ttrpc"',
                    "[debug]",
                    '  level = "info"',
                    "[metrics]",
                    '  address = ""',
                    "",
                ]
            )
        )

    def _argv(self) -> list[str]:
        return ["containerd", "--config", str(self.config)]

    def _answers(self) -> bool:
        if not Path(self.address).exists():
            return False
        done = subprocess.run(
            ["ctr", "-a", self.address, "version"],
            capture_output=True,
            timeout=10,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        return done.returncode == 0

    def ctr(self, *args: str, namespace: str | None = None, timeout: float = 60) -> str:
        """Run ``ctr ARGS`` against this daemon (in ``namespace``, default :attr:`namespace`)."""
        argv = ["ctr", "-a", self.address, "-n", namespace or self.namespace, *args]
        try:
            return _run(argv, what="ctr", timeout=timeout)
        except DaemonError as exc:
            raise DaemonError(f"{exc}\n{self.log_tail(10)}") from None

    def import_busybox(self, namespace: str | None = None) -> str:
        """Import the busybox image into ``namespace``; its reference."""
        archive = self.base / "busybox-oci.tar"
        if not archive.exists():
            rootfs = build_busybox_rootfs(self.base / "busybox-rootfs")
            write_oci_archive(rootfs, archive)
        self.ctr("images", "import", str(archive), namespace=namespace)
        return BUSYBOX_IMAGE

    def run(self, ident: str, *cmd: str, namespace: str | None = None) -> int:
        """Start a busybox container ``ident`` (no network of its own: ``lo`` only); its pid."""
        self.ctr(
            "run",
            "-d",
            "--runc-root",
            str(self.runc_root),
            "--fifo-dir",
            str(self.base / "fifo"),
            BUSYBOX_IMAGE,
            ident,
            *(cmd or ("sleep", "3600")),
            namespace=namespace,
        )
        return self.pid(ident, namespace=namespace)

    def exec(self, ident: str, *cmd: str, namespace: str | None = None, timeout: float = 60) -> str:
        """Run ``cmd`` inside the running container ``ident``; its output."""
        exec_id = f"x{next(_counter)}"
        return self.ctr(
            "tasks", "exec", "--exec-id", exec_id, "--fifo-dir", str(self.base / "fifo"),
            ident, *cmd, namespace=namespace, timeout=timeout,
        )  # fmt: skip

    def pid(self, ident: str, namespace: str | None = None) -> int:
        """The pid of the task of container ``ident`` (0 when it has none)."""
        for line in self.ctr("tasks", "ls", namespace=namespace).splitlines()[1:]:
            fields = line.split()
            if fields and fields[0] == ident:
                return int(fields[1])
        return 0

    def kill(self, ident: str, namespace: str | None = None) -> None:
        """SIGKILL the task of ``ident`` (the container and its task record stay)."""
        self.ctr("tasks", "kill", "-s", "SIGKILL", ident, namespace=namespace)

    def restart_task(self, ident: str, namespace: str | None = None) -> int:
        """Kill ``ident``'s task, delete it and start a new one (containerd has no restart); pid."""
        with contextlib.suppress(DaemonError):
            self.kill(ident, namespace=namespace)
        self._delete_task(ident, namespace)
        self.ctr(
            "tasks", "start", "-d", "--fifo-dir", str(self.base / "fifo"), ident,
            namespace=namespace,
        )  # fmt: skip
        return self.pid(ident, namespace=namespace)

    def _delete_task(self, ident: str, namespace: str | None) -> None:
        """Delete the task once it has exited (a kill takes a moment to land)."""
        deadline = time.monotonic() + 10
        while True:
            try:
                self.ctr("tasks", "delete", ident, namespace=namespace)
                return
            except DaemonError as exc:
                if "not found" in str(exc):
                    return
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def remove(self, ident: str, namespace: str | None = None) -> None:
        """Delete ``ident``'s task (killed first if running) and the container."""
        with contextlib.suppress(DaemonError):
            self.kill(ident, namespace=namespace)
        self._delete_task(ident, namespace)
        self.ctr("containers", "delete", ident, namespace=namespace)

    def clear(self) -> None:
        """Kill and delete every task and container in every namespace (best effort)."""
        if not self.running:
            return
        with contextlib.suppress(Exception):
            namespaces = self.ctr("namespaces", "ls", "-q").split()
            for ns in namespaces:
                for ident in self.ctr("containers", "ls", "-q", namespace=ns).split():
                    with contextlib.suppress(Exception):
                        self.remove(ident, namespace=ns)


@contextlib.contextmanager
def containerd_daemon(namespace: str = "weavek-test") -> Iterator[Containerd]:
    """A running containerd with the busybox image in ``namespace``; all gone on exit."""
    _check_prerequisites("containerd", "ctr", "runc", "busybox")
    daemon = Containerd(_new_workdir(), namespace)
    try:
        daemon.start()
        daemon.import_busybox()
        yield daemon
    finally:
        with contextlib.suppress(Exception):
            daemon.clear()
        with contextlib.suppress(Exception):
            daemon.stop()
        _sweep(daemon.base)


# -- dockerd ---------------------------------------------------------------------


class Dockerd(_Daemon):
    """A dockerd with no network of its own; :attr:`host` is its ``unix://`` address.

    Containers are started with ``--network none`` (:meth:`run`): they have
    ``lo`` only until weavek attaches them.
    """

    kind = "dockerd"

    def __init__(
        self, base: Path, containerd: str | None = None, *, live_restore: bool = False
    ) -> None:
        super().__init__(base)
        self.live_restore = live_restore
        self.socket = base / "docker.sock"
        self.host = f"unix://{self.socket}"
        self.containerd = containerd
        self.config = base / "daemon.json"
        self.config.write_text("{}\n")  # not /etc/docker/daemon.json

    def _argv(self) -> list[str]:
        argv = [
            "dockerd",
            "--config-file", str(self.config),
            "--data-root", str(self.base / "data"),
            "--exec-root", str(self.base / "exec"),
            "--pidfile", str(self.base / "dockerd.pid"),
            "-H", self.host,
            "--bridge=none",
            "--iptables=false",
            "--ip6tables=false",
            "--ip-masq=false",
            "--shutdown-timeout=2",  # containers run `sleep`, which ignores SIGTERM as pid 1
        ]  # fmt: skip
        if self.containerd is not None:
            argv += ["--containerd", self.containerd]
        if self.live_restore:  # containers keep running while the daemon is down
            argv.append("--live-restore")
        return argv

    def _answers(self) -> bool:
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.settimeout(2)
            probe.connect(str(self.socket))
            probe.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            answer = probe.recv(4096)
        except OSError:
            return False
        finally:
            probe.close()
        return answer.startswith(b"HTTP/1.") and b" 200 " in answer.split(b"\r\n", 1)[0]

    def docker(self, *args: str, timeout: float = 60, stdin: bytes | None = None) -> str:
        """Run the ``docker`` CLI against this daemon; its output, stripped."""
        argv = ["docker", "-H", self.host, *args]
        try:
            return _run(argv, what="docker", timeout=timeout, stdin=stdin).strip()
        except DaemonError as exc:
            raise DaemonError(f"{exc}\n{self.log_tail(10)}") from None

    def import_busybox(self) -> str:
        """Import the busybox image (``wkbusybox:latest``); its reference."""
        rootfs = build_busybox_rootfs(self.base / "busybox-rootfs")
        self.docker(
            "import", "--change", 'CMD ["/bin/sh"]', "--change", "ENV PATH=/bin",
            "-", BUSYBOX_IMAGE, stdin=_rootfs_tar(rootfs),
        )  # fmt: skip
        return BUSYBOX_IMAGE

    def run(self, name: str, *cmd: str, extra: tuple[str, ...] = ()) -> str:
        """Start a busybox container ``name`` with ``--network none``; its full ID."""
        return self.docker(
            "run", "-d", "--name", name, "--network", "none", *extra,
            BUSYBOX_IMAGE, *(cmd or ("sleep", "3600")),
        )  # fmt: skip

    def pid(self, name: str) -> int:
        """The pid of the container's init (0 when it is not running)."""
        return int(self.docker("inspect", "-f", "{{.State.Pid}}", name))

    def clear(self) -> None:
        """Remove every container, running or not (best effort)."""
        if not self.running:
            return
        with contextlib.suppress(Exception):
            idents = self.docker("ps", "-aq").split()
            if idents:
                self.docker("rm", "-f", *idents, timeout=120)


@contextlib.contextmanager
def docker_daemon(
    *, containerd: str | None = None, live_restore: bool = False
) -> Iterator[Dockerd]:
    """A running dockerd (its own containerd, or the one at ``containerd``) with busybox.

    With ``live_restore`` its containers survive :meth:`Dockerd.stop`.

    On exit every container is removed and the daemon stopped, even on failure.
    """
    _check_prerequisites("dockerd", "docker", "containerd", "runc", "busybox")
    daemon = Dockerd(_new_workdir(), containerd, live_restore=live_restore)
    try:
        daemon.start()
        daemon.import_busybox()
        yield daemon
    finally:
        with contextlib.suppress(Exception):
            daemon.clear()
        with contextlib.suppress(Exception):
            daemon.stop()
        _sweep(daemon.base)
