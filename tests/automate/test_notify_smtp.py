"""Email notifications against a real SMTP server (aiosmtpd on 127.0.0.1): the message of a
real failed run arrives with a subject and body naming schedule, run and status; AUTH with
the password from the environment over STARTTLS and over SMTPS, with the certificate
checked; a wrong password, an untrusted certificate and a server that would read the
password in clear text each end as a recorded failure, the password never recorded."""

from __future__ import annotations

import json

import pytest

from nbops.automate.notify import notify, parse_target, payload_for
from tests.automate.receivers import USER, notify_runs, self_signed, smtp_server  # noqa: F401 - fixtures
from tests.services import free_port

PASSWORD = "pw-Secret-4242"
# The SMTPS server is told AUTH needs no STARTTLS (its socket is TLS already), which aiosmtpd warns about.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


@pytest.fixture(autouse=True)
def no_smtp_credentials(monkeypatch):
    monkeypatch.delenv("NBOPS_SMTP_USER", raising=False)
    monkeypatch.delenv("NBOPS_SMTP_PASSWORD", raising=False)


def _schedule(runs, request, target: str) -> dict:
    name = request.node.name.replace("[", "-").rstrip("]")[:60]
    assert runs.ss.add(name, notebook=str(runs.notebook), trigger={"kind": "every", "seconds": 600}, notify=[parse_target(target)])
    return runs.ss.get(name)


def _send(runs, schedule, **kwargs) -> dict:
    [out] = notify(runs.ss, schedule, "cron:2026-12-01T03:00:00+01:00", "failure", payload_for("failure", runs.failed), sleep=lambda s: None, **kwargs)
    return out


def test_an_email_names_the_schedule_the_run_and_its_status(smtp_server, notify_runs, request):  # noqa: F811 - the fixtures
    runs = notify_runs
    server = smtp_server()
    schedule = _schedule(runs, request, f"smtp://127.0.0.1:{server.port}?to=team@example.org,oncall@example.org&from=nbops@example.org")

    out = _send(runs, schedule)

    assert (out["status"], out["attempts"]) == ("sent", 1)
    [msg] = server.messages
    assert server.envelopes == [("nbops@example.org", ["team@example.org", "oncall@example.org"])]
    run_id, name = runs.failed["id"], schedule["name"]
    assert msg["Subject"] == f"nbops schedule {name}: run {run_id} failed at stage train (ValueError: the service refused ***)"
    assert (msg["From"], msg["To"]) == ("nbops@example.org", "team@example.org, oncall@example.org")
    body = msg.get_content().replace("\r\n", "\n")
    for line in (f"Schedule: {name}", f"Run: {run_id}", "Status: failed", "Failed stage: train: ValueError: the service refused ***", "Event: failure"):
        assert line in body
    assert json.loads(body.split("The whole event, as JSON:\n", 1)[1])["run_id"] == run_id
    [event] = runs.ss.events(name, kind="notify")
    assert event["status"] == "sent" and event["target"] == f"smtp://127.0.0.1:{server.port}?to=team@example.org,oncall@example.org&from=nbops@example.org"


@pytest.mark.parametrize("tls", ["starttls", "smtps"])
def test_auth_with_the_password_from_the_environment(smtp_server, notify_runs, request, monkeypatch, tls):  # noqa: F811 - the fixtures
    runs = notify_runs
    server = smtp_server(password=PASSWORD, tls=tls)
    monkeypatch.setenv("NBOPS_SMTP_PASSWORD", PASSWORD)
    if tls == "smtps":  # the user in the URL (its '@' escaped)
        target = f"smtps://{USER.replace('@', '%40')}@127.0.0.1:{server.port}?to=team@example.org"
    else:  # the user from the environment too
        monkeypatch.setenv("NBOPS_SMTP_USER", USER)
        target = f"smtp://127.0.0.1:{server.port}?to=team@example.org"
    schedule = _schedule(runs, request, target)

    out = _send(runs, schedule)

    assert out["status"] == "sent", out["error"]
    assert server.logins == [(USER, PASSWORD, True)] and len(server.messages) == 1
    assert server.messages[0]["From"] == USER  # no from=: the login's address
    assert PASSWORD not in json.dumps(runs.ss.events(schedule["name"])) and PASSWORD not in json.dumps(schedule)


def test_a_wrong_password_fails_is_recorded_and_masked(smtp_server, notify_runs, request, monkeypatch):  # noqa: F811 - the fixtures
    runs = notify_runs
    server = smtp_server(password=PASSWORD, tls="starttls")
    wrong = "wrong-Secret-7777"
    monkeypatch.setenv("NBOPS_SMTP_USER", USER)
    monkeypatch.setenv("NBOPS_SMTP_PASSWORD", wrong)
    schedule = _schedule(runs, request, f"smtp://127.0.0.1:{server.port}?to=team@example.org")

    out = _send(runs, schedule, retries=3)

    assert (out["status"], out["attempts"]) == ("failed", 1)  # a refused login is not retried
    assert f"the server refused the login of {USER}: 535" in out["error"]
    # It was tried and refused (smtplib tries each mechanism the server offers: PLAIN, then LOGIN).
    assert server.logins and set(server.logins) == {(USER, wrong, False)} and server.messages == []
    [event] = runs.ss.events(schedule["name"], kind="notify")
    assert event["status"] == "failed" and "refused the login" in event["message"]
    assert wrong not in json.dumps(event) and wrong not in json.dumps(out)


def test_no_password_goes_out_in_clear_text(smtp_server, notify_runs, request, monkeypatch):  # noqa: F811 - the fixtures
    runs = notify_runs
    server = smtp_server(password=PASSWORD)  # no TLS at all
    monkeypatch.setenv("NBOPS_SMTP_USER", USER)
    monkeypatch.setenv("NBOPS_SMTP_PASSWORD", PASSWORD)
    schedule = _schedule(runs, request, f"smtp://127.0.0.1:{server.port}?to=team@example.org")

    out = _send(runs, schedule)

    assert out["status"] == "failed" and "offers no STARTTLS: the password is not sent in clear text" in out["error"]
    assert server.logins == [] and server.messages == []


def test_an_untrusted_certificate_is_refused(smtp_server, notify_runs, request, monkeypatch, tmp_path):  # noqa: F811 - the fixtures
    runs = notify_runs
    server = smtp_server(tls="smtps")
    other = tmp_path / "other"
    other.mkdir()
    monkeypatch.setenv("SSL_CERT_FILE", str(self_signed(other)[0]))  # trust another certificate than the server's
    schedule = _schedule(runs, request, f"smtps://127.0.0.1:{server.port}?to=team@example.org")

    out = _send(runs, schedule)

    assert (out["status"], out["attempts"]) == ("failed", 1) and "is not trusted" in out["error"]
    assert server.messages == []


def test_an_unreachable_server_is_retried_then_recorded(notify_runs, request, monkeypatch):  # noqa: F811 - the fixtures
    runs = notify_runs
    monkeypatch.setenv("NBOPS_SMTP_USER", USER)
    monkeypatch.setenv("NBOPS_SMTP_PASSWORD", PASSWORD)
    schedule = _schedule(runs, request, f"smtp://127.0.0.1:{free_port()}?to=team@example.org")
    sleeps: list[float] = []

    [out] = notify(runs.ss, schedule, "k", "failure", payload_for("failure", runs.failed), retries=2, backoff=0.1, sleep=sleeps.append)

    assert (out["status"], out["attempts"]) == ("failed", 3) and sleeps == [0.1, 0.2]
    assert "ConnectionRefusedError" in out["error"]
    [event] = runs.ss.events(schedule["name"], kind="notify")
    assert event["status"] == "failed" and PASSWORD not in json.dumps(event)


def test_a_user_without_a_password_says_which_variable_to_set(smtp_server, notify_runs, request):  # noqa: F811 - the fixtures
    runs = notify_runs
    server = smtp_server(password=PASSWORD, tls="starttls")
    schedule = _schedule(runs, request, f"smtp://{USER.replace('@', '%40')}@127.0.0.1:{server.port}?to=team@example.org")
    out = _send(runs, schedule)
    assert out["status"] == "failed" and "NBOPS_SMTP_PASSWORD is not set" in out["error"] and out["attempts"] == 1
