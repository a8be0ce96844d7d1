"""`nbops schedule add|ls|show|pause|resume|rm|run-now` on a copy of the churn example, and the errors of bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from nbops.automate import schedules
from nbops.cli.main import main
from tests.conftest import EXAMPLES, build_notebook, run_cli


@pytest.fixture
def churn(tmp_path, monkeypatch) -> Path:
    monkeypatch.delenv("NBOPS_STORE", raising=False)
    monkeypatch.delenv("NBOPS_OBJECTS", raising=False)
    monkeypatch.chdir(tmp_path)
    shutil.copy(EXAMPLES / "churn.ipynb", tmp_path / "churn.ipynb")
    return tmp_path / "churn.ipynb"


def cli_json(capsys, *args: str):
    capsys.readouterr()
    code = main([*args, "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    return json.loads(out.out)


def cli_error(capsys, *args: str) -> str:
    capsys.readouterr()
    code = main(list(args))
    err = capsys.readouterr().err
    assert code == 2, err
    return err


def test_round_trip(churn, capsys):
    nb = str(churn)
    out = cli_json(capsys, "schedule", "add", nb, "--cron", "0 3 * * *", "--tz", "Europe/Berlin", "-p", "n_estimators=50",
                   "--promote", "churn", "--require", "accuracy>=0.8", "--require-better-than", "production",
                   "--notify", "https://hooks.example.org/services/T0/secret-token", "--notify-on", "failure,promotion")  # fmt: skip
    s = out["schedule"]
    assert s["name"] == "churn-cron" and s["status"] == "active" and s["trigger"] == {"kind": "cron", "cron": "0 3 * * *", "tz": "Europe/Berlin"}
    assert s["params"] == {"n_estimators": "50"} and s["notify_on"] == ["failure", "promotion"]
    assert s["promote"] == {"model": "churn", "alias": "production", "require": ["accuracy>=0.8"], "require_better_than": "production"}
    assert "secret-token" not in json.dumps(out)  # targets are shown masked
    assert len(s["next"]) == 5 and all(t.endswith("T03:00:00+01:00") for t in s["next"])
    cli_json(capsys, "schedule", "add", nb, "--every", "10m", "--name", "churn-often", "--overlap", "skip", "--max-concurrent", "2")
    added = cli_json(capsys, "schedule", "add", nb, "--on-change", "data/*.csv", "--debounce", "3")
    assert "data/*.csv matches no file" in added["warnings"][0]
    cli_json(capsys, "schedule", "add", nb, "--after", "churn-cron", "--name", "report")

    listed = {s["name"]: s for s in cli_json(capsys, "schedule", "ls")}
    assert sorted(listed) == ["churn-cron", "churn-often", "churn-on-change", "report"]
    assert listed["churn-often"]["options"] == {"max_concurrent": 2, "overlap": "skip", "catch_up": None}
    assert listed["churn-on-change"]["trigger"] == {"kind": "on_change", "watch": ["data/*.csv"], "debounce": 3.0}
    assert listed["report"]["describe"] == "after churn-cron succeeds" and listed["report"]["next"] == []

    shown = cli_json(capsys, "schedule", "show", "churn-often")
    assert shown["firings"] == [] and len(shown["schedule"]["next"]) == 5

    assert cli_json(capsys, "schedule", "pause", "churn-often")["status"] == "paused"
    assert cli_json(capsys, "schedule", "show", "churn-often")["schedule"]["next"] == []
    assert cli_json(capsys, "schedule", "resume", "churn-often")["status"] == "active"
    # the scheduler plans from the resume on: times due while paused are not caught up
    assert schedules.open_schedules(near=nb).get("churn-often")["state"]["planned_until"] > 0
    kinds = [e["kind"] for e in cli_json(capsys, "schedule", "show", "churn-often")["events"]]
    assert kinds == ["resumed", "paused"]

    # a schedule another one runs after cannot go first
    assert "run after it: report" in cli_error(capsys, "schedule", "rm", "churn-cron")
    assert cli_json(capsys, "schedule", "rm", "report") == {"removed": "report", "notebook": nb}
    assert cli_json(capsys, "schedule", "rm", "churn-cron")["removed"] == "churn-cron"
    assert sorted(s["name"] for s in cli_json(capsys, "schedule", "ls")) == ["churn-often", "churn-on-change"]
    assert "no schedule named churn-cron" in cli_error(capsys, "schedule", "show", "churn-cron")

    # the text forms
    capsys.readouterr()
    assert main(["schedule", "ls"]) == 0 and "churn-often" in capsys.readouterr().out
    assert main(["schedule", "show", "churn-often"]) == 0 and "every 10m" in capsys.readouterr().out


def test_bad_input_is_a_clear_error_with_exit_2(churn, capsys, tmp_path):
    nb = str(churn)
    assert "notebook missing.ipynb not found" in cli_error(capsys, "schedule", "add", "missing.ipynb", "--every", "1h")
    broken = build_notebook(tmp_path, [("x = 1", ["parameters"]), ("y = undefined_name + x", ["stage:one"])], name="broken.ipynb")
    err = cli_error(capsys, "schedule", "add", str(broken), "--every", "1h")
    assert "1 error in" in err and "undefined_name" in err  # the errors nbops convert gives
    cli_json(capsys, "schedule", "add", nb, "--every", "1h")
    err = cli_error(capsys, "schedule", "add", nb, "--every", "2h")
    assert "a schedule named churn-every exists already" in err and "--name" in err
    assert "minute '61' is out of range 0-59" in cli_error(capsys, "schedule", "add", nb, "--cron", "61 3 * * *")
    assert "unknown time zone 'Mars/Olympus'" in cli_error(capsys, "schedule", "add", nb, "--cron", "0 3 * * *", "--tz", "Mars/Olympus")
    assert "bad interval '10 minutes'" in cli_error(capsys, "schedule", "add", nb, "--every", "10 minutes")
    assert "unknown parameter n_trees" in cli_error(capsys, "schedule", "add", nb, "--every", "1h", "--name", "x", "-p", "n_trees=5")
    assert "--after nightly: no such schedule" in cli_error(capsys, "schedule", "add", nb, "--after", "nightly")
    assert "cannot read the gate" in cli_error(
        capsys, "schedule", "add", nb, "--every", "1h", "--name", "y", "--promote", "churn", "--require", "accuracy=high"
    )
    assert "go with --promote" in cli_error(capsys, "schedule", "add", nb, "--every", "1h", "--name", "z", "--require", "accuracy>=0.8")
    assert "invalid schedule name" in cli_error(capsys, "schedule", "add", nb, "--every", "1h", "--name", "Bad Name")
    assert "unknown notification target" in cli_error(capsys, "schedule", "add", nb, "--every", "1h", "--name", "w", "--notify", "ftp://x.org/")
    assert [s["name"] for s in schedules.ls(near=nb)] == ["churn-every"]  # nothing half-made


def test_exit_code_from_a_real_process(churn):
    proc = run_cli("schedule", "add", str(churn), "--cron", "0 3 * * * *", cwd=churn.parent)
    assert proc.returncode == 2 and "it has 6 fields, cron has 5" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_cli("schedule", "ls", cwd=churn.parent)
    assert proc.returncode == 0 and "no schedules yet" in proc.stdout
    assert not (churn.parent / ".nbops").exists()  # reading creates no store


def test_moved_notebook_is_reported_broken_and_resume_rechecks(churn, capsys):
    cli_json(capsys, "schedule", "add", str(churn), "--every", "1h")
    row = schedules.open_schedules(near=churn).get("churn-every")
    assert schedules.check_notebook(row) is None
    moved = churn.with_name("moved.ipynb")
    churn.rename(moved)
    assert "was moved or deleted" in schedules.check_notebook(row)
    out = cli_json(capsys, "schedule", "resume", "churn-every", "--notebook", str(moved))
    assert out["status"] == "broken" and "moved or deleted" in out["broken"]
    assert "is broken" in cli_error(capsys, "schedule", "run-now", "churn-every", "--notebook", str(moved))
    moved.rename(churn)
    assert cli_json(capsys, "schedule", "resume", "churn-every")["status"] == "active"
    # an edit that breaks the analysis is seen (the verdict is remembered only while the file is unchanged)
    doc = json.loads(churn.read_text())
    doc["cells"].append(
        {"cell_type": "code", "metadata": {"tags": ["stage:broken"]}, "source": "z = not_defined_anywhere", "outputs": [], "execution_count": None}
    )
    churn.write_text(json.dumps(doc))
    reason = schedules.check_notebook(row)
    assert "not_defined_anywhere" in reason
    assert cli_json(capsys, "schedule", "resume", "churn-every")["broken"] == reason


def test_run_now_with_a_live_scheduler_queues_a_manual_firing(churn, capsys):
    cli_json(capsys, "schedule", "add", str(churn), "--every", "1h")
    ss = schedules.open_schedules(near=churn)
    ss.heartbeat("sched-1", "host", 1)
    out = cli_json(capsys, "schedule", "run-now", "churn-every")
    assert out["ran"] is False and out["scheduler"] == "sched-1" and out["key"].startswith("manual:")
    firing = ss.firing("churn-every", out["key"])
    assert firing["status"] == "queued" and firing["trigger"]["kind"] == "manual"
    shown = cli_json(capsys, "schedule", "show", "churn-every")
    assert [f["key"] for f in shown["firings"]] == [out["key"]]


def test_run_now_without_a_scheduler_runs_here(tiny, capsys, monkeypatch):
    monkeypatch.chdir(tiny.folder)
    cli_json(capsys, "schedule", "add", str(tiny.notebook), "--every", "1d", "-p", "tag=manual")
    capsys.readouterr()
    assert main(["schedule", "run-now", "tiny-every"]) == 0
    assert "succeeded" in capsys.readouterr().out
    firing = schedules.show("tiny-every", near=tiny.notebook)["firings"][0]
    assert firing["status"] == "succeeded" and firing["run_id"] and firing["key"].startswith("manual:")
    run = schedules.open_schedules(near=tiny.notebook).store.get_run(firing["run_id"])
    assert run["params"]["tag"] == "manual" and run["trigger"]["key"] == firing["key"]
    # a failing run: the firing says failed, and the command exits 1
    cli_json(capsys, "schedule", "add", str(tiny.notebook), "--every", "1d", "--name", "bad", "-p", "fail=true")
    capsys.readouterr()
    assert main(["schedule", "run-now", "bad"]) == 1
    assert schedules.show("bad", near=tiny.notebook)["firings"][0]["status"] == "failed"


def test_on_change_inputs_are_the_files_the_notebook_reads(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("NBOPS_STORE", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.csv").write_text("a\n1\n")
    nb = build_notebook(
        tmp_path,
        [("data_dir = 'data'", ["parameters"]), ("import nbops", ["setup"]), ("text = open(nbops.input(f'{data_dir}/train.csv')).read()", ["stage:load"])],
        name="reads.ipynb",
    )
    out = cli_json(capsys, "schedule", "add", str(nb), "--on-change", "inputs")
    assert out["schedule"]["trigger"] == {"kind": "on_change", "watch": ["data/train.csv"], "debounce": 1.0, "from_inputs": True}
    assert out["schedule"]["describe"] == "on change of the notebook's inputs (debounce 1s)" and out["warnings"] == []
    other = cli_json(capsys, "schedule", "add", str(nb), "--on-change", "inputs", "-p", "data_dir=other", "--name", "other")
    assert other["schedule"]["trigger"]["watch"] == ["other/train.csv"] and "matches no file" in other["warnings"][0]
    churn = tmp_path / "churn.ipynb"
    shutil.copy(EXAMPLES / "churn.ipynb", churn)
    assert "names no input file" in cli_error(capsys, "schedule", "add", str(churn), "--on-change", "inputs")
    assert "unknown protocol 'nosuch'" in cli_error(capsys, "schedule", "add", str(nb), "--on-change", "nosuch://x/y", "--name", "u")


def test_run_now_of_a_paused_schedule_runs_here_even_with_a_scheduler(tiny, capsys, monkeypatch):
    monkeypatch.chdir(tiny.folder)
    cli_json(capsys, "schedule", "add", str(tiny.notebook), "--every", "1d")
    cli_json(capsys, "schedule", "pause", "tiny-every")
    schedules.open_schedules(near=tiny.notebook).heartbeat("sched-1", "host", 1)  # a live scheduler leaves paused schedules alone
    out = cli_json(capsys, "schedule", "run-now", "tiny-every")
    assert out["ran"] is True and out["firing"]["status"] == "succeeded" and out["firing"]["run_id"]


def test_a_secret_parameter_is_never_stored_in_the_schedule(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("NBOPS_STORE", raising=False)
    monkeypatch.chdir(tmp_path)
    nb = build_notebook(tmp_path, [("api_token = ''\nn = 1", ["parameters"]), ("m = n + len(api_token)", ["stage:one"])], name="sec.ipynb")
    err = cli_error(capsys, "schedule", "add", str(nb), "--every", "1h", "-p", "api_token=s3cr3t-value")
    assert "api_token looks secret" in err and "-f" in err and "s3cr3t-value" not in err
    (tmp_path / "secrets.yaml").write_text("api_token: s3cr3t-value\n")
    out = cli_json(capsys, "schedule", "add", str(nb), "--every", "1h", "-f", "secrets.yaml", "-p", "n=2")
    assert out["schedule"]["params"] == {"n": "2"} and out["schedule"]["params_file"] == str(tmp_path / "secrets.yaml")
    stored = b"".join(f.read_bytes() for f in (tmp_path / ".nbops").rglob("*") if f.is_file())  # the database and its WAL
    assert b"api_token" in stored or b"secrets.yaml" in stored
    assert b"s3cr3t-value" not in stored
