"""Connectors Baton ships for service tasks: a plain HTTP client that speaks JSON.

A connector is a callable that takes the service task's input (a dict) and returns its result; the engine looks it
up by the name the diagram gives (`camunda:topic="http"`, or `camunda:connector` with `connectorId` `http-connector`).

Security: the HTTP connector runs on the server, so whoever may deploy a diagram may make the server call a URL,
including ones only the server can reach (an internal admin API, a cloud metadata address). Set `BATON_HTTP_ALLOW`
to the hosts diagrams may call, comma-separated patterns such as `api.example.com,*.internal`; unset, any host is
allowed. The check is on the host name in the URL (and in every redirect), not on the address it resolves to.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from datetime import date, datetime, time
from decimal import Decimal
from email.message import Message
from http.client import HTTPException
from typing import Any, BinaryIO

from .config import Settings

log = logging.getLogger(__name__)

MAX_RESPONSE_BYTES = 10 * 2**20
DEFAULT_TIMEOUT = 30.0
SHOWN_BODY = 200  # characters of an error response quoted in the exception


class HttpError(Exception):
    """An HTTP call that failed: refused, unreachable, timed out, or answered with a 3xx, 4xx or 5xx status."""

    def __init__(self, message: str, *, method: str, url: str, status: int | None = None) -> None:
        super().__init__(message)
        self.method = method
        self.url = url
        self.status = status


def http(params: Mapping[str, Any]) -> dict[str, Any]:
    """Call `params["url"]` and return the response's status, headers and body (parsed when it is JSON)."""
    method = str(params.get("method") or "GET").upper()
    url = _with_query(_required_url(params), params.get("query"))
    _check_url(method, url)
    data, headers = _encode(params.get("body", params.get("payload")), params.get("headers") or {})
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    timeout = float(params.get("timeout") or DEFAULT_TIMEOUT)
    opener = urllib.request.build_opener(_Redirects(method))
    log.info("http connector: %s %s", method, url)
    try:
        with opener.open(request, timeout=timeout) as response:
            body = _read(response, method, url)
            return {"status": response.status, "headers": _headers(response.headers),
                    "body": _decode(body, response.headers)}
    except urllib.error.HTTPError as exc:
        with exc:
            raise _status_error(method, url, exc) from exc
    except urllib.error.URLError as exc:
        raise HttpError(f"{method} {url} failed: {exc.reason}", method=method, url=url) from exc
    except TimeoutError as exc:
        raise HttpError(f"{method} {url} timed out after {timeout:g} s", method=method, url=url) from exc
    except (OSError, HTTPException) as exc:
        raise HttpError(f"{method} {url} failed: {exc or type(exc).__name__}", method=method, url=url) from exc


def _required_url(params: Mapping[str, Any]) -> str:
    url = params.get("url")
    if not isinstance(url, str) or not url.strip():
        raise HttpError("the http connector needs a 'url' input", method=str(params.get("method") or "GET"),
                        url=str(url or ""))
    return url.strip()


def _with_query(url: str, query: Mapping[str, Any] | None) -> str:
    if not query:
        return url
    return f"{url}{'&' if '?' in url else '?'}{urllib.parse.urlencode(query, doseq=True)}"


def _check_url(method: str, url: str) -> None:
    """Refuse any scheme but http and https, and hosts outside BATON_HTTP_ALLOW."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise HttpError(f"{method} {url} refused: only http and https URLs are allowed", method=method, url=url)
    allowed = Settings().http_allow
    if allowed and not any(fnmatch.fnmatchcase(parts.hostname, pattern) for pattern in allowed):
        raise HttpError(f"{method} {url} refused: host {parts.hostname} is not in BATON_HTTP_ALLOW",
                        method=method, url=url)


def _encode(body: Any, headers: Mapping[str, Any]) -> tuple[bytes | None, dict[str, str]]:
    """The request body as bytes and the headers to send with it: a str as is, anything else as JSON."""
    sent = {str(k): str(v) for k, v in headers.items()}
    given = {k.lower() for k in sent}
    if body is None:
        return None, sent
    if isinstance(body, bytes):
        data, kind = body, "application/octet-stream"
    elif isinstance(body, str):
        data, kind = body.encode(), "text/plain; charset=utf-8"
    else:
        data, kind = json.dumps(body, default=_plain, ensure_ascii=False).encode(), "application/json"
    if "content-type" not in given:
        sent["Content-Type"] = kind
    return data, sent


def _plain(value: Any) -> Any:
    """Task-data values JSON lacks: exact amounts as numbers, dates and times as ISO 8601 text."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"{type(value).__name__} cannot be sent as JSON")


def _read(response: BinaryIO, method: str, url: str) -> bytes:
    body = response.read(MAX_RESPONSE_BYTES + 1)
    if len(body) > MAX_RESPONSE_BYTES:
        raise HttpError(f"{method} {url} refused: the response is larger than {MAX_RESPONSE_BYTES // 2**20} MB",
                        method=method, url=url)
    return body


def _headers(headers: Message) -> dict[str, str]:
    """Response headers by lower-case name; a repeated header's values joined by commas."""
    joined: dict[str, str] = {}
    for name, value in headers.items():
        key = name.lower()
        joined[key] = f"{joined[key]}, {value}" if key in joined else value
    return joined


def _decode(body: bytes, headers: Message) -> Any:
    """Parsed JSON for a JSON response (fractions as Decimal, like all task data), else text."""
    text = body.decode(headers.get_content_charset() or "utf-8", errors="replace")
    kind = headers.get_content_type()
    if kind == "application/json" or kind.endswith("+json"):
        try:
            return json.loads(text, parse_float=Decimal) if text.strip() else None
        except ValueError:
            log.warning("http connector: a %s response is not valid JSON; keeping it as text", kind)
    return text


def _status_error(method: str, url: str, exc: urllib.error.HTTPError) -> HttpError:
    shown = " ".join(exc.read(SHOWN_BODY * 4).decode("utf-8", errors="replace").split())[:SHOWN_BODY]
    hint = " (redirects are followed for GET only)" if 300 <= exc.code < 400 else ""
    return HttpError(f"{method} {url} returned {exc.code} {exc.reason}{hint}: {shown or '(empty body)'}",
                     method=method, url=url, status=exc.code)


class _Redirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects for GET only, and only to URLs the connector could call directly."""

    def __init__(self, method: str) -> None:
        self.method = method

    def redirect_request(self, req: urllib.request.Request, fp: Any, code: int, msg: str,
                         headers: Message, newurl: str) -> urllib.request.Request | None:
        if self.method != "GET":
            return None  # urllib then raises the 3xx as an HTTPError
        try:
            _check_url(self.method, newurl)
        except HttpError:
            fp.close()
            raise
        return super().redirect_request(req, fp, code, msg, headers, newurl)


BUILTIN: dict[str, Callable[[Mapping[str, Any]], Any]] = {"http": http, "http-connector": http}
