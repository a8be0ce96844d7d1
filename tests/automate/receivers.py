"""Real receivers for notification tests: an HTTP webhook endpoint and an SMTP server.

``webhook`` (function): a ``ThreadingHTTPServer`` on 127.0.0.1 and a free port,
in a thread of the pytest process. It records every request (method, path,
headers, body, JSON) and answers ``answer`` (200), or 500 for the first ``fail_first``
requests, or holds a request without answering while ``hang`` is set (until
the test ends: a client's timeout is what is tested).

``smtp_server`` (function): a factory of aiosmtpd servers (``pip install aiosmtpd``)
on 127.0.0.1 and a free port: ``smtp_server(password=None, tls=None)`` with
``tls`` one of None (clear text), ``"starttls"`` (offered, and required before
AUTH as real servers do) and ``"smtps"`` (TLS from the first byte). With a
``password``, AUTH is required and only ``USER`` / that password is let in. The
certificate is self-signed for 127.0.0.1 and put in ``SSL_CERT_FILE`` for the
test, so the client checks it as it would a real one. Received messages are
parsed ``email.message.EmailMessage`` objects in ``server.messages``; the
logins tried in ``server.logins``.

Both stop at the end of the test.

``notify_runs`` (module): two real runs of a tiny notebook with a secret parameter,
one failed at stage ``train`` (its error names the secret, masked by the driver)
and one succeeded (metric ``score`` = 42), with the ScheduleStore of their store:
what notifications report on.
"""

from __future__ import annotations

import datetime
import email
import email.policy
import ipaddress
import json
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.services import free_port

USER = "alerts@example.org"


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class WebhookReceiver:
    port: int
    fail_first: int = 0
    answer: int = 200  # the status of a request that is not failed on purpose
    hang: threading.Event = field(default_factory=threading.Event)  # set: hold each request unanswered
    requests: list[Request] = field(default_factory=list)
    _release: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        req = Request(handler.command, handler.path, {k.lower(): v for k, v in handler.headers.items()}, handler.rfile.read(length))
        with self._lock:
            self.requests.append(req)
            failing = len(self.requests) <= self.fail_first
        if self.hang.is_set():
            self._release.wait(30)  # the client times out long before; the test's end releases it
            return
        status, body = (500, b'{"error": "broken on purpose"}') if failing else (self.answer, b"ok" if self.answer < 300 else b"no such hook")
        handler.send_response(status)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)


@pytest.fixture
def webhook():
    receiver = WebhookReceiver(free_port())

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - the name http.server calls
            receiver._handle(self)

        def log_message(self, *args):  # keep the test output quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", receiver.port), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver._release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


def self_signed(folder: Path) -> tuple[Path, Path]:
    """(certificate, key) for 127.0.0.1 and localhost, valid for a day."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "smtp-cert.pem", folder / "smtp-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return cert_path, key_path


@dataclass
class SmtpServer:
    port: int
    messages: list[email.message.EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)  # (mail from, rcpt tos)
    logins: list[tuple[str, str, bool]] = field(default_factory=list)  # (user, password, accepted)

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp_server(tmp_path, monkeypatch):
    pytest.importorskip("aiosmtpd", reason="pip install aiosmtpd")
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    started = []

    def start(password: str | None = None, tls: str | None = None) -> SmtpServer:
        received = SmtpServer(free_port())
        kwargs: dict[str, Any] = {}
        if tls is not None:
            cert, key = self_signed(tmp_path)
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(cert, key)
            kwargs["ssl_context" if tls == "smtps" else "tls_context"] = context
            monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the client trusts this certificate, and only it
        if password is not None:

            def authenticator(server, session, envelope, mechanism, auth_data):
                user, given = auth_data.login.decode(), auth_data.password.decode()
                ok = user == USER and given == password
                received.logins.append((user, given, ok))
                return AuthResult(success=ok, handled=False)  # handled=False: the server answers 535 itself

            # aiosmtpd knows of TLS only through STARTTLS: on an SMTPS socket it would not offer AUTH.
            kwargs |= {"authenticator": authenticator, "auth_required": True, "auth_require_tls": tls != "smtps"}
        controller = Controller(received, hostname="127.0.0.1", port=received.port, **kwargs)
        controller.start()
        started.append(controller)
        return received

    try:
        yield start
    finally:
        for controller in started:
            controller.stop()


TOKEN = "s3cr3t-token-value"


@dataclass
class NotifyRuns:
    ss: Any  # ScheduleStore
    failed: dict
    succeeded: dict
    notebook: Path


@pytest.fixture(scope="module")
def notify_runs(tmp_path_factory) -> NotifyRuns:
    from nbops import api
    from nbops.store import open_store
    from nbops.store.schedules import ScheduleStore
    from tests.conftest import build_notebook

    folder = tmp_path_factory.mktemp("notify")
    nb = build_notebook(
        folder,
        [
            ("api_token = 'none'\nfail = True", ["parameters"]),
            ("import nbops", ["setup"]),
            ("x = 41", ["stage:prepare"]),
            ("if fail:\n    raise ValueError(f'the service refused {api_token}')\nscore = x + 1\nnbops.log_metric('score', score)", ["stage:train"]),
        ],
        "nightly.ipynb",
    )
    store = str(folder / ".nbops")
    failed = api.run(nb, {"api_token": TOKEN, "fail": True}, store=store)
    succeeded = api.run(nb, {"api_token": TOKEN, "fail": False}, store=store)
    assert (failed["status"], succeeded["status"]) == ("failed", "succeeded")
    return NotifyRuns(ScheduleStore(open_store(store, nb)), failed, succeeded, nb)
