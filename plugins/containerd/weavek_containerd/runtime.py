"""The ``containerd`` runtime: containerd containers, through containerd's gRPC API.

``--runtime containerd[=[ADDRESS][?namespace=NAME]]``: ADDRESS is the socket
(``/run/containerd/containerd.sock`` or ``unix:///run/containerd/containerd.sock``),
NAME the containerd namespace whose containers we attach and watch (``default``
as ``ctr`` uses; Docker's is ``moby``, Kubernetes' ``k8s.io``). Without them,
``$CONTAINERD_ADDRESS`` and ``$CONTAINERD_NAMESPACE`` as ``ctr`` reads them,
else the defaults. A container's ident is its containerd ID.

gRPC calls are made with grpcio's synchronous API in worker threads, so the
runtime works under any anyio backend; the messages are declared in
:mod:`weavek_containerd.api` (no generated stubs). A container's network
namespace is ``/proc/PID/ns/net`` of its task, so the peer must share
containerd's PID namespace; the veth, addresses and route are
:mod:`weavek_netns.plumbing`'s.

One background task subscribes to the namespace's events (task start, task
exit, container delete) and hands them to the peer; while containerd cannot
be reached it says so in :meth:`ContainerdRuntime.health` and reconnects with
backoff, then compares what it saw last with what exists now, so containers
that exited or were deleted meanwhile are reported too.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar
from urllib.parse import parse_qsl

import anyio
import anyio.abc
import grpc  # type: ignore[import-untyped]
from anyio.streams.memory import MemoryObjectSendStream

from weavek.core.address import CIDR
from weavek.interfaces import ContainerNotFound, RuntimeEvent
from weavek_netns.daemon import DaemonRuntime, Seen

from . import api

__all__ = [
    "DEFAULT_ADDRESS",
    "DEFAULT_NAMESPACE",
    "ContainerdRuntime",
    "ContainerdUnavailable",
    "parse_target",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_ADDRESS = "/run/containerd/containerd.sock"
DEFAULT_NAMESPACE = "default"
CALL_TIMEOUT = 10.0
# An event published between our subscription and our listing could be missed
# (grpc gives no signal that the server has registered the subscriber), so we
# compare views once more a little after each (re)connection.
RECHECK_AFTER = 1.0
# containerd's own rule for namespace names (namespaces.Validate).
_NAMESPACE = re.compile(r"[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*")
_TOPICS = ("/tasks/start", "/tasks/exit", "/containers/create", "/containers/delete")
# What api.decode_event says happened, in the shared runtime's words.
_SEEN: dict[str, Seen] = {
    "created": "created",
    "started": "started",
    "exited": "died",
    "deleted": "destroyed",
}
_GONE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED}


class ContainerdUnavailable(Exception):
    """containerd cannot be reached; the message says where, in one line."""


def parse_target(arg: str | None) -> tuple[str, str]:
    """``(socket path, namespace)`` from ``[ADDRESS][?namespace=NAME]``; ValueError if malformed."""
    text = arg or ""
    address, _, query = text.partition("?")
    address = address or os.environ.get("CONTAINERD_ADDRESS") or DEFAULT_ADDRESS
    namespace = os.environ.get("CONTAINERD_NAMESPACE") or DEFAULT_NAMESPACE
    for key, value in parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query)):
        if key != "namespace":
            raise ValueError(f"containerd runtime: unknown option {key!r} (only ?namespace=NAME)")
        namespace = value
    path = address.removeprefix("unix://")
    if not path.startswith("/"):
        raise ValueError(f"containerd runtime: {address!r} is not a socket path or unix:///path")
    if not _NAMESPACE.fullmatch(namespace):
        raise ValueError(f"containerd runtime: {namespace!r} is not a containerd namespace name")
    return path, namespace


class ContainerdRuntime(DaemonRuntime):
    """Attaches containerd containers (tasks) to the bridge; reports their deaths to the peer."""

    name = "containerd"
    daemon = "containerd"
    unreachable = (ContainerdUnavailable, grpc.RpcError)

    def __init__(
        self,
        arg: str | None,
        *,
        deliver: Callable[[RuntimeEvent], Any],
        bridge: str = "weavek",
        universe: CIDR | None = None,
        **kwargs: Any,
    ) -> None:
        # Keywords a newer shell may pass are accepted and ignored (see weavek.interfaces).
        super().__init__(arg, deliver=deliver, bridge=bridge, universe=universe)
        self.socket, self.namespace = parse_target(arg)
        self.address = f"unix://{self.socket}"
        self._metadata = (("containerd-namespace", self.namespace),)
        self._channel: grpc.Channel | None = None
        self._channel_lock = threading.Lock()

    def _close(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    # -- runtime -------------------------------------------------------------

    async def resolve(self, container: str) -> str | None:
        """``container`` itself when the namespace has a container with that ID, else None."""
        if not container or not _NAMESPACE.fullmatch(container):
            return None  # containerd would refuse it as an invalid ID
        try:
            reply = await self._call(api.GET_CONTAINER, id=container)
        except grpc.RpcError as error:
            if error.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                return None
            raise
        ident: str = reply.container.id
        return ident

    async def running(self) -> frozenset[str]:
        """Every container of the namespace, with or without a running task."""
        reply = await self._call(api.LIST_CONTAINERS)
        return frozenset(container.id for container in reply.containers)

    # -- the daemon ----------------------------------------------------------

    def _grpc(self) -> grpc.Channel:
        with self._channel_lock:
            if self._channel is None:
                self._channel = grpc.insecure_channel(self.address)
            return self._channel

    def _unavailable(self, error: grpc.RpcError) -> ContainerdUnavailable:
        detail = (error.details() or error.code().name).splitlines()[0]
        return ContainerdUnavailable(f"containerd unreachable at {self.address}: {detail}")

    async def _call(self, method: api.Method, **fields: Any) -> Any:
        """One unary call in a worker thread; unreachable -> :class:`ContainerdUnavailable`."""

        def work() -> Any:
            call = self._grpc().unary_unary(
                method.path,
                request_serializer=method.request.SerializeToString,
                response_deserializer=method.response.FromString,
            )
            return call(method.request(**fields), metadata=self._metadata, timeout=CALL_TIMEOUT)

        try:
            return await anyio.to_thread.run_sync(work, abandon_on_cancel=True)
        except grpc.RpcError as error:
            if error.code() in _GONE:
                raise self._unavailable(error) from None
            raise

    async def _pid(self, ident: str) -> int:
        """The host pid of the container's task; ContainerNotFound if it has none running."""
        try:
            reply = await self._call(api.GET_TASK, container_id=ident)
        except grpc.RpcError as error:
            if error.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                raise ContainerNotFound(f"no containerd task {ident} in {self.namespace}") from None
            raise
        process = reply.process
        if process.status not in api.LIVE or process.pid <= 0:
            raise ContainerNotFound(f"containerd task {ident} is not running")
        pid: int = process.pid
        return pid

    def _vanished(self, ident: str) -> str:
        return f"containerd task {ident} exited while being attached"

    async def _current(self) -> dict[str, bool]:
        """Every container of the namespace: ID -> whether its task runs."""
        containers = await self._call(api.LIST_CONTAINERS)
        tasks = await self._call(api.LIST_TASKS)
        # List fills in the task id (the container ID for its init), not container_id.
        live = {task.id or task.container_id for task in tasks.tasks if task.status in api.LIVE}
        return {container.id: container.id in live for container in containers.containers}

    # -- events --------------------------------------------------------------

    async def _follow(self) -> None:
        """Subscribe, reconcile with what exists now, then deliver events until the stream ends."""
        subscribe = self._grpc().unary_stream(
            api.SUBSCRIBE.path,
            request_serializer=api.SUBSCRIBE.request.SerializeToString,
            response_deserializer=api.SUBSCRIBE.response.FromString,
        )
        filters = [f'namespace=="{self.namespace}",topic=="{topic}"' for topic in _TOPICS]
        stream = subscribe(api.SUBSCRIBE.request(filters=filters), metadata=self._metadata)
        envelopes, received = anyio.create_memory_object_stream[Any](256)
        try:
            async with anyio.create_task_group() as reader:
                reader.start_soon(_pump, stream, envelopes)
                await self._reconcile(await self._current())
                self._connected()
                with anyio.move_on_after(RECHECK_AFTER):
                    await self._deliver_from(received)
                await self._reconcile(await self._current())
                await self._deliver_from(received)
        finally:
            stream.cancel()  # also wakes the reader thread still blocked on the stream

    async def _deliver_from(self, received: anyio.abc.ObjectReceiveStream[Any]) -> None:
        """Hand the peer the events of the stream until it fails (raises) or ends."""
        async for envelope in received:
            if isinstance(envelope, BaseException):
                raise envelope
            await self._handle(envelope.topic, envelope.event.value)
        raise ContainerdUnavailable("the event stream ended")

    async def _handle(self, topic: str, payload: bytes) -> None:
        decoded = api.decode_event(topic, payload)
        if decoded is None:
            if topic in _TOPICS:
                log.warning("ignored an undecodable containerd event on %s", topic)
            return
        what, ident = decoded
        await self._seen(_SEEN[what], ident)


async def _pump(stream: Iterator[Any], into: MemoryObjectSendStream[Any]) -> None:
    """Move envelopes from the blocking gRPC stream into ``into``, in one worker thread.

    One thread owns the stream, so no envelope is lost when the loop stops
    waiting for one; a failure is passed on as the last item.
    """

    def drain() -> None:
        try:
            for envelope in stream:
                anyio.from_thread.run(into.send, envelope)
        except grpc.RpcError as error:
            anyio.from_thread.run(into.send, error)
        finally:
            anyio.from_thread.run_sync(into.close)

    await anyio.to_thread.run_sync(drain, abandon_on_cancel=True)
