"""The built-in HTTP connector, against a real local server, called directly and from a diagram's service task."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from baton.engine import Engine, connectors
from baton.engine.connectors import HttpError, http
from bpmn_builder import process


class Echo(BaseHTTPRequestHandler):
    """Answers with what it was sent: `/text` in plain text, `/fail` with a 500, `/moved?to=URL` with a 302."""

    seen: list[dict[str, Any]]

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode()
        is_json = self.headers.get_content_type() == "application/json"
        request = {"method": self.command, "path": self.path, "headers": dict(self.headers.items()),
                   "body": json.loads(raw) if is_json and raw else raw}
        self.seen.append(request)
        path = urlsplit(self.path)
        if path.path == "/fail":
            self._answer(500, "text/plain", b"database exploded\n  at line 3")
        elif path.path == "/text":
            self._answer(200, "text/plain; charset=utf-8", "héllo".encode())
        elif path.path == "/moved":
            self.send_response(302)
            self.send_header("Location", parse_qs(path.query)["to"][0])
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self._answer(201 if self.command == "POST" else 200, "application/json", json.dumps(request).encode())

    do_GET = do_POST = do_PUT = do_DELETE = _handle  # noqa: N815 - http.server's handler names

    def _answer(self, status: int, kind: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Served-By", "echo")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A local echo server's base URL and the requests it has seen."""
    seen: list[dict[str, Any]] = []
    handler = type("Handler", (Echo,), {"seen": seen})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", seen
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def test_get_sends_the_query_and_parses_a_json_response(server):
    base, seen = server
    response = http({"url": f"{base}/orders?state=open", "query": {"page": 2, "tag": ["a", "b"]}})
    assert response["status"] == 200
    assert response["headers"]["content-type"] == "application/json"
    assert response["body"]["method"] == "GET"
    assert response["body"]["path"] == "/orders?state=open&page=2&tag=a&tag=b"
    assert seen[0]["body"] == ""


def test_post_sends_the_payload_as_json_with_the_given_headers(server):
    base, seen = server
    response = http({"method": "post", "url": f"{base}/orders", "headers": {"X-Request-Id": "r-1"},
                     "payload": {"item": "desk", "amount": Decimal("12.50"), "tags": ["a"]}})
    assert response["status"] == 201
    assert seen[0]["method"] == "POST"
    assert seen[0]["headers"]["Content-Type"] == "application/json"
    assert seen[0]["headers"]["X-Request-Id"] == "r-1"
    assert seen[0]["body"] == {"item": "desk", "amount": 12.5, "tags": ["a"]}
    assert response["body"]["body"]["amount"] == Decimal("12.5")  # fractions come back exact, like all task data


def test_a_text_body_is_sent_as_is_and_a_text_response_is_returned_as_text(server):
    base, seen = server
    response = http({"method": "PUT", "url": f"{base}/text", "body": '{"raw": true}',
                     "headers": {"Content-Type": "application/vnd.raw"}})
    assert response == {"status": 200, "headers": response["headers"], "body": "héllo"}
    assert response["headers"]["x-served-by"] == "echo"
    assert seen[0]["body"] == '{"raw": true}' and seen[0]["headers"]["Content-Type"] == "application/vnd.raw"


def test_an_error_status_raises_naming_method_url_status_and_body(server):
    base, _ = server
    with pytest.raises(HttpError) as raised:
        http({"method": "DELETE", "url": f"{base}/fail"})
    assert raised.value.status == 500
    assert str(raised.value) == f"DELETE {base}/fail returned 500 Internal Server Error: database exploded at line 3"


def test_redirects_are_followed_for_get_only(server):
    base, seen = server
    assert http({"url": f"{base}/moved?to=/echo"})["body"]["path"] == "/echo"
    with pytest.raises(HttpError, match="returned 302 .*GET only") as raised:
        http({"method": "POST", "url": f"{base}/moved?to=/echo", "body": {}})
    assert raised.value.status == 302 and [r["path"] for r in seen][-1] == "/moved?to=/echo"


def test_an_unreachable_server_raises_a_clear_error():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    with pytest.raises(HttpError, match=rf"^GET http://127.0.0.1:{port}/x failed: .*refused"):
        http({"url": f"http://127.0.0.1:{port}/x", "timeout": 5})


def test_a_server_that_does_not_answer_times_out():
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)  # connections queue, and nobody ever answers them
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/slow"
        with pytest.raises(HttpError, match=rf"^GET {url} timed out after 0.5 s$"):
            http({"url": url, "timeout": 0.5})


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/x", "http:///nohost", "", None])
def test_only_http_and_https_urls_are_called(url):
    with pytest.raises(HttpError, match="refused|needs a 'url'"):
        http({"url": url})


def test_hosts_outside_the_allow_list_are_refused(server, monkeypatch):
    base, seen = server
    monkeypatch.setenv("BATON_HTTP_ALLOW", "api.example.com, *.internal")
    with pytest.raises(HttpError, match="host 127.0.0.1 is not in BATON_HTTP_ALLOW"):
        http({"url": f"{base}/echo"})
    assert seen == []
    monkeypatch.setenv("BATON_HTTP_ALLOW", "127.0.0.*")
    assert http({"url": f"{base}/echo"})["status"] == 200
    with pytest.raises(HttpError, match="host localhost is not in BATON_HTTP_ALLOW"):
        http({"url": f"{base}/moved?to={base.replace('127.0.0.1', 'localhost')}/echo"})
    assert [r["path"] for r in seen] == ["/echo", f"/moved?to={base.replace('127.0.0.1', 'localhost')}/echo"]


def test_a_response_over_the_limit_is_refused(server, monkeypatch):
    base, _ = server
    monkeypatch.setattr(connectors, "MAX_RESPONSE_BYTES", 10)
    with pytest.raises(HttpError, match="larger than"):
        http({"url": f"{base}/echo"})


INPUTS = ('<camunda:inputOutput>'
          '<camunda:inputParameter name="url">${base_url}/orders</camunda:inputParameter>'
          '<camunda:inputParameter name="method">POST</camunda:inputParameter>'
          '<camunda:inputParameter name="headers"><camunda:map><camunda:entry key="X-Request-Id">${request_id}'
          '</camunda:entry></camunda:map></camunda:inputParameter>'
          '<camunda:inputParameter name="payload"><camunda:script scriptFormat="python">{"item": item, '
          '"amount": amount}</camunda:script></camunda:inputParameter>'
          '</camunda:inputOutput>')


@pytest.mark.parametrize("task", [
    f'<bpmn:serviceTask id="call" camunda:topic="http" camunda:resultVariable="response">'
    f'<bpmn:extensionElements>{INPUTS}</bpmn:extensionElements></bpmn:serviceTask>',
    f'<bpmn:serviceTask id="call" camunda:resultVariable="response"><bpmn:extensionElements>'
    f'<camunda:connector><camunda:connectorId>http-connector</camunda:connectorId></camunda:connector>{INPUTS}'
    f'</bpmn:extensionElements></bpmn:serviceTask>',
], ids=["topic", "connector"])
def test_a_service_task_calls_the_http_connector(database_url, server, task):
    base, seen = server
    engine = Engine(database_url, connectors=connectors.BUILTIN)
    engine.deploy(process('<bpmn:startEvent id="start"/>', task, '<bpmn:endEvent id="end"/>',
                          flows="start>call call>end"))
    instance = engine.start("p", {"base_url": base, "request_id": "r-7", "item": "desk", "amount": Decimal("80")})
    engine.close()
    runner = Engine(database_url, connectors=connectors.BUILTIN)
    assert runner.run_due_jobs() == 1
    runner.close()
    reader = Engine(database_url)
    after = reader.instance(instance.id)
    reader.close()
    assert after.status == "complete"
    assert [(r["method"], r["path"], r["body"]) for r in seen] == [("POST", "/orders", {"item": "desk", "amount": 80})]
    assert seen[0]["headers"]["X-Request-Id"] == "r-7"
    assert after.data["response"]["status"] == 201
    assert after.data["response"]["body"] == seen[0]


def test_a_failing_http_call_becomes_an_incident_naming_the_status(database_url, server):
    base, _ = server
    engine = Engine(database_url, connectors=connectors.BUILTIN)
    engine.deploy(process('<bpmn:startEvent id="start"/>',
                          '<bpmn:serviceTask id="call" camunda:topic="http"><bpmn:extensionElements>'
                          '<camunda:inputOutput><camunda:inputParameter name="url">${base_url}/fail'
                          '</camunda:inputParameter></camunda:inputOutput>'
                          '<camunda:failedJobRetryTimeCycle>R0/PT1M</camunda:failedJobRetryTimeCycle>'
                          '</bpmn:extensionElements></bpmn:serviceTask>', '<bpmn:endEvent id="end"/>',
                          flows="start>call call>end"))
    instance = engine.start("p", {"base_url": base})
    engine.run_due_jobs()  # no retries: the first failure is the incident
    after = engine.instance(instance.id)
    engine.close()
    assert after.status == "error"
    assert f"GET {base}/fail returned 500" in after.incidents[0].message
