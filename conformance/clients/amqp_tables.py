"""A field-table decoder that keeps the AMQP type tags (pika's decoder drops them).

decode_table(buf, offset) -> ({name: (tag, value)}, end) in wire order; arrays are
('A', [(tag, value), ...]) and nested tables ('F', {...}). Tags are RabbitMQ's: t b B s u I i
l f d D S T F A V x (and L, read like l). Timestamps stay integers (seconds).
"""

import struct

_FIXED = {"b": ">b", "B": ">B", "s": ">h", "u": ">H", "I": ">i", "i": ">I", "l": ">q", "L": ">q",
          "f": ">f", "d": ">d", "T": ">Q"}


def _shortstr(b, o):
    n = b[o]
    return b[o + 1:o + 1 + n].decode("utf-8", "replace"), o + 1 + n


def decode_value(b, o):
    tag = chr(b[o])
    o += 1
    if tag == "t":
        return (tag, bool(b[o])), o + 1
    if tag in _FIXED:
        fmt = _FIXED[tag]
        return (tag, struct.unpack_from(fmt, b, o)[0]), o + struct.calcsize(fmt)
    if tag == "D":
        return (tag, (b[o], struct.unpack_from(">i", b, o + 1)[0])), o + 5
    if tag in "Sx":
        n = struct.unpack_from(">I", b, o)[0]
        raw = b[o + 4:o + 4 + n]
        return (tag, raw.decode("utf-8", "replace") if tag == "S" else raw), o + 4 + n
    if tag == "V":
        return (tag, None), o
    if tag == "F":
        t, o = decode_table(b, o)
        return (tag, t), o
    if tag == "A":
        n = struct.unpack_from(">I", b, o)[0]
        end, o, out = o + 4 + n, o + 4, []
        while o < end:
            v, o = decode_value(b, o)
            out.append(v)
        return (tag, out), o
    raise ValueError(f"unknown field type tag {tag!r}")


def decode_table(b, o=0):
    n = struct.unpack_from(">I", b, o)[0]
    end, o, out = o + 4 + n, o + 4, {}
    while o < end:
        key, o = _shortstr(b, o)
        out[key], o = decode_value(b, o)
    return out, end


def content_header_headers(props_bytes):
    """The headers table of encoded basic properties (flags word first), tagged; None if absent."""
    flags = struct.unpack_from(">H", props_bytes, 0)[0]
    o = 2
    if flags & 0x8000:  # content-type
        _, o = _shortstr(props_bytes, o)
    if flags & 0x4000:  # content-encoding
        _, o = _shortstr(props_bytes, o)
    if not flags & 0x2000:
        return None
    return decode_table(props_bytes, o)[0]


def untag(v):
    """(tag, value) -> plain value, recursively (to compare content without the tags)."""
    tag, val = v
    if tag == "F":
        return {k: untag(x) for k, x in val.items()}
    if tag == "A":
        return [untag(x) for x in val]
    return val
