"""How a CRM webhook leaves: one POST and the receiver's answer (`nurture.crm` signs,
retries and records). The standard library's HTTP client in production; a transport
that keeps what it was given, for tests and the demo.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http.client import HTTPException
from typing import Any, Protocol
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Response:
    """The receiver's answer: status, headers (lower-case names), the start of the body."""

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""


class TransportError(Exception):
    """No HTTP answer came back (refused, unreachable, timed out, TLS failed)."""


class Transport(Protocol):
    """Sends one POST; returns any HTTP answer, raises TransportError when there is none."""

    def post(
        self, url: str, body: bytes, headers: Mapping[str, str], timeout: float
    ) -> Response: ...


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is returned as the 3xx answer it is: a webhook is never re-sent elsewhere."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class UrllibTransport:
    """HTTP(S) with the standard library; redirects are not followed, certificates checked."""

    def __init__(self) -> None:
        self._opener = urllib.request.build_opener(_RefuseRedirects)

    def post(self, url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> Response:
        if urlsplit(url).scheme not in ("http", "https"):
            raise TransportError(f"refused to post to {url!r}: only http and https URLs")
        request = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")  # noqa: S310 - scheme checked above
        try:
            with self._opener.open(request, timeout=timeout) as answer:
                return Response(answer.status, _lower(answer.headers.items()), answer.read(1024))
        except urllib.error.HTTPError as error:  # any status outside 2xx, 3xx included
            with error:
                body = error.read(1024) if error.fp is not None else b""
                headers = _lower(error.headers.items()) if error.headers is not None else {}
                return Response(error.code, headers, body)
        except TimeoutError:
            raise TransportError(f"no answer within {timeout:g} s (timed out)") from None
        except urllib.error.URLError as error:
            reason = error.reason
            if isinstance(reason, TimeoutError):
                raise TransportError(f"no answer within {timeout:g} s (timed out)") from None
            raise TransportError(f"cannot connect: {reason}") from None
        except (OSError, HTTPException) as error:
            raise TransportError(f"connection failed: {error or type(error).__name__}") from None


def _lower(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    return {name.lower(): value for name, value in items}


@dataclass(frozen=True)
class SentRequest:
    url: str
    body: bytes
    headers: Mapping[str, str]


class MemoryTransport:
    """Keeps what was posted; answers from `answers` in turn (a Response, or an exception
    to raise), then `default`."""

    def __init__(
        self,
        answers: Iterable[Response | Exception] = (),
        default: Response | None = None,
    ) -> None:
        self.answers = list(answers)
        self.default = default or Response(200)
        self.requests: list[SentRequest] = []

    def post(self, url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> Response:
        self.requests.append(SentRequest(url, body, dict(headers)))
        answer = self.answers.pop(0) if self.answers else self.default
        if isinstance(answer, Exception):
            raise answer
        return answer
