"""The part of containerd's gRPC API (v1) this runtime uses, without generated code.

containerd's Python stubs on PyPI (``containerd`` 1.5.3, 2021) were generated
by an old protoc and import only with ``protobuf<4`` or the slow pure-Python
protobuf; other weavek plugins (etcd clients) bring protobuf 5 to 7 into the
same environment, and code generated today would carry a runtime version
check that fails on older protobufs. So the few messages we need are
declared here as descriptors and built by protobuf's own message factory at
import time: any protobuf from 3.20 to 7 reads them, and gRPC only sees
bytes. The field numbers are containerd's (``api/services/*/v1/*.proto``,
``api/types/task/task.proto``, ``api/events/*.proto``, stable since 1.0);
fields we do not declare are skipped by the parser.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import (  # type: ignore[import-untyped]
    descriptor_pb2,
    descriptor_pool,
    message_factory,
)
from google.protobuf.message import DecodeError  # type: ignore[import-untyped]

__all__ = [
    "GET_CONTAINER",
    "GET_TASK",
    "LIST_CONTAINERS",
    "LIST_TASKS",
    "LIVE",
    "MESSAGES",
    "SUBSCRIBE",
    "VERSION",
    "Method",
    "decode_event",
]

_STRING = descriptor_pb2.FieldDescriptorProto.TYPE_STRING
_BYTES = descriptor_pb2.FieldDescriptorProto.TYPE_BYTES
_UINT32 = descriptor_pb2.FieldDescriptorProto.TYPE_UINT32
_MESSAGE = descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE
_ONE = descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL
_MANY = descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED
_PACKAGE = "weavek.containerd.v1"

# name -> fields as (field name, number, type, repeated, message type name)
_SCHEMA: dict[str, list[tuple[str, int, int, bool, str]]] = {
    "Empty": [],
    "Any": [("type_url", 1, _STRING, False, ""), ("value", 2, _BYTES, False, "")],
    # containers.v1
    "Container": [("id", 1, _STRING, False, "")],
    "GetContainerRequest": [("id", 1, _STRING, False, "")],
    "GetContainerResponse": [("container", 1, _MESSAGE, False, "Container")],
    "ListContainersRequest": [("filters", 1, _STRING, True, "")],
    "ListContainersResponse": [("containers", 1, _MESSAGE, True, "Container")],
    # tasks.v1 and types.Process (status is the enum containerd.v1.types.Status)
    "Process": [
        ("container_id", 1, _STRING, False, ""),
        ("id", 2, _STRING, False, ""),
        ("pid", 3, _UINT32, False, ""),
        ("status", 4, _UINT32, False, ""),
    ],
    "GetTaskRequest": [("container_id", 1, _STRING, False, ""), ("exec_id", 2, _STRING, False, "")],
    "GetTaskResponse": [("process", 1, _MESSAGE, False, "Process")],
    "ListTasksRequest": [("filter", 1, _STRING, False, "")],
    "ListTasksResponse": [("tasks", 1, _MESSAGE, True, "Process")],
    # events.v1
    "SubscribeRequest": [("filters", 1, _STRING, True, "")],
    "Envelope": [
        ("namespace", 2, _STRING, False, ""),
        ("topic", 3, _STRING, False, ""),
        ("event", 4, _MESSAGE, False, "Any"),
    ],
    # the event payloads (containerd.events.*)
    "TaskStart": [("container_id", 1, _STRING, False, ""), ("pid", 2, _UINT32, False, "")],
    "TaskExit": [
        ("container_id", 1, _STRING, False, ""),
        ("id", 2, _STRING, False, ""),
        ("pid", 3, _UINT32, False, ""),
        ("exit_status", 4, _UINT32, False, ""),
    ],
    "ContainerCreate": [("id", 1, _STRING, False, "")],
    "ContainerDelete": [("id", 1, _STRING, False, "")],
    # version.v1
    "VersionResponse": [("version", 1, _STRING, False, ""), ("revision", 2, _STRING, False, "")],
}

LIVE = frozenset({2, 4, 5})
"""Task statuses whose processes (and network namespace) exist: RUNNING, PAUSED, PAUSING."""


def _build() -> dict[str, Any]:
    proto = descriptor_pb2.FileDescriptorProto(
        name="weavek_containerd/api.proto", package=_PACKAGE, syntax="proto3"
    )
    for name, fields in _SCHEMA.items():
        message = proto.message_type.add(name=name)
        for field_name, number, kind, repeated, type_name in fields:
            field = message.field.add(
                name=field_name, number=number, type=kind, label=_MANY if repeated else _ONE
            )
            if type_name:
                field.type_name = f".{_PACKAGE}.{type_name}"
    pool = descriptor_pool.DescriptorPool()  # private: never clashes with other stubs
    pool.AddSerializedFile(proto.SerializeToString())  # what generated code does, 3.20 to 7
    pool_file = pool.FindFileByName(proto.name)
    get_class = getattr(message_factory, "GetMessageClass", None)
    if get_class is None:  # protobuf < 4.21
        factory = message_factory.MessageFactory(pool)
        get_class = factory.GetPrototype
    return {name: get_class(pool_file.message_types_by_name[name]) for name in _SCHEMA}


MESSAGES = _build()
"""Message classes by name (``MESSAGES["TaskExit"]``)."""


class Method:
    """One gRPC method of containerd: its path and request/response classes."""

    def __init__(self, path: str, request: str, response: str) -> None:
        self.path = path
        self.request = MESSAGES[request]
        self.response = MESSAGES[response]


VERSION = Method("/containerd.services.version.v1.Version/Version", "Empty", "VersionResponse")
GET_CONTAINER = Method(
    "/containerd.services.containers.v1.Containers/Get",
    "GetContainerRequest",
    "GetContainerResponse",
)
LIST_CONTAINERS = Method(
    "/containerd.services.containers.v1.Containers/List",
    "ListContainersRequest",
    "ListContainersResponse",
)
GET_TASK = Method("/containerd.services.tasks.v1.Tasks/Get", "GetTaskRequest", "GetTaskResponse")
LIST_TASKS = Method(
    "/containerd.services.tasks.v1.Tasks/List", "ListTasksRequest", "ListTasksResponse"
)
SUBSCRIBE = Method(
    "/containerd.services.events.v1.Events/Subscribe", "SubscribeRequest", "Envelope"
)


def decode_event(topic: str, payload: bytes) -> tuple[str, str] | None:
    """``(what, container ID)`` for an event we act on, else None (also for garbage).

    ``what`` is ``started``, ``exited``, ``created`` or ``deleted``. The exit of
    an exec'd process (its id is not the container's) is not the container's.
    """
    try:
        if topic == "/tasks/start":
            return _named("started", MESSAGES["TaskStart"].FromString(payload).container_id)
        if topic == "/tasks/exit":
            exited = MESSAGES["TaskExit"].FromString(payload)
            if exited.id and exited.id != exited.container_id:
                return None
            return _named("exited", exited.container_id)
        if topic == "/containers/create":
            return _named("created", MESSAGES["ContainerCreate"].FromString(payload).id)
        if topic == "/containers/delete":
            return _named("deleted", MESSAGES["ContainerDelete"].FromString(payload).id)
    except DecodeError:
        return None
    return None


def _named(what: str, ident: str) -> tuple[str, str] | None:
    return (what, ident) if ident else None
