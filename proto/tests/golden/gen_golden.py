#!/usr/bin/env python3
"""Generates golden frames for burrow-proto with Google's reference protobuf implementation.

Run from anywhere (needs `pip install protobuf`, no protoc):

    python3 proto/tests/golden/gen_golden.py > proto/tests/golden/frames.json

The message class is built at run time from a descriptor that mirrors proto/tunnel.proto, so
the bytes come from Google's serializer, not from ours. Each case lists the fields (for the
Rust test to build the same message with prost) and the whole frame: a u16 big-endian length
prefix and the serialized message. `expect` says what our decoder must make of the frame:
"ok", or the name of the FrameError variant it must refuse it with. `strict_expect` is set
when the strict decoder (the service's) must decide differently.
"""

import json
import sys

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

F = descriptor_pb2.FieldDescriptorProto

SCHEMA_FIELDS = [
    ("type", 1, F.TYPE_ENUM, F.LABEL_OPTIONAL),
    ("streamId", 2, F.TYPE_INT32, F.LABEL_OPTIONAL),
    ("ignorable", 3, F.TYPE_BOOL, F.LABEL_OPTIONAL),
    ("payload", 4, F.TYPE_BYTES, F.LABEL_OPTIONAL),
    ("serviceId", 5, F.TYPE_STRING, F.LABEL_OPTIONAL),
    ("availableServiceIds", 6, F.TYPE_STRING, F.LABEL_REPEATED),
    ("connectionId", 7, F.TYPE_UINT32, F.LABEL_OPTIONAL),
]
TYPES = [
    "UNKNOWN",
    "DATA",
    "STREAM_START",
    "STREAM_RESET",
    "SESSION_RESET",
    "SERVICE_IDS",
    "CONNECTION_START",
    "CONNECTION_RESET",
]


def message_class(package, extra_fields=()):
    """Builds `Message` from a descriptor; `extra_fields` simulate a newer peer's schema."""
    fdp = descriptor_pb2.FileDescriptorProto(
        name=package.replace(".", "/") + "/tunnel.proto", package=package, syntax="proto3"
    )
    msg = fdp.message_type.add(name="Message")
    enum = msg.enum_type.add(name="Type")
    for number, name in enumerate(TYPES):
        enum.value.add(name=name, number=number)
    for name, number, kind, label in list(SCHEMA_FIELDS) + list(extra_fields):
        field = msg.field.add(name=name, number=number, type=kind, label=label)
        if kind == F.TYPE_ENUM:
            field.type_name = "." + package + ".Message.Type"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(package + ".Message"))


Message = message_class("com.amazonaws.iot.securedtunneling")
Extended = message_class(
    "com.amazonaws.iot.securedtunneling",
    extra_fields=[("futureField", 9, F.TYPE_UINT32, F.LABEL_OPTIONAL)],
)


def pattern(length, seed):
    """Deterministic payload bytes, recomputed by the Rust test from (length, seed)."""
    return bytes((i * 31 + seed) % 256 for i in range(length))


# (name, fields, expect, strict_expect). `payload` is given as [length, seed].
CASES = [
    ("unknown_type_zero", {"type": 0}, "TypeMissing", None),
    ("data_v1", {"type": 1, "streamId": 1, "payload": [5, 7]}, "ok", None),
    (
        "data_v3_all_stream_fields",
        {"type": 1, "streamId": 300, "payload": [200, 1], "serviceId": "SSH", "connectionId": 2},
        "ok",
        None,
    ),
    (
        "data_max_payload",
        {"type": 1, "streamId": 2147483647, "payload": [64512, 3], "serviceId": "RDP",
         "connectionId": 4294967295},
        "ok",
        None,
    ),
    ("data_negative_stream_id", {"type": 1, "streamId": -5, "payload": [1, 0]}, "ok", None),
    ("data_empty_payload", {"type": 1, "streamId": 9}, "ok", None),
    ("stream_start_v1", {"type": 2, "streamId": 42}, "ok", None),
    ("stream_start_v2", {"type": 2, "streamId": 42, "serviceId": "SSH"}, "ok", None),
    (
        "stream_start_v3",
        {"type": 2, "streamId": 42, "serviceId": "SSH", "connectionId": 1},
        "ok",
        None,
    ),
    ("stream_reset", {"type": 3, "streamId": 42, "serviceId": "SSH"}, "ok", None),
    ("session_reset", {"type": 4}, "ok", None),
    (
        "service_ids",
        {"type": 5, "availableServiceIds": ["SSH", "RDP", "HTTP"]},
        "ok",
        None,
    ),
    ("service_ids_empty_list", {"type": 5}, "ok", None),
    (
        "connection_start",
        {"type": 6, "streamId": 42, "serviceId": "SSH", "connectionId": 2},
        "ok",
        None,
    ),
    (
        "connection_reset",
        {"type": 7, "streamId": 42, "serviceId": "SSH", "connectionId": 2},
        "ok",
        None,
    ),
    ("ignorable_flag_on_known_type", {"type": 4, "ignorable": True}, "ok", None),
    ("unknown_type_ignorable", {"type": 9, "ignorable": True, "streamId": 3}, "ok", None),
    ("unknown_type_not_ignorable", {"type": 9}, "UnknownType", None),
    ("data_stream_id_zero", {"type": 1, "payload": [3, 0]}, "StreamIdZero", None),
    ("stream_start_stream_id_zero", {"type": 2, "serviceId": "SSH"}, "StreamIdZero", None),
    ("stream_reset_stream_id_zero", {"type": 3}, "StreamIdZero", None),
    ("connection_start_stream_id_zero", {"type": 6, "connectionId": 2}, "StreamIdZero", None),
    ("connection_reset_stream_id_zero", {"type": 7, "connectionId": 2}, "StreamIdZero", None),
    (
        "data_payload_too_large",
        {"type": 1, "streamId": 1, "payload": [64513, 5]},
        "PayloadTooLarge",
        None,
    ),
    (
        "unknown_field_from_newer_peer",
        {"type": 1, "streamId": 1, "payload": [2, 9], "futureField": 5},
        "ok",
        "UnknownField",
    ),
]


def build(fields):
    cls = Extended if "futureField" in fields else Message
    msg = cls()
    for key, value in fields.items():
        if key == "payload":
            msg.payload = pattern(*value)
        elif key == "availableServiceIds":
            msg.availableServiceIds.extend(value)
        else:
            setattr(msg, key, value)
    return msg


def main():
    out = []
    for name, fields, expect, strict_expect in CASES:
        body = build(fields).SerializeToString(deterministic=True)
        assert len(body) <= 0xFFFF, name
        frame = len(body).to_bytes(2, "big") + body
        case = {"name": name, "fields": fields, "expect": expect, "frame": frame.hex()}
        if strict_expect is not None:
            case["strict_expect"] = strict_expect
        out.append(case)
    json.dump(
        {
            "generator": "proto/tests/golden/gen_golden.py",
            "protobuf": __import__("google.protobuf").protobuf.__version__,
            "cases": out,
        },
        sys.stdout,
        indent=1,
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
