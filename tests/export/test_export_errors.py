"""Bad input to nbops export: the errors of 'nbops convert' for a notebook with
analysis errors (exit 2), usage errors for unknown targets and options that do not
apply, a clear word when kfp is missing; and nothing written in any of these cases."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import run_cli
from tests.export.notebooks import broken_notebook, resources_notebook


def _written(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


def test_analysis_errors_are_those_of_convert(tmp_path):
    bad = broken_notebook(tmp_path / "src")
    convert = run_cli("convert", str(bad), "-o", str(tmp_path / "converted"))
    assert convert.returncode == 2
    for to, out in (("airflow", tmp_path / "dags"), ("kfp", tmp_path / "kfp" / "pipeline.yaml")):
        proc = run_cli("export", str(bad), "--to", to, "-o", str(out))
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr == convert.stderr  # the same errors, cell and fix, word for word
        assert "cell 0" in proc.stderr and "reads 'x'" in proc.stderr
    assert not (tmp_path / "dags").exists() and not (tmp_path / "kfp").exists()


def test_usage_errors(tmp_path):
    nb = resources_notebook(tmp_path / "src")
    out = tmp_path / "out"
    cases = [
        (["--to", "prefect", "-o", str(out)], ["'prefect' is not an export target", "--to airflow", "--to kfp"]),
        (["--to", "kfp", "-o", str(out / "pipeline.json")], ["one YAML file", "pipeline.yaml"]),
        (["--to", "kfp", "-o", str(out / "p.yaml"), "--cron", "0 3 * * *"], ["--cron does not apply to --to kfp"]),
        (["--to", "airflow", "-o", str(out), "--kfp-python", "/x/python"], ["--kfp-python does not apply to --to airflow"]),
        (["--to", "airflow", "-o", str(out), "--cron", "61 3 * * *"], ["minute"]),
        (["--to", "airflow", "-o", str(out), "--cron", "0 3 * * *", "--tz", "Mars/Olympus"], ["Mars/Olympus"]),
        (["--to", "airflow", "-o", str(out), "--tz", "UTC"], ["--tz applies to --cron only"]),
        (["--to", "airflow", "-o", str(out), "--pvc", "claim"], ["--pvc applies to --image"]),
        (["--to", "airflow", "-o", str(out), "-p", "nope=1"], ["unknown parameter nope"]),
        (["--to", "airflow", "-o", str(out), "-p", "rows=many"], ["rows", "int"]),
        (["--to", "kfp", "-o", str(out / "p.yaml"), "--kfp-python", str(tmp_path / "no-python")], ["does not exist", "--kfp-python"]),
    ]
    for args, words in cases:
        proc = run_cli("export", str(nb), *args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert "Traceback" not in proc.stderr
        for word in words:
            assert word in proc.stderr, (args, word, proc.stderr)
    assert _written(out) == []
    missing = run_cli("export", str(tmp_path / "gone.ipynb"), "--to", "airflow", "-o", str(out))
    assert missing.returncode != 0 and "gone.ipynb" in missing.stderr and "Traceback" not in missing.stderr


def test_secret_parameters_are_not_written_into_an_export(tmp_path):
    from tests.conftest import build_notebook

    nb = build_notebook(tmp_path, [("api_token = ''\nrows = 3", ["parameters"]), ("n = rows + len(api_token)", ["stage:a"])])
    for to, out in (("airflow", tmp_path / "dags"), ("kfp", tmp_path / "p.yaml")):
        proc = run_cli("export", str(nb), "--to", to, "-o", str(out), "-p", "api_token=s3cr3t-value")
        assert proc.returncode == 2 and "api_token" in proc.stderr and "in clear" in proc.stderr
        assert "s3cr3t-value" not in proc.stderr and not out.exists()


def test_kfp_missing_says_how_to_get_it(tmp_path):
    """nbops's own venv has no kfp (it would downgrade protobuf): the error says what to do."""
    nb = resources_notebook(tmp_path / "src")
    proc = run_cli("export", str(nb), "--to", "kfp", "-o", str(tmp_path / "p.yaml"), env={"NBOPS_KFP_PYTHON": ""})
    try:
        import kfp  # noqa: F401
    except ImportError:
        assert proc.returncode == 2 and "pip install kfp" in proc.stderr and "--kfp-python" in proc.stderr
        assert not (tmp_path / "p.yaml").exists()
    else:
        assert proc.returncode == 0, proc.stderr
