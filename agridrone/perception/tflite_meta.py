"""A small reader for the TFLite metadata that exporters pack into a model (no tflite-support needed).

TFLite Model Maker, MediaPipe and the TF Object Detection API write a ``TFLITE_METADATA`` buffer (a
``ModelMetadata`` flatbuffer, identifier "M001") that says, among other things, how the input image
is normalised: ``NormalizationOptions {mean: [..], std: [..]}`` on raw pixel values. This module
walks the two flatbuffers just far enough to read that, and returns None for anything it does not
find or cannot read: the caller then falls back to its defaults.
"""

from __future__ import annotations

import struct

# field numbers in the TFLite schema (schema.fbs) and the metadata schema (metadata_schema.fbs)
_MODEL_BUFFERS, _MODEL_METADATA = 4, 6
_METADATA_NAME, _METADATA_BUFFER = 0, 1
_BUFFER_DATA, _BUFFER_OFFSET, _BUFFER_SIZE = 0, 1, 2
_MM_SUBGRAPHS = 3
_SG_INPUTS = 2
_TM_PROCESS_UNITS = 4
_PU_TYPE, _PU_OPTIONS = 0, 1
_NORMALIZATION_OPTIONS = 1
_NO_MEAN, _NO_STD = 0, 1


class _Buf:
    def __init__(self, data: bytes, base: int = 0) -> None:
        self.d = data
        self.base = base

    def u32(self, pos: int) -> int:
        return struct.unpack_from("<I", self.d, pos)[0]

    def root(self) -> int:
        return self.base + self.u32(self.base)

    def field(self, table: int, n: int) -> int | None:
        """Absolute position of field ``n`` of the table at ``table``, or None when absent."""
        vtable = table - struct.unpack_from("<i", self.d, table)[0]
        vsize = struct.unpack_from("<H", self.d, vtable)[0]
        if 4 + 2 * n >= vsize:
            return None
        off = struct.unpack_from("<H", self.d, vtable + 4 + 2 * n)[0]
        return table + off if off else None

    def ref(self, table: int, n: int) -> int | None:
        """Target of an offset field (table, vector or string)."""
        pos = self.field(table, n)
        return None if pos is None else pos + self.u32(pos)

    def vector(self, pos: int, item_size: int = 4) -> tuple[int, int]:
        count = self.u32(pos)
        if pos + 4 + count * item_size > len(self.d):
            raise IndexError(f"vector of {count} items runs past the end of the buffer")
        return count, pos + 4

    def tables(self, table: int, n: int) -> list[int]:
        pos = self.ref(table, n)
        if pos is None:
            return []
        count, start = self.vector(pos)
        return [start + 4 * i + self.u32(start + 4 * i) for i in range(count)]

    def string(self, table: int, n: int) -> str | None:
        pos = self.ref(table, n)
        if pos is None:
            return None
        count, start = self.vector(pos, 1)
        return self.d[start:start + count].decode("utf-8", "replace")

    def floats(self, table: int, n: int) -> list[float]:
        pos = self.ref(table, n)
        if pos is None:
            return []
        count, start = self.vector(pos)
        return list(struct.unpack_from(f"<{count}f", self.d, start))

    def scalar(self, table: int, n: int, fmt: str, default=0):
        pos = self.field(table, n)
        return default if pos is None else struct.unpack_from("<" + fmt, self.d, pos)[0]


def metadata_buffer(model: bytes, name: str = "TFLITE_METADATA") -> bytes | None:
    """The bytes of the model's metadata buffer called ``name``."""
    try:
        fb = _Buf(model)
        root = fb.root()
        buffers = fb.tables(root, _MODEL_BUFFERS)
        for meta in fb.tables(root, _MODEL_METADATA):
            if fb.string(meta, _METADATA_NAME) != name:
                continue
            buf = buffers[fb.scalar(meta, _METADATA_BUFFER, "I")]
            data = fb.ref(buf, _BUFFER_DATA)
            if data is not None:
                count, start = fb.vector(data, 1)
                return model[start:start + count]
            offset, size = fb.scalar(buf, _BUFFER_OFFSET, "Q"), fb.scalar(buf, _BUFFER_SIZE, "Q")
            if offset > 1 and size:
                return model[offset:offset + size]
    except (struct.error, IndexError):
        return None
    return None


def input_normalization(model: bytes, input_index: int = 0) -> tuple[list[float], list[float]] | None:
    """(mean, std) the metadata gives for an input: float = (pixel - mean) / std; None when absent."""
    meta = metadata_buffer(model)
    if not meta or len(meta) < 8 or meta[4:8] != b"M001":
        return None
    try:
        fb = _Buf(meta)
        subgraphs = fb.tables(fb.root(), _MM_SUBGRAPHS)
        if not subgraphs:
            return None
        inputs = fb.tables(subgraphs[0], _SG_INPUTS)
        if input_index >= len(inputs):
            return None
        for unit in fb.tables(inputs[input_index], _TM_PROCESS_UNITS):
            if fb.scalar(unit, _PU_TYPE, "B") != _NORMALIZATION_OPTIONS:
                continue
            opts = fb.ref(unit, _PU_OPTIONS)
            if opts is None:
                return None
            mean, std = fb.floats(opts, _NO_MEAN), fb.floats(opts, _NO_STD)
            if mean and std and all(s > 0 for s in std):
                return mean, std
    except (struct.error, IndexError):
        return None
    return None
