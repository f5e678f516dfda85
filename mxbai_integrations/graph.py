"""What an ONNX graph is made of, read from the file itself, without the ``onnx`` package.

The manifest says what the graph is (family, attention, padding side), but a manifest is data
that can be edited by hand; the run time checks those claims against the graph. Only the
operator types are needed, so this walks the protobuf wire format of ``model.onnx`` (ModelProto
-> GraphProto -> NodeProto, including functions and subgraphs) and skips the weights by their
length without reading them: a memory-mapped 2 GB graph costs milliseconds.

Field numbers are those of onnx.proto (ModelProto.graph = 7, .functions = 25; GraphProto.node = 1;
NodeProto.op_type = 4, .attribute = 5, .domain = 7; AttributeProto.g = 6, .graphs = 11;
FunctionProto.node = 7).

Examples:
    >>> ops = graph_ops("artifact/model.onnx")  # doctest: +SKIP
    >>> ops[("com.microsoft", "GroupQueryAttention")]  # doctest: +SKIP
    24
"""

from __future__ import annotations

import mmap
import os
from collections import Counter
from collections.abc import Iterator

from mxbai_integrations.errors import ArtifactError

_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5
_MODEL_GRAPH, _MODEL_FUNCTIONS = 7, 25
_GRAPH_NODE = 1
_NODE_OP_TYPE, _NODE_ATTRIBUTE, _NODE_DOMAIN = 4, 5, 7
_ATTR_GRAPH, _ATTR_GRAPHS = 6, 11
_FUNCTION_NODE = 7
# The default ONNX domain is written as "" or "ai.onnx".
_DEFAULT_DOMAIN = ""

Op = tuple[str, str]  # (domain, op_type)


class _Malformed(Exception):
    pass


def _varint(buf: memoryview, pos: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise _Malformed("truncated varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _fields(buf: memoryview, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """(field number, wire type, payload start, payload end) for each field of one message."""
    pos = start
    while pos < end:
        tag, pos = _varint(buf, pos, end)
        field, wire = tag >> 3, tag & 7
        if wire == _VARINT:
            _, after = _varint(buf, pos, end)
        elif wire == _I64:
            after = pos + 8
        elif wire == _I32:
            after = pos + 4
        elif wire == _LEN:
            length, pos = _varint(buf, pos, end)
            after = pos + length
        else:
            raise _Malformed(f"unsupported wire type {wire}")
        if after > end:
            raise _Malformed("field runs past its message")
        yield field, wire, pos, after
        pos = after


def _text(buf: memoryview, start: int, end: int) -> str:
    return bytes(buf[start:end]).decode("utf-8", errors="replace")


def _node(buf: memoryview, start: int, end: int, ops: Counter[Op]) -> None:
    op_type, domain = "", _DEFAULT_DOMAIN
    for field, wire, s, e in _fields(buf, start, end):
        if wire != _LEN:
            continue
        if field == _NODE_OP_TYPE:
            op_type = _text(buf, s, e)
        elif field == _NODE_DOMAIN:
            domain = _text(buf, s, e)
        elif field == _NODE_ATTRIBUTE:
            for a_field, a_wire, a_s, a_e in _fields(buf, s, e):
                if a_wire == _LEN and a_field in (_ATTR_GRAPH, _ATTR_GRAPHS):
                    _graph(buf, a_s, a_e, ops)
    ops[("" if domain == "ai.onnx" else domain, op_type)] += 1


def _graph(buf: memoryview, start: int, end: int, ops: Counter[Op]) -> None:
    for field, wire, s, e in _fields(buf, start, end):
        if field == _GRAPH_NODE and wire == _LEN:
            _node(buf, s, e, ops)


def graph_ops(path: str | os.PathLike[str]) -> Counter[Op]:
    """How many nodes of each (domain, op_type) the ONNX file holds, subgraphs and functions included.

    Raises:
        ArtifactError: the file is not an ONNX model (naming the file).
    """
    ops: Counter[Op] = Counter()
    try:
        with open(path, "rb") as handle:
            if os.fstat(handle.fileno()).st_size == 0:
                raise _Malformed("empty file")
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                buf = memoryview(mapped)
                try:
                    found_graph = False
                    for field, wire, s, e in _fields(buf, 0, len(buf)):
                        if field == _MODEL_GRAPH and wire == _LEN:
                            found_graph = True
                            _graph(buf, s, e, ops)
                        elif field == _MODEL_FUNCTIONS and wire == _LEN:
                            for f_field, f_wire, f_s, f_e in _fields(buf, s, e):
                                if f_field == _FUNCTION_NODE and f_wire == _LEN:
                                    _node(buf, f_s, f_e, ops)
                finally:
                    buf.release()
    except (_Malformed, ValueError) as exc:
        raise ArtifactError(f"model: {os.fspath(path)!r} is not a readable ONNX model ({exc})") from None
    if not found_graph:
        raise ArtifactError(f"model: {os.fspath(path)!r} is not a readable ONNX model (no graph)")
    return ops
