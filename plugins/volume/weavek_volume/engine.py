"""The Docker side: the data-only container, its named volume, and where the volume lives.

Weave kept its database in a data-only container named ``weavedb``
(``docker create --name weavedb -v /weavedb weaveworks/weavedb``), which the
router container reached with ``--volumes-from weavedb``. We make the same
container, with two differences:

* The volume is a **named** volume (the container's name), not an anonymous
  one: ``docker rm -v weavedb`` or ``docker container prune`` then removes
  the container but not the data, and the next start re-creates the
  container over the same volume. While the container exists, Docker
  refuses ``docker volume rm`` and ``docker volume prune`` skips the volume:
  the container is what keeps the volume "in use".
* The container's image is ours and made on the spot: an empty filesystem
  imported from a tar built in memory (:data:`IMAGE`, 0 bytes), so no
  registry is needed (Weave pulled ``weaveworks/weavedb``) and the container
  does not pin an image the user may want to remove. The container is only
  ever created, never started.

Everything here is synchronous (the docker SDK is) and runs in a worker
thread; it is needed at start only. The daemon being unreachable raises
:class:`~weavek.interfaces.StoreUnavailable`; anything Docker refuses, or a
container or volume that is not ours to use, raises
:class:`~weavek_volume.VolumeError` before anything is written.
"""

from __future__ import annotations

import io
import logging
import os
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import docker
import docker.errors
import requests
from docker.models.containers import Container
from docker.models.volumes import Volume

from weavek.interfaces import StoreUnavailable

from .errors import VolumeError
from .target import Target

__all__ = [
    "IMAGE",
    "LABEL",
    "MOUNT_PATH",
    "TIMEOUT",
    "Found",
    "connect",
    "find_volume",
    "make_container",
    "unavailable",
]

log = logging.getLogger(__name__)
_T = TypeVar("_T")

LABEL = {"io.weavek.store": "volume"}
"""On the container, the volume and the image we create; a container without it is not ours."""
IMAGE = "weavek/weavedb:local"
"""The data-only container's image; ``:local`` because it is made here, never pulled."""
MOUNT_PATH = "/weavedb"
"""Where the volume is mounted in the data-only container (as in Weave's)."""
TIMEOUT = 30
"""Seconds to wait for any one Docker API call."""

# Errors that mean "the daemon did not answer", as opposed to "the daemon said no".
_UNREACHABLE = (requests.ConnectionError, requests.Timeout)


def unavailable(target: Target, err: BaseException) -> StoreUnavailable:
    """The one-line StoreUnavailable for a daemon that did not answer."""
    return StoreUnavailable(
        f"docker daemon unreachable at {target.docker_host} ({_reason(err)}): "
        f"the volume store needs it at start to find volume {target.name}"
    )


def connect(target: Target) -> docker.DockerClient:
    """A client for the daemon at ``target.docker_host``, once it has answered.

    TLS settings come from ``DOCKER_TLS_VERIFY`` and ``DOCKER_CERT_PATH`` as
    for the docker CLI; a CLI context is never used, since ``DOCKER_HOST`` is
    always set here. The API version is the daemon's (asked here, which is
    also the reachability check).
    """
    environment = dict(os.environ, DOCKER_HOST=target.docker_host)
    try:
        return docker.from_env(environment=environment, timeout=TIMEOUT)
    except docker.errors.DockerException as err:
        if _is_unreachable(err):
            raise unavailable(target, err) from err
        raise VolumeError(target.name, f"cannot use {target.docker_host}: {_reason(err)}") from err


@dataclass(frozen=True, slots=True)
class Found:
    """The volume that holds the database, and whether its data-only container exists yet."""

    volume: str
    mountpoint: str
    """The volume's directory as the Docker host sees it (``/var/lib/docker/volumes/N/_data``)."""
    has_container: bool


def find_volume(client: docker.DockerClient, target: Target) -> Found:
    """The volume of the data-only container ``target.name``; the volume is made if missing.

    The container is made afterwards, by :func:`make_container`, once the
    database in the volume has been accepted: a refused database leaves no
    container pinning the volume.

    :raises StoreUnavailable: the daemon stopped answering.
    :raises VolumeError: a container of that name that is not ours, a volume
        that is not a plain local directory, or anything else Docker refused.
    """
    return _call(target, _find, client, target.name)


def make_container(client: docker.DockerClient, target: Target, found: Found) -> None:
    """Create the data-only container over ``found.volume`` (and its image) if it is missing."""
    if not found.has_container:
        _call(target, _create_container, client, target.name, found.volume)


def _call(target: Target, func: Callable[..., _T], *args: object) -> _T:
    """``func(*args)``, with the daemon's errors turned into this store's."""
    try:
        return func(*args)
    except docker.errors.DockerException as err:
        if _is_unreachable(err):
            raise unavailable(target, err) from err
        raise VolumeError(target.name, f"docker refused: {_reason(err)}") from err
    except _UNREACHABLE as err:
        raise unavailable(target, err) from err


def _find(client: docker.DockerClient, name: str) -> Found:
    container = _get(client.containers, name)
    volume_name = name if container is None else _volume_of(container, name)
    volume = _get(client.volumes, volume_name)
    if volume is None:
        # Idempotent in Docker for the local driver: a racing peer gets the same volume.
        volume = client.volumes.create(volume_name, driver="local", labels=LABEL)
        log.info("volume %s: created the Docker volume", name)
    return Found(volume_name, _check_volume(volume, name), container is not None)


def _get(collection: Any, name: str) -> Any:
    try:
        return collection.get(name)
    except docker.errors.NotFound:
        return None


def _volume_of(container: Container, name: str) -> str:
    """The named volume our data-only container mounts; refuses a container that is not ours."""
    labels = container.labels or {}
    if any(labels.get(key) != value for key, value in LABEL.items()):
        image = container.attrs.get("Config", {}).get("Image", "?")
        raise VolumeError(
            name,
            f"a container named {name} exists (image {image}) and was not made by weavek; "
            f"remove or rename it, or use --persist volume=OTHER_NAME",
        )
    for mount in container.attrs.get("Mounts", []):
        if mount.get("Destination") == MOUNT_PATH and mount.get("Type") == "volume":
            volume: str = mount["Name"]
            return volume
    raise VolumeError(name, f"weavek's container {name} has no volume at {MOUNT_PATH}; remove it")


def _check_volume(volume: Volume, name: str) -> str:
    """The volume's Mountpoint, if it is a plain local directory that is always there."""
    attrs = volume.attrs
    driver, options = attrs.get("Driver"), attrs.get("Options") or {}
    # A local volume with mount options (NFS, a device) is mounted only while a container
    # that uses it runs; ours never runs, so its Mountpoint would be an empty directory.
    if driver != "local" or options:
        raise VolumeError(
            name,
            f"volume {volume.name} has driver {driver!r} and options {options!r}; the volume "
            "store needs a plain local volume (no driver options), whose directory always exists",
        )
    mountpoint = attrs.get("Mountpoint")
    if not isinstance(mountpoint, str) or not mountpoint.startswith("/"):
        raise VolumeError(name, f"Docker gives no directory for volume {volume.name}")
    return mountpoint


def _create_container(client: docker.DockerClient, name: str, volume_name: str) -> None:
    _ensure_image(client, name)
    try:
        client.containers.create(
            IMAGE,
            name=name,
            volumes={volume_name: {"bind": MOUNT_PATH, "mode": "rw"}},
            labels=LABEL,
            network_mode="none",
        )
    except docker.errors.APIError as err:
        if err.status_code != 409:
            raise
        # Another peer is making it at this moment: use theirs, if it is ours. Docker reserves
        # the name before the container can be inspected, so give it a moment to appear.
        deadline = time.monotonic() + TIMEOUT
        while (container := _get(client.containers, name)) is None:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
        _volume_of(container, name)
        return
    log.info("volume %s: created the data-only container %s (image %s)", name, name, IMAGE)


def _ensure_image(client: docker.DockerClient, name: str) -> None:
    if _get(client.images, IMAGE) is not None:
        return
    repository, _, tag = IMAGE.rpartition(":")
    # The image's only content; it also gives `docker run --volumes-from` users a mount point.
    changes = [f"LABEL {key}={value}" for key, value in LABEL.items()]
    changes.append('CMD ["/weavedb-data-only"]')  # never run; `docker create` needs a command
    client.api.import_image_from_data(_empty_rootfs(), repository, tag, changes)
    if _get(client.images, IMAGE) is None:
        raise VolumeError(name, f"docker did not create the image {IMAGE}")
    log.info("volume %s: made the image %s", name, IMAGE)


def _empty_rootfs() -> bytes:
    """A tar holding one empty directory, ``weavedb``: the data-only image's filesystem."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        entry = tarfile.TarInfo(MOUNT_PATH.lstrip("/"))
        entry.type, entry.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(entry)
    return buffer.getvalue()


def _is_unreachable(err: BaseException) -> bool:
    return any(isinstance(e, _UNREACHABLE) for e in _causes(err))


def _causes(err: BaseException) -> list[BaseException]:
    """``err`` and every exception inside it: causes, contexts, and exceptions in its args.

    requests and urllib3 wrap the OS error several layers deep, in all three ways.
    """
    found: list[BaseException] = []
    todo: list[object] = [err]
    while todo:
        item = todo.pop(0)
        if not isinstance(item, BaseException) or any(item is seen for seen in found):
            continue
        found.append(item)
        todo += [item.__cause__, item.__context__, getattr(item, "reason", None), *item.args]
    return found


def _reason(err: BaseException) -> str:
    """The most telling one line: the OS error underneath (``Connection refused``), if any."""
    for inner in _causes(err):
        if isinstance(inner, OSError) and inner.strerror:
            return inner.strerror
    if isinstance(err, docker.errors.APIError) and err.explanation:
        return str(err.explanation).strip().splitlines()[0]
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
