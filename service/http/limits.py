"""Request body size limit, for every route, before any endpoint reads the body."""

from __future__ import annotations

from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import PayloadTooLarge

__all__ = ["MAX_BODY_BYTES", "BodySizeLimit"]

MAX_BODY_BYTES: Final = 64 * 1024


class BodySizeLimit:
    """Refuse bodies over ``max_bytes`` (413): by Content-Length up front, or while streaming."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # Refused when the endpoint reads the body, so that the endpoint's own error
        # format answers (problem+json, or RFC 6749 §5.2 JSON under an issuer). A
        # declared length over the limit is refused before a byte is read.
        declared = next((v for n, v in scope["headers"] if n == b"content-length"), b"0")
        too_large = not declared.isdigit() or int(declared) > self.max_bytes
        received = 0

        async def limited() -> Message:
            nonlocal received
            if too_large:
                raise PayloadTooLarge(self._detail())
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise PayloadTooLarge(self._detail())
            return message

        await self.app(scope, limited, send)

    def _detail(self) -> str:
        return f"request bodies are limited to {self.max_bytes // 1024} KiB"
