"""Content-Encoding for event streams: negotiation, flushing compressor, bounded decompressor
(floor 3).

A compressor that buffers delays events -- the classic "SSE works locally but not behind the
gateway". :class:`Compressor` therefore ends every call with a sync flush: the bytes it returns
decode to everything given so far. :class:`Decompressor` bounds what one input may expand to,
so that a small body cannot inflate into gigabytes (a decompression bomb).
"""

from __future__ import annotations

import zlib

from ._errors import InvalidConfigError, LimitExceeded, RemoteProtocolError
from ._validators import int_between, positive_int

__all__ = [
    "DEFAULT_MAX_DECOMPRESSED_SIZE",
    "Compressor",
    "Decompressor",
    "negotiate_encoding",
]

#: Default for ``max_output`` of :class:`Decompressor`: 16 MiB out of one input chunk.
DEFAULT_MAX_DECOMPRESSED_SIZE = 16 << 20

_level = int_between(1, 9)  # zlib's compression levels


def negotiate_encoding(accept_encoding: str | None) -> str | None:
    """Pick the content coding for a response from a request's ``Accept-Encoding``.

    Only ``gzip`` is offered (every client that sends ``Accept-Encoding`` supports it); it
    is chosen when listed, or matched by ``*``, with a q-value above zero.

    Args:
        accept_encoding: The header's value, or ``None`` when absent.

    Returns:
        ``"gzip"`` or ``None`` (send the body as is).
    """
    if not accept_encoding:
        return None
    wildcard_q: float | None = None
    for part in accept_encoding.split(","):
        coding, _, params = part.strip().partition(";")
        coding = coding.strip().lower()
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = 0.0
        if coding in ("gzip", "x-gzip"):
            return "gzip" if q > 0 else None
        if coding == "*":
            wildcard_q = q
    return "gzip" if wildcard_q is not None and wildcard_q > 0 else None


class Compressor:
    """gzip for one response body, flushed after every call.

    Args:
        level: zlib compression level, 1 (fast) to 9 (small).

    Raises:
        InvalidConfigError: ``level`` out of range.
    """

    __slots__ = ("_compressor",)

    def __init__(self, *, level: int = 6) -> None:
        _level.check("level", level)
        self._compressor = zlib.compressobj(level, zlib.DEFLATED, 31)  # 31: gzip wrapper

    def compress(self, data: bytes) -> bytes:
        """Compress ``data`` and flush, so the client can decode it at once.

        Args:
            data: Body bytes (one or more whole events).

        Returns:
            gzip bytes that decode to everything passed so far.
        """
        return self._compressor.compress(data) + self._compressor.flush(zlib.Z_SYNC_FLUSH)

    def finish(self) -> bytes:
        """End the gzip member; returns its trailer. Call once, when the body ends."""
        return self._compressor.flush(zlib.Z_FINISH)


class Decompressor:
    """Decodes a response body's content coding, with bounded output per input.

    Args:
        encoding: The response's ``Content-Encoding``: ``"gzip"``, ``"x-gzip"``,
            ``"deflate"`` or ``"identity"``/``""`` (pass-through).
        max_output: Most bytes one :meth:`decompress` call may produce.

    Raises:
        InvalidConfigError: unknown encoding or bad ``max_output``.
    """

    __slots__ = ("_decompressor", "_is_identity", "_max_output")

    def __init__(self, encoding: str, *, max_output: int = DEFAULT_MAX_DECOMPRESSED_SIZE) -> None:
        positive_int.check("max_output", max_output)
        coding = encoding.strip().lower()
        self._max_output = max_output
        self._is_identity = coding in ("", "identity")
        if self._is_identity:
            self._decompressor = None
        elif coding in ("gzip", "x-gzip"):
            self._decompressor = zlib.decompressobj(31)
        elif coding == "deflate":
            # RFC 9110's "deflate" is the zlib format; wbits 47 (32 + 15) detects a zlib or
            # gzip header, since some servers label gzip as deflate.
            self._decompressor = zlib.decompressobj(47)
        else:
            raise InvalidConfigError(f"unsupported content coding {encoding!r}")

    @property
    def is_identity(self) -> bool:
        """True when the body is not encoded."""
        return self._is_identity

    def decompress(self, data: bytes) -> bytes:
        """Decode the next piece of the body.

        Args:
            data: Encoded body bytes.

        Returns:
            The decoded bytes (possibly empty until enough input arrives).

        Raises:
            LimitExceeded: the piece would decode to more than ``max_output`` bytes
                (``limit="max_decompressed_size"``).
            RemoteProtocolError: the body is not validly encoded.
        """
        if self._decompressor is None:
            return bytes(data)
        try:
            out = self._decompressor.decompress(data, self._max_output)
        except zlib.error as error:
            raise RemoteProtocolError(f"invalid compressed body: {error}") from None
        if self._decompressor.unconsumed_tail:
            raise LimitExceeded(
                "max_decompressed_size", self._max_output + 1, self._max_output
            )
        return out

