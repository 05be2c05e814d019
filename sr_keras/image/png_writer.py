"""Streaming PNG writing: `PngWriter` writes rows band by band (an image never needs to be in memory whole), and
`encode_png` writes one array. 8- or 16-bit, 1 to 4 channels, ICC profile and text chunks kept."""

from __future__ import annotations

import io
import struct
import zlib
from typing import Optional

import numpy as np

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class PngWriter:
    """Writes a PNG row band by row band, so an image never needs to be in memory whole.

    8- or 16-bit gray, gray+alpha, RGB or RGBA; an ICC profile (iCCP) and text (tEXt) chunks are kept. Rows use
    the Paeth filter, computed on whole bands with numpy, and zlib streams them into IDAT chunks.

        with open(path, "wb") as f:
            w = PngWriter(f, width, height, channels=3, bit_depth=8)
            for band in bands:
                w.write_rows(band)
            w.close()
    """

    _COLOR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}
    _CHUNK = 1 << 18  # IDAT payload per chunk.

    def __init__(self, f, width: int, height: int, channels: int, bit_depth: int = 8,
                 icc_profile: Optional[bytes] = None, text: Optional[dict] = None, level: int = 6,
                 exif: Optional[bytes] = None):
        if channels not in self._COLOR_TYPES or bit_depth not in (8, 16):
            raise ValueError(f"PNG needs 1 to 4 channels at 8 or 16 bits, got {channels} at {bit_depth}")
        self.f, self.width, self.height, self.channels, self.bit_depth = f, width, height, channels, bit_depth
        self.rows = 0
        self._prev = None
        self._z = zlib.compressobj(level)
        self._pending = bytearray()
        f.write(PNG_SIGNATURE)
        self._chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, self._COLOR_TYPES[channels], 0, 0, 0))
        if icc_profile:
            self._chunk(b"iCCP", b"ICC Profile\0\0" + zlib.compress(icc_profile))
        if exif:  # eXIf holds the TIFF structure without JPEG's "Exif\0\0" preamble (PNG 1.5 extension).
            self._chunk(b"eXIf", exif[6:] if exif.startswith(b"Exif\0\0") else exif)
        for key, value in (text or {}).items():
            self._chunk(b"tEXt", key.encode("latin-1")[:79] + b"\0" + str(value).encode("latin-1", "replace"))

    def _chunk(self, kind: bytes, data: bytes) -> None:
        self.f.write(struct.pack(">I", len(data)) + kind + data
                     + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    def write_rows(self, rows: np.ndarray) -> None:
        """Appends rows: uint8 (8-bit) or uint16 (16-bit) [n, width, channels] (or [n, width] for gray)."""
        rows = rows.reshape(rows.shape[0], self.width, self.channels)
        if self.rows + rows.shape[0] > self.height:
            raise ValueError(f"more rows than the {self.height} declared")
        step = max(1, (1 << 21) // max(1, rows[0].nbytes))  # ~2 MB of rows at a time: small filter temporaries.
        for i in range(0, rows.shape[0], step):
            self._filter_and_compress(rows[i:i + step])

    def _filter_and_compress(self, rows: np.ndarray) -> None:
        dtype = ">u2" if self.bit_depth == 16 else np.uint8
        raw = np.ascontiguousarray(rows, dtype=dtype).view(np.uint8).reshape(rows.shape[0], -1)
        bpp = self.channels * self.bit_depth // 8
        up = np.vstack([self._prev if self._prev is not None else np.zeros_like(raw[:1]), raw[:-1]])
        a = np.zeros(raw.shape, np.int16)
        a[:, bpp:] = raw[:, :-bpp]
        b = up.astype(np.int16)
        c = np.zeros(raw.shape, np.int16)
        c[:, bpp:] = up[:, :-bpp]
        p = a + b - c
        pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
        pred = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
        filtered = ((raw.astype(np.int16) - pred) & 0xFF).astype(np.uint8)
        lines = np.hstack([np.full((raw.shape[0], 1), 4, np.uint8), filtered])  # Filter type 4: Paeth.
        self._pending += self._z.compress(lines.tobytes())
        self._flush(False)
        self._prev = raw[-1:].copy()
        self.rows += rows.shape[0]

    def _flush(self, final: bool) -> None:
        while len(self._pending) >= self._CHUNK or (final and self._pending):
            self._chunk(b"IDAT", bytes(self._pending[:self._CHUNK]))
            del self._pending[:self._CHUNK]

    def close(self) -> None:
        if self.rows != self.height:
            raise ValueError(f"{self.rows} rows written, {self.height} declared")
        self._pending += self._z.flush()
        self._flush(True)
        self._chunk(b"IEND", b"")


def encode_png(pixels: np.ndarray, icc_profile: Optional[bytes] = None, text: Optional[dict] = None) -> bytes:
    """PNG bytes for uint8/uint16 H x W x C (C in 1..4) or H x W; the ICC profile and text chunks are kept."""
    buf = io.BytesIO()
    channels = 1 if pixels.ndim == 2 else pixels.shape[-1]
    w = PngWriter(buf, pixels.shape[1], pixels.shape[0], channels, 16 if pixels.dtype == np.uint16 else 8,
                  icc_profile, text)
    w.write_rows(pixels)
    w.close()
    return buf.getvalue()
