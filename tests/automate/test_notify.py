"""Webhook notifications against a real HTTP receiver on 127.0.0.1: the JSON body of a real
failed run, the Slack-compatible shape, retries with backoff (the sleeps are recorded, not
slept), an unreachable port and a hanging receiver recorded as failed within the retry
budget, and no secret (a run parameter, a webhook token) in what is sent or recorded."""

from __future__ import annotations

import json
import logging
import time

import pytest

from nbops.automate.notify import mask_target, notify, parse_events, parse_target, payload_for, summary_line
from nbops.errors import UsageError
from tests.automate.receivers import TOKEN, notify_runs, webhook  # noqa: F401 - fixtures
from tests.services import free_port


def _schedule(runs, request, targets: list[str], notify_on: list[str] | None = None, **extra) -> dict:
    """A schedule row of its own for each test (events are per schedule)."""
    name = request.node.name.replace("[", "-").rstrip("]")[:60]
    fields = {"notebook": str(runs.notebook), "trigger": {"kind": "every", "seconds": 600}, "notify": targets, "notify_on": notify_on or []}
    assert runs.ss.add(name, **fields, **extra)
    return runs.ss.get(name)


def test_a_webhook_gets_the_failure_as_json(webhook, notify_runs, request):  # noqa: F811 - the fixtures
    runs = notify_runs
    schedule = _schedule(runs, request, [parse_target(webhook.url("/hook"))], params={"api_token": TOKEN})
    payload = payload_for("failure", runs.failed) | {"note": f"sent with {TOKEN}"}  # a secret value that slipped into the payload

    out = notify(runs.ss, schedule, "every:1", "failure", payload)

    assert out == [{"target": webhook.url("/hook"), "event": "failure", "status": "sent", "attempts": 1, "error": None}]
    [req] = webhook.requests
    assert (req.method, req.path, req.headers["content-type"]) == ("POST", "/hook", "application/json")
    body = req.json
    assert (body["schedule"], body["event"], body["key"], body["run_id"], body["status"]) == (
        schedule["name"],
        "failure",
        "every:1",
        runs.failed["id"],
        "failed",
    )
    assert body["notebook"] == str(runs.notebook.resolve())
    assert body["failed_stage"] == {"name": "train", "error": "ValueError: the service refused ***"}  # masked by the run's driver
    assert body["note"] == "sent with ***"  # masked by notify: the schedule's secret parameter
    assert TOKEN not in req.body.decode()
    assert body["summary"] == f"nbops schedule {schedule['name']}: run {runs.failed['id']} failed at stage train (ValueError: the service refused ***)"
    [event] = runs.ss.events(schedule["name"], kind="notify")
    assert (event["status"], event["key"], event["target"]) == ("sent", "every:1", webhook.url("/hook"))
    assert event["detail"]["event"] == "failure" and event["detail"]["attempts"] == 1 and event["detail"]["error"] is None


def test_slack_gets_text_and_blocks_and_the_token_is_never_recorded(webhook, notify_runs, request):  # noqa: F811 - the fixtures
    runs = notify_runs
    secret_path = "/services/T0001/B0002/XyzSecretToken99"
    target = parse_target("slack+" + webhook.url(secret_path))
    schedule = _schedule(runs, request, [target], ["success"])

    [out] = notify(runs.ss, schedule, "every:2", "success", payload_for("success", runs.succeeded))

    assert out["status"] == "sent" and out["target"] == f"slack+http://127.0.0.1:{webhook.port}/services/T…/***"
    [req] = webhook.requests
    assert req.path == secret_path  # sent to the real URL
    body = req.json
    assert set(body) == {"text", "blocks"}
    assert body["text"] == f"nbops schedule {schedule['name']}: run {runs.succeeded['id']} succeeded (score=42)"
    assert [b["type"] for b in body["blocks"]] == ["section", "section", "context"]
    assert body["blocks"][0]["text"] == {"type": "mrkdwn", "text": body["text"]}
    fields = [f["text"] for f in body["blocks"][1]["fields"]]
    assert f"*Run*\n{runs.succeeded['id']}" in fields and "*Status*\nsucceeded" in fields and "*score*\n42" in fields
    recorded = json.dumps(runs.ss.events(schedule["name"]))
    assert "XyzSecretToken99" not in recorded and "B0002" not in recorded


def test_a_failing_receiver_is_retried_with_backoff(webhook, notify_runs, request):  # noqa: F811 - the fixtures
    runs = notify_runs
    webhook.fail_first = 2
    schedule = _schedule(runs, request, [webhook.url()])
    sleeps: list[float] = []

    [out] = notify(runs.ss, schedule, "k", "failure", payload_for("failure", runs.failed), sleep=sleeps.append)

    assert (out["status"], out["attempts"]) == ("sent", 3)
    assert len(webhook.requests) == 3 and sleeps == [0.5, 1.0]  # 500, 500, 200: twice the wait each time
    [event] = runs.ss.events(schedule["name"], kind="notify")
    assert event["status"] == "sent" and event["detail"]["attempts"] == 3


def test_an_unreachable_webhook_is_recorded_as_failed_and_never_raises(notify_runs, request, caplog):  # noqa: F811 - the fixtures
    runs = notify_runs
    url = f"http://127.0.0.1:{free_port()}/hook/tok3n-abc"  # nothing listens there
    schedule = _schedule(runs, request, [url])
    sleeps: list[float] = []
    started = time.monotonic()

    with caplog.at_level(logging.WARNING, logger="nbops.automate.notify"):
        [out] = notify(runs.ss, schedule, "k", "failure", payload_for("failure", runs.failed), retries=3, backoff=0.5, sleep=sleeps.append)

    assert time.monotonic() - started < 5  # four refused connections, no real waiting
    assert (out["status"], out["attempts"]) == ("failed", 4) and sleeps == [0.5, 1.0, 2.0]
    assert "ConnectError" in out["error"] and out["target"] == f"http://127.0.0.1:{url.split(':')[2].split('/')[0]}/hook/t…"
    [event] = runs.ss.events(schedule["name"], kind="notify")
    assert event["status"] == "failed" and "ConnectError" in event["message"] and event["detail"]["attempts"] == 4
    assert "tok3n-abc" not in json.dumps(event) and "tok3n-abc" not in caplog.text
    assert "failed after 4 attempt(s)" in caplog.text


def test_a_hanging_receiver_times_out_within_the_budget(webhook, notify_runs, request):  # noqa: F811 - the fixtures
    runs = notify_runs
    webhook.hang.set()
    schedule = _schedule(runs, request, [webhook.url()])
    started = time.monotonic()

    [out] = notify(runs.ss, schedule, "k", "failure", payload_for("failure", runs.failed), retries=1, timeout=0.3, sleep=lambda s: None)

    assert time.monotonic() - started < 3
    assert (out["status"], out["attempts"]) == ("failed", 2) and "ReadTimeout" in out["error"]
    assert len(webhook.requests) == 2


def test_a_refusal_that_will_not_change_is_not_retried(webhook, notify_runs, request):  # noqa: F811 - the fixtures
    runs = notify_runs
    webhook.answer = 404
    schedule = _schedule(runs, request, [webhook.url()])
    [out] = notify(runs.ss, schedule, "k", "failure", payload_for("failure", runs.failed), sleep=lambda s: pytest.fail("no retry of a 404"))
    assert (out["status"], out["attempts"]) == ("failed", 1) and out["error"] == "HTTP 404 Not Found: no such hook"


def test_only_the_events_a_schedule_asked_for_are_sent(webhook, notify_runs, request):  # noqa: F811 - the fixtures
    runs = notify_runs
    schedule = _schedule(runs, request, [webhook.url(), webhook.url("/second")])  # notify_on empty: failure, promotion, regression
    assert notify(runs.ss, schedule, "k", "success", payload_for("success", runs.succeeded)) == []
    assert webhook.requests == [] and runs.ss.events(schedule["name"]) == []
    promotion = {"model": "churn", "version": 3, "alias": "production", "promoted": True, "reason": "v3 promoted to production (was v1)"}
    out = notify(runs.ss, schedule, "k", "promotion", payload_for("promotion", runs.succeeded, promotion=promotion))
    assert [o["status"] for o in out] == ["sent", "sent"] and [r.path for r in webhook.requests] == ["/hook", "/second"]
    assert webhook.requests[0].json["summary"] == f"nbops schedule {schedule['name']}: churn v3 promoted to production (run {runs.succeeded['id']})"
    assert webhook.requests[0].json["promotion"]["version"] == 3
    with pytest.raises(UsageError, match="unknown notification event 'sucess'"):
        notify(runs.ss, schedule, "k", "sucess", {})


def test_a_bad_row_or_an_odd_payload_never_raises(webhook, notify_runs, request):  # noqa: F811 - the fixtures
    import numpy as np

    runs = notify_runs
    # Rows are checked when a schedule is made; one written by hand (or by an older nbops) may hold anything.
    schedule = _schedule(runs, request, ["http://[::1", "gopher://example.org/x", webhook.url()])
    payload = payload_for("failure", runs.failed) | {"extra": {"rows": np.int64(3), "score": np.float64(float("nan"))}}
    out = notify(runs.ss, schedule, "k", "failure", payload, sleep=lambda s: pytest.fail("nothing to retry"))
    assert [(o["target"], o["status"], o["attempts"]) for o in out] == [
        ("(an unreadable target)", "failed", 1), ("gopher://example.org/x", "failed", 1), (webhook.url(), "sent", 1),
    ]  # fmt: skip
    assert "unknown notification target" in out[1]["error"]
    assert webhook.requests[0].json["extra"] == {"rows": 3, "score": "nan"}
    assert [e["status"] for e in runs.ss.events(schedule["name"], kind="notify")] == ["sent", "failed", "failed"]


def test_a_regression_says_which_metric_moved():
    payload = payload_for("regression", None, regressions=[{"metric": "accuracy", "previous": 0.8, "now": 0.62, "run": "r1", "goal": "max"}])
    assert (
        summary_line(payload | {"schedule": "nightly", "run_id": "r2"}) == "nbops schedule nightly: run r2 is worse than the previous one: accuracy 0.8 → 0.62"
    )


@pytest.mark.parametrize(
    ("target", "normalized", "masked"),
    [
        ("https://example.org/hook", "https://example.org/hook", "https://example.org/hook"),
        ("  http://example.org ", "http://example.org/", "http://example.org/"),
        ("slack+https://hooks.slack.com/services/T000/B000/XXXX", None, "slack+https://hooks.slack.com/services/T…/***"),
        ("https://discord.com/api/webhooks/1234/tokentoken", None, "https://discord.com/api/webhooks/1…/***"),
        ("https://user:pw@example.org/in?token=abc&x=1", None, "https://user:***@example.org/in?token=***&x=***"),
        ("smtp://alerts@mail.example.org?to=a@x.org,b@y.org", "smtp://alerts@mail.example.org:587?to=a@x.org,b@y.org", None),
        ("SMTPS://mail.example.org?to=a@x.org&from=n@x.org", "smtps://mail.example.org:465?to=a@x.org&from=n@x.org", None),
    ],
)
def test_targets_are_normalized_and_masked(target, normalized, masked):
    got = parse_target(target)
    assert got == (normalized or target.strip())
    assert mask_target(got) == (masked or got)


@pytest.mark.parametrize(
    ("target", "message", "fix"),
    [
        ("ftp://example.org/x", "unknown notification target 'ftp://example.org/x'", "webhooks and email"),
        ("hooks.slack.com/services/T0", "unknown notification target", "slack+https://"),
        ("https:///hook", "names no host", "https://example.org/hook"),
        ("http://example.org:99999/", "invalid port", "host:PORT"),
        ("smtp://alice:hunter22@mail.example.org?to=a@x.org", "has a password in it", "NBOPS_SMTP_PASSWORD"),
        ("smtp://mail.example.org", "names no recipient", "?to="),
        ("smtp://mail.example.org?to=team", "'team' in the email target is not an email address", "name@domain"),
        ("smtp://mail.example.org?to=a@x.org&cc=b@x.org", "unknown option(s) cc", "to= (required) and from="),
        ("", "is not a notification target", "give a URL"),
    ],
)
def test_bad_targets_say_what_to_write(target, message, fix):
    with pytest.raises(UsageError) as err:
        parse_target(target)
    assert message in err.value.message and fix in err.value.fix
    assert "hunter22" not in str(err.value)


def test_notify_on_events():
    assert parse_events(["failure,promotion", "regression", "failure"]) == ["failure", "promotion", "regression"]
    assert parse_events(None) == []
    with pytest.raises(UsageError, match="unknown notification event 'done'"):
        parse_events(["done"])
