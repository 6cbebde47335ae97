"""PNG text chunks (tEXt): a few key/value strings carried inside a PNG file.

The command-line tool records the original HR size in the LR PNG it writes, so `upscale` can
crop back to it (sizes not divisible by the scale; see `fgrn_tf/picture.py`). OpenCV cannot
write text chunks, so they are spliced into its encoded bytes here.
"""

from __future__ import annotations

import os
import struct
import zlib

SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, data: bytes) -> bytes:
  return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def add_text(png: bytes, items: dict[str, str]) -> bytes:
  """Returns `png` with one tEXt chunk per item, right after the header chunk (IHDR).

  Args:
    png: the bytes of a PNG file.
    items: Latin-1 keys (1-79 characters) and values.
  """
  if not png.startswith(SIGNATURE):
    raise ValueError("not PNG data")
  ihdr_end = len(SIGNATURE) + 8 + struct.unpack(">I", png[8:12])[0] + 4
  chunks = b"".join(_chunk(b"tEXt", k.encode("latin-1") + b"\0" + v.encode("latin-1"))
                    for k, v in items.items())
  return png[:ihdr_end] + chunks + png[ihdr_end:]


def read_text(path: str | os.PathLike) -> dict[str, str]:
  """The tEXt items before the image data of a PNG file; {} for other files or bad chunks.

  Reads only the chunks before the first IDAT, so a large file costs a few small reads.
  """
  items: dict[str, str] = {}
  try:
    with open(path, "rb") as f:
      if f.read(8) != SIGNATURE:
        return items
      while True:
        head = f.read(8)
        if len(head) < 8:
          return items
        length, kind = struct.unpack(">I", head[:4])[0], head[4:]
        if kind in (b"IDAT", b"IEND") or length > 1 << 20:
          return items
        data = f.read(length)
        crc = f.read(4)
        if len(data) < length or len(crc) < 4:
          return items
        if kind == b"tEXt" and struct.unpack(">I", crc)[0] == zlib.crc32(kind + data):
          key, _, value = data.partition(b"\0")
          items[key.decode("latin-1")] = value.decode("latin-1")
  except OSError:
    return items
