"""What a new user meets in the first hour: bad flags, printed paths, failed sweeps, packaging."""

from __future__ import annotations

import pytest

from tests.conftest import EXAMPLES, NOTEBOOKS, ROOT, run_cli


@pytest.mark.parametrize("command", [["run", "X.ipynb"], ["test", "X.ipynb"], ["rerun", "RUN"], ["sweep", "X.ipynb"]])
def test_jobs_zero_is_refused_before_anything_runs(command):
    proc = run_cli(*command, "--jobs", "0")
    assert proc.returncode == 2
    assert "--jobs: must be 1 or more, got 0" in proc.stderr


def test_repeat_zero_is_refused():
    proc = run_cli("run", "X.ipynb", "--repeat", "0")
    assert proc.returncode == 2 and "--repeat: must be 1 or more" in proc.stderr


def test_every_run_command_has_the_same_run_options():
    """One helper writes --executor/--address/--jobs/-p: each command's help lists them alike."""
    helps = {cmd: run_cli(cmd, "--help").stdout for cmd in ("run", "test", "rerun", "resume", "sweep")}
    for cmd, text in helps.items():
        for flag in ("--executor", "--address", "--jobs N", "--param NAME=VALUE"):
            assert flag in text, f"nbops {cmd} --help lacks {flag}"
        assert "Ray cluster address (default: $RAY_ADDRESS" in " ".join(text.split()), cmd


@pytest.mark.parametrize("out", ["out/", "out"])
def test_convert_prints_clean_paths(tmp_path, out):
    proc = run_cli("convert", str(NOTEBOOKS / "run_params.ipynb"), "-o", out, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "wrote out/pipeline.yaml" in proc.stdout
    assert "//" not in proc.stdout
    assert (tmp_path / "out" / "pipeline.yaml").exists()


def test_run_id_latest_in_an_empty_store_says_so(tmp_path):
    proc = run_cli("why", "latest", "--store", str(tmp_path / "none"))
    assert proc.returncode != 0
    assert "no runs yet" in proc.stderr or "not found" in proc.stderr.lower()


def test_sweep_whose_every_trial_failed_exits_nonzero_and_says_why(tmp_path):
    pytest.importorskip("optuna")
    import shutil

    nb = tmp_path / "run_params.ipynb"
    shutil.copy(NOTEBOOKS / "run_params.ipynb", nb)
    proc = run_cli("sweep", str(nb), "--space", "count=int(1,5)", "--objective", "nosuchmetric:max", "--trials", "2",
                   cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "all 2 trials of this sweep failed" in proc.stderr
    assert "nosuchmetric" in proc.stderr


def test_sweep_type_errors_use_the_right_article():
    from nbops.errors import NbopsError
    from nbops.sweep_space import parse_dimension

    declared = {"name": type("P", (), {"type": "str"})()}
    with pytest.raises(NbopsError) as err:
        parse_dimension("name=int(1,3)", declared)
    assert "is a str, not a number" in str(err.value)
    declared = {"items": type("P", (), {"type": "int"})()}
    with pytest.raises(NbopsError) as err:
        parse_dimension("items=uniform(1,3)", declared)
    assert "is an int" in str(err.value)


def test_ray_address_falls_back_in_one_place(monkeypatch):
    from nbops.execute.ray_cluster import resolve_address

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert resolve_address(None) == "auto"
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    assert resolve_address(None) == "10.0.0.1:6379"
    assert resolve_address("ray://head:10001") == "ray://head:10001"
    # The CLI passes --address through untouched: only the executor falls back.
    for module in ("main", "cmd_test", "cmd_sweep"):
        assert 'RAY_ADDRESS")' not in (ROOT / "nbops" / "cli" / f"{module}.py").read_text()


def _pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_pyproject_has_a_lab_extra_inside_all_and_ruff_in_test():
    meta = _pyproject()
    extras = meta["project"]["optional-dependencies"]
    assert any(dep.startswith("jupyterlab") for dep in extras["lab"])
    assert "lab" in extras["all"][0]
    assert any(dep.startswith("ruff") for dep in extras["test"])
    assert meta["tool"]["ruff"]["line-length"] >= 120


def test_wheels_never_reuse_a_development_build():
    """From a checkout the build hook always runs build:prod; only an sdist (PKG-INFO) may skip it."""
    hook = _pyproject()["tool"]["hatch"]["build"]["hooks"]["jupyter-builder"]
    assert hook["build-kwargs"]["build_cmd"] == "build:prod"
    assert "PKG-INFO" in hook.get("skip-if-exists", ["PKG-INFO"])


def test_make_lab_opens_the_examples():
    makefile = (ROOT / "Makefile").read_text()
    assert "\nlab:" in makefile and "jupyter lab" in makefile and "--allow-root" in makefile
    assert "\nlint:" in makefile and "ruff check ." in makefile and "ruff format --check ." in makefile
    assert "\ntest: lint" in makefile


def test_install_lab_installs_chromium_without_recommends():
    script = (ROOT / ".ci" / "install-lab.sh").read_text()
    assert "--no-install-recommends" in script


def test_every_file_a_readme_command_reads_exists():
    """`-f FILE` / `--params-file FILE` in README commands run from example_notebooks/."""
    readme = (ROOT / "README.md").read_text()
    for line in readme.splitlines():
        words = line.split("#")[0].split()
        if words[:1] != ["nbops"]:
            continue
        for flag, value in zip(words, words[1:]):
            if flag in ("-f", "--params-file"):
                assert (EXAMPLES / value).exists(), f"README: {line.strip()!r} reads {value}, which example_notebooks/ lacks"
