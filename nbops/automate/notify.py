"""Notifications of a schedule: who hears about a firing, what they read, and the record of it.

Targets (``--notify``), checked with :func:`parse_target` when a schedule is made:

- ``https://...`` / ``http://...``: POST of the payload as JSON;
- ``slack+https://hooks.slack.com/services/...``: a Slack-compatible body
  (``{"text", "blocks"}``; Mattermost and Rocket.Chat read it too);
- ``smtp://`` / ``smtps://``: an email (``nbops.automate.notify_smtp``).

:func:`notify` sends one event (failure, success, promotion, regression) to every
target of a schedule whose ``notify_on`` lists it, retrying with exponential
backoff, and records each outcome as a schedule event. It never raises for a
delivery: a webhook that is down must not fail the run it reports on. Targets
are recorded and shown masked (:func:`mask_target`), and the payload and every
recorded message pass through the run's scrubber, so neither a webhook token
nor the SMTP password reaches the store.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from nbops.automate.notify_smtp import DeliveryError, parse_smtp, send_email, smtp_secrets
from nbops.errors import UsageError
from nbops.history import run_metrics
from nbops.plan.secrets import MASK, Scrubber, is_secret, mask_secrets
from nbops.text import finite_json, format_number, to_json_text

__all__ = [
    "EVENTS", "DEFAULT_NOTIFY_ON", "parse_target", "parse_events", "mask_target", "payload_for", "summary_line",
    "slack_body", "email_text", "notify",
]  # fmt: skip

log = logging.getLogger("nbops.automate.notify")

EVENTS = ("failure", "success", "promotion", "regression")
DEFAULT_NOTIFY_ON = ("failure", "promotion", "regression")  # a nightly success is not news
_WEBHOOK = ("http", "https")
_SLACK = ("slack+http", "slack+https")
_EXAMPLES = "https://example.org/hook, slack+https://hooks.slack.com/services/T…/B…/…, smtp://mail.example.org?to=team@example.org"
# A path segment that reads as a word stays visible (services, api, webhooks); the first
# one that does not (an id or a token) is cut to its first character, and the rest hidden.
_WORD = re.compile(r"^[A-Za-z][A-Za-z_-]{0,23}$")


# -- targets ---------------------------------------------------------------------------
def parse_target(s: str) -> str:
    """A notification target, checked and normalized; UsageError with an example otherwise."""
    if not isinstance(s, str) or not s.strip():
        raise UsageError(f"{s!r} is not a notification target", f"give a URL: {_EXAMPLES}")
    text = s.strip()
    scheme = urlsplit(text).scheme.lower()
    if scheme in ("smtp", "smtps"):
        return parse_smtp(text).url()
    if scheme not in _WEBHOOK + _SLACK:
        raise UsageError(f"unknown notification target {mask_target(text)!r}", f"targets are webhooks and email: {_EXAMPLES}")
    parts = urlsplit(text)
    if not parts.hostname:
        raise UsageError(f"the webhook {mask_target(text)!r} names no host", f"e.g. {_EXAMPLES}")
    try:
        parts.port  # noqa: B018 - urlsplit checks the port only when asked
    except ValueError:
        raise UsageError(f"the webhook {mask_target(text)!r} has an invalid port", "write host:PORT with a number") from None
    if parts.fragment:
        raise UsageError(f"the webhook {mask_target(text)!r} has a #fragment, which is never sent", "remove the part from '#'")
    return urlunsplit((scheme, parts.netloc, parts.path or "/", parts.query, ""))


def parse_events(values: Iterable[str] | None) -> list[str]:
    """``--notify-on`` values (each may be a comma list), checked; empty: the default events."""
    out: list[str] = []
    for value in values or ():
        for event in str(value).split(","):
            event = event.strip().lower()
            if not event:
                continue
            if event not in EVENTS:
                raise UsageError(f"unknown notification event {event!r}", f"events: {', '.join(EVENTS)}")
            if event not in out:
                out.append(event)
    return out


def mask_target(s: str) -> str:
    """A target as shown and recorded: no password, webhook path tokens and query values hidden
    (``slack+https://hooks.slack.com/services/T…/***``); email targets are shown whole."""
    text = str(s).strip()
    parts = urlsplit(text)
    if parts.password is not None:  # split here: mask_url's pattern reads "host:465?to=a@x" as a password
        host = parts.netloc.rpartition("@")[2]
        parts = parts._replace(netloc=f"{parts.username or ''}:{MASK}@{host}")
    if parts.scheme.lower() in ("smtp", "smtps"):
        return urlunsplit(parts)
    segments = [p for p in parts.path.split("/") if p]
    shown = []
    for i, seg in enumerate(segments):
        if _WORD.match(seg):
            shown.append(seg)
            continue
        shown.append(seg[0] + "…")
        if i + 1 < len(segments):
            shown.append(MASK)
        break
    query = urlencode([(k, MASK) for k in dict.fromkeys(k for k, _ in _query_pairs(parts.query))], safe="*")
    return urlunsplit((parts.scheme, parts.netloc, "/" + "/".join(shown) if shown else parts.path, query, ""))


def _query_pairs(query: str) -> list[tuple[str, str]]:
    return [(k, v) for k, _, v in (p.partition("=") for p in query.split("&") if p)]


def _target_secrets(target: str) -> list[str]:
    """The parts of a target that mask_target hides: they must not come back in an error message."""
    try:
        parts = urlsplit(target)
    except ValueError:
        return [target]
    hidden = [target, target.rstrip("/")]
    if parts.password:
        hidden.append(parts.password)
    segments = [p for p in parts.path.split("/") if p]
    words = 0
    while words < len(segments) and _WORD.match(segments[words]):
        words += 1
    hidden += segments[words:]
    hidden += [v for _, v in _query_pairs(parts.query) if v]
    return hidden


# -- what is said -------------------------------------------------------------------
def payload_for(
    event: str,
    run: Mapping[str, Any] | None = None,
    *,
    promotion: Mapping[str, Any] | None = None,
    regressions: list[Mapping[str, Any]] | None = None,
    error: str | None = None,
) -> dict[str, Any]:
    """The facts of one event from the run (its JSON or its store record): id, status,
    notebook, metrics, the failed stage with its error line, promotion verdicts,
    regressions. :func:`notify` adds the schedule, the firing and the summary line."""
    out: dict[str, Any] = {"event": event}
    if run is not None:
        metrics = run.get("metrics") if isinstance(run.get("metrics"), Mapping) else run_metrics(run)
        out |= {"run_id": run.get("id"), "status": run.get("status"), "notebook": run.get("notebook"), "metrics": finite_json(dict(metrics or {}))}
        failed = next((s for s in run.get("stages") or [] if s.get("status") == "failed"), None)
        if failed is not None:
            out["failed_stage"] = {"name": failed.get("name"), "error": error_line(failed.get("error"))}
    if error:
        out["error"] = error
    if promotion is not None:
        keep = ("model", "version", "alias", "promoted", "reason", "gates", "from")
        out["promotion"] = {k: promotion.get(k) for k in keep if k in promotion}
    if regressions:
        out["regressions"] = [dict(r) for r in regressions]
    return out


def error_line(error: Any) -> str | None:
    """``ValueError: bad input`` from a stage's error record: one line, for people."""
    if not error:
        return None
    if isinstance(error, Mapping):
        evalue = str(error.get("evalue") or "").strip().splitlines()
        return f"{error.get('ename') or 'Error'}: {evalue[0] if evalue else ''}".rstrip(": ")[:300]
    return str(error).strip().splitlines()[0][:300] if str(error).strip() else None


def summary_line(payload: Mapping[str, Any]) -> str:
    """One line a person reads first (no links: it is the email subject and the chat text)."""
    head = f"nbops schedule {payload.get('schedule') or '?'}"
    run = f"run {payload['run_id']}" if payload.get("run_id") else "a run"
    event = payload.get("event")
    if event == "promotion" and payload.get("promotion"):
        p = payload["promotion"]
        what = f"{p.get('model')} v{p.get('version')}" if p.get("version") is not None else str(p.get("model"))
        if p.get("promoted"):
            return f"{head}: {what} promoted to {p.get('alias')} ({run})"
        return f"{head}: {what} not promoted to {p.get('alias')}: {p.get('reason')}"
    if event == "regression" and payload.get("regressions"):
        worse = ", ".join(f"{r['metric']} {format_number(r['previous'])} → {format_number(r['now'])}" for r in payload["regressions"])
        return f"{head}: {run} is worse than the previous one: {worse}"
    if payload.get("status") == "failed" or event == "failure":
        stage = payload.get("failed_stage") or {}
        where = f" at stage {stage['name']}" if stage.get("name") else ""
        why = stage.get("error") or payload.get("error")
        return f"{head}: {run} failed{where}" + (f" ({why})" if why else "")
    metrics = ", ".join(f"{k}={format_number(v)}" for k, v in list((payload.get("metrics") or {}).items())[:4])
    return f"{head}: {run} {payload.get('status') or 'succeeded'}" + (f" ({metrics})" if metrics else "")


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_body(payload: Mapping[str, Any]) -> dict[str, Any]:
    """A Slack incoming-webhook body: ``text`` (notifications, old clients) and ``blocks``."""
    summary = payload.get("summary") or summary_line(payload)
    fields = [("Schedule", payload.get("schedule")), ("Event", payload.get("event")), ("Run", payload.get("run_id")), ("Status", payload.get("status"))]
    stage = payload.get("failed_stage") or {}
    if stage:
        fields.append(("Failed stage", f"{stage.get('name')}: {stage.get('error') or ''}".rstrip(": ")))
    for name, value in list((payload.get("metrics") or {}).items())[:4]:
        fields.append((name, format_number(value)))
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": _slack_escape(summary)[:3000]}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f"*{_slack_escape(str(k))}*\n{_slack_escape(str(v))[:1900]}"} for k, v in fields if v][:10]},
    ]
    context = [f"notebook {payload['notebook']}" if payload.get("notebook") else None, f"firing {payload['key']}" if payload.get("key") else None]
    if any(context):
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": _slack_escape(" · ".join(c for c in context if c))[:3000]}]})
    return {"text": summary, "blocks": blocks}


def email_text(payload: Mapping[str, Any]) -> tuple[str, str]:
    """(subject, body) of the email for one event."""
    summary = payload.get("summary") or summary_line(payload)
    lines = [summary, ""]
    for label, key in (("Schedule", "schedule"), ("Event", "event"), ("Firing", "key"), ("Run", "run_id"), ("Status", "status"), ("Notebook", "notebook")):
        if payload.get(key):
            lines.append(f"{label}: {payload[key]}")
    stage = payload.get("failed_stage") or {}
    if stage:
        lines.append(f"Failed stage: {stage.get('name')}" + (f": {stage['error']}" if stage.get("error") else ""))
    for name, value in (payload.get("metrics") or {}).items():
        lines.append(f"Metric {name}: {format_number(value)}")
    if payload.get("promotion"):
        lines.append(f"Promotion: {payload['promotion'].get('reason')}")
    lines += ["", "The whole event, as JSON:", json.dumps(payload, indent=2, sort_keys=True, default=str)]
    subject = summary if len(summary) <= 160 else summary[:159] + "…"
    return subject, "\n".join(lines) + "\n"


# -- sending ---------------------------------------------------------------------------
def _post(url: str, body: dict[str, Any], timeout: float) -> None:
    import httpx

    from nbops import __version__

    try:
        r = httpx.post(url, json=body, timeout=timeout, follow_redirects=False, headers={"User-Agent": f"nbops/{__version__}"})
    except httpx.TransportError as exc:  # refused, reset, DNS, timed out: may pass later
        raise DeliveryError(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__, retry=True) from None
    if r.is_success:
        return
    text = " ".join(r.text.split())[:200]
    # 5xx, 429 (slow down) and 408 may pass later; anything else (404, 403, a redirect) will not.
    retry = r.status_code >= 500 or r.status_code in (408, 429)
    raise DeliveryError(f"HTTP {r.status_code} {r.reason_phrase}" + (f": {text}" if text else ""), retry=retry)


def _send(target: str, payload: dict[str, Any], timeout: float) -> None:
    try:
        target = parse_target(target)  # a row written by hand or by an older nbops
    except UsageError as exc:
        raise DeliveryError(exc.message, retry=False) from None
    scheme = urlsplit(target).scheme.lower()
    if scheme in ("smtp", "smtps"):
        subject, body = email_text(payload)
        send_email(parse_smtp(target), subject, body, timeout=timeout)
    elif scheme in _SLACK:
        _post(target.split("+", 1)[1], slack_body(payload), timeout)
    else:
        _post(target, payload, timeout)


def _deliver(send: Callable[[], None], retries: int, backoff: float, sleep: Callable[[float], None]) -> tuple[int, str | None]:
    """(attempts, None) once sent, (attempts, last error) when it gave up: after ``retries``
    more tries, waiting ``backoff`` seconds, then twice that, and so on."""
    attempt, error = 0, None
    while True:
        attempt += 1
        try:
            send()
            return attempt, None
        except DeliveryError as exc:
            error = str(exc)
            if not exc.retry or attempt > retries:
                return attempt, error
        except Exception as exc:  # noqa: BLE001 - whatever breaks, the run must not
            return attempt, f"{type(exc).__name__}: {exc}"
        sleep(backoff * 2 ** (attempt - 1))


def notify(
    ss,
    schedule: Mapping[str, Any],
    key: str | None,
    event: str,
    payload: Mapping[str, Any],
    *,
    retries: int = 3,
    backoff: float = 0.5,
    timeout: float = 5,
    sleep: Callable[[float], None] = time.sleep,
) -> list[dict[str, Any]]:
    """Tell every target of ``schedule`` about ``event`` when its ``notify_on`` lists it
    (default: failure, promotion, regression). One outcome per target, each also recorded
    as a ``notify`` event of the schedule (``sent`` or ``failed``). Never raises for a delivery."""
    if event not in EVENTS:
        raise UsageError(f"unknown notification event {event!r}", f"events: {', '.join(EVENTS)}")
    name = schedule.get("name") or "?"
    wanted = list(schedule.get("notify_on") or DEFAULT_NOTIFY_ON)
    targets = list(schedule.get("notify") or [])
    if event not in wanted or not targets:
        return []
    params = schedule.get("params") or {}
    scrub = Scrubber([*smtp_secrets(), *(str(v) for k, v in params.items() if v is not None and is_secret(str(k)))])
    body = dict(payload) | {"schedule": name, "event": event} | ({"key": key} if key else {})
    if isinstance(body.get("params"), Mapping):
        body["params"] = mask_secrets(body["params"])
    # JSON-safe once (numpy numbers, dates, NaN), so no target fails on what the caller passed.
    body = scrub.json(json.loads(to_json_text(body, default=_plain)))
    body.setdefault("summary", summary_line(body))
    outcomes = []
    for target in targets:
        try:
            masked = mask_target(target)
        except ValueError:  # urlsplit refuses it ("http://[::1"): show nothing of it
            masked = "(an unreadable target)"
        hide = Scrubber([*smtp_secrets(), *_target_secrets(target)])
        attempts, error = _deliver(lambda t=target: _send(t, body, timeout), retries, backoff, sleep)
        if error is not None:
            error = scrub.text(hide.text(error.replace(target, masked)))
            log.warning("schedule %s: %s notification to %s failed after %d attempt(s): %s", name, event, masked, attempts, error)
        outcome = {"target": masked, "event": event, "status": "failed" if error else "sent", "attempts": attempts, "error": error}
        outcomes.append(outcome)
        message = f"{event} notification {'sent' if error is None else 'failed'}" + (f": {error}" if error else "")
        try:
            ss.add_event(name, "notify", outcome["status"], key=key, target=masked, message=message,
                         detail={"event": event, "attempts": attempts, "error": error, "summary": body["summary"]})  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - a store that is down loses the record, not the run
            log.warning("schedule %s: could not record the %s notification to %s: %s", name, event, masked, exc)
    return outcomes


def _plain(value: Any) -> Any:
    """A JSON stand-in for what json cannot write: numpy scalars as numbers, the rest as text."""
    item = getattr(value, "item", None)
    if callable(item):
        try:
            value = item()
        except (TypeError, ValueError):
            return str(value)
        return finite_json(value) if isinstance(value, (int, float, bool, str)) else str(value)
    return str(value)
