"""aiohttp adapter (floor 4): :class:`StreamResponse`, one request's event stream for an
``aiohttp.web`` handler (``return StreamResponse(source)``).
"""

from ._aiohttp_response import StreamResponse

__all__ = ["StreamResponse"]
