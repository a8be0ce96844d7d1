"""End-to-end fixtures: a real ``jupyter lab`` and a real Chromium page.

The server is isolated (own config, data, runtime and workspace dirs, a token,
127.0.0.1 only) and serves a temporary root holding copies of the notebooks in
``tests/browser/notebooks``. Chromium is the Debian build at /usr/bin/chromium
(``apt-get install -y chromium``), driven by Python Playwright; no browser is
ever downloaded. Screenshots go to ``test-artifacts/browser/``.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
NOTEBOOKS = HERE / "notebooks"
REPO = HERE.parents[1]
ARTIFACTS = REPO / "test-artifacts" / "browser"
CHROMIUM = os.environ.get("NBOPS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.browser)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Lab:
    url: str
    token: str
    root: Path
    log: Path

    def notebook_url(self, rel: str) -> str:
        # ?reset: start from the default layout, not a previous test's workspace.
        return f"{self.url}lab/tree/{rel}?token={self.token}&reset"

    def api(self, path: str) -> object:
        request = urllib.request.Request(f"{self.url}{path}", headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())


def _labextension_built() -> bool:
    return (REPO / "nbops" / "labextension" / "static" / "style.js").exists()


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    if not _labextension_built():
        pytest.skip("the lab extension is not built: run `jlpm install && jlpm build:prod` (or .ci/install-lab.sh)")
    base = tmp_path_factory.mktemp("lab")
    root = base / "root"
    root.mkdir()
    dirs = {name: base / name for name in ("config", "data", "runtime", "workspaces", "settings")}
    for d in dirs.values():
        d.mkdir()
    # No "get notified about Jupyter news?" toast over the panel.
    (dirs["settings"] / "@jupyterlab" / "apputils-extension").mkdir(parents=True)
    (dirs["settings"] / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )
    (dirs["config"] / "jupyter_lab_config.json").write_text(
        json.dumps(
            {
                "LabApp": {"news_url": None, "check_for_updates_class": "jupyterlab.NeverCheckForUpdate"},
                "ServerApp": {"jpserver_extensions": {"nbops": True}},
            }
        )
    )
    token = "nbops-browser-test-token"
    port = _free_port()
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(dirs["config"]),
        "JUPYTER_DATA_DIR": str(dirs["data"]),
        "JUPYTER_RUNTIME_DIR": str(dirs["runtime"]),
        "JUPYTER_PLATFORM_DIRS": "1",
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
    }
    env.pop("NBOPS_STORE", None)
    log = base / "lab.log"
    cmd = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--allow-root",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        f"--LabApp.workspaces_dir={dirs['workspaces']}",
        f"--LabApp.user_settings_dir={dirs['settings']}",
    ]
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    lab = Lab(url=url, token=token, root=root, log=log)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                lab.api("api/status")
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"jupyter lab did not start:\n{log.read_text()[-4000:]}")
                time.sleep(0.2)
        yield lab
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def notebook_copy(lab: Lab, request: pytest.FixtureRequest):
    """Copy a notebook from tests/browser/notebooks into a folder of its own in the root.

    ``strip_stages=True`` removes the stage tags, leaving a notebook to tag by hand;
    ``edit(nb)`` may change the notebook JSON before it is written.
    Returns the root-relative path.
    """

    def copy(name: str, strip_stages: bool = False, edit=None) -> str:
        folder = lab.root / re.sub(r"[^A-Za-z0-9_]+", "_", request.node.name)
        folder.mkdir(exist_ok=True)
        nb = json.loads((NOTEBOOKS / name).read_text())
        if strip_stages:
            for cell in nb["cells"]:
                tags = [t for t in cell["metadata"].get("tags", []) if not t.startswith("stage:")]
                if tags:
                    cell["metadata"]["tags"] = tags
                else:
                    cell["metadata"].pop("tags", None)
        if edit is not None:
            edit(nb)
        (folder / name).write_text(json.dumps(nb, indent=1))
        return f"{folder.name}/{name}"

    return copy


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install -y chromium (or set NBOPS_CHROMIUM)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, request: pytest.FixtureRequest):
    context = browser.new_context(viewport={"width": 1500, "height": 950})
    page = context.new_page()
    page.set_default_timeout(20_000)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" and "nbops" in m.text else None)
    yield page
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"FAILED-{request.node.name}.png"))
    context.close()
    assert not [e for e in errors if "nbops" in e.lower()], f"nbops errors in the page: {errors}"


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


def _screenshot(page, name: str, locator=None) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    (locator or page).screenshot(path=str(path))
    return path


@pytest.fixture
def screenshot():
    """``screenshot(page, name, locator=None)``: save test-artifacts/browser/NAME.png."""
    return _screenshot


class LabPage:
    """Actions on the lab page, by role and by the panel's data attributes."""

    def __init__(self, page, lab: Lab):
        self.page = page
        self.lab = lab

    def open_notebook(self, rel: str) -> None:
        self.page.goto(self.lab.notebook_url(rel))
        self.page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell").first.wait_for()
        # A kernel starts with the notebook; let it settle so its dialogs don't interleave.
        self.page.locator(".jp-NotebookPanel-toolbar").wait_for()

    def open_panel(self):
        tab = self.page.get_by_role("tab", name="Pipeline", exact=True)
        if tab.get_attribute("aria-selected") != "true":
            tab.click()
        panel = self.page.locator("#nbops-pipeline")
        panel.wait_for()
        return panel

    def cell(self, index: int):
        return self.page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell").nth(index)

    def select_cell(self, index: int) -> None:
        cell = self.cell(index)
        cell.scroll_into_view_if_needed()
        cell.locator(".jp-InputPrompt").click()
        self.page.wait_for_function(
            "i => document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell')[i].classList.contains('jp-mod-active')",
            arg=index,
        )

    def run_cell(self, index: int, timeout_ms: int = 90_000) -> None:
        """Run one cell in the notebook's kernel and wait until it has finished."""
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        indicator = self.page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")
        indicator.wait_for(timeout=60_000)
        prompt = self.cell(index).locator(".jp-InputPrompt")
        # The indicator says idle a moment before the kernel takes requests: retry until queued.
        for _ in range(10):
            self.select_cell(index)
            self.page.keyboard.press("Control+Enter")
            try:
                self.page.wait_for_function("el => /\\[(\\*|\\d+)\\]/.test(el.textContent)", arg=prompt.element_handle(), timeout=3000)
                break
            except PlaywrightTimeout:
                # Run too early, the lab may ask which kernel to use: the notebook's own.
                dialog = self.page.locator(".jp-Dialog", has_text="Select Kernel")
                if dialog.count():
                    dialog.get_by_role("button", name="Select").click()
                continue
        self.page.wait_for_function("el => /\\[\\d+\\]/.test(el.textContent)", arg=prompt.element_handle(), timeout=timeout_ms)

    def palette(self, label: str) -> None:
        """Run a command from the command palette by its label."""
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        # The modal palette closes when it loses focus (e.g. as a kernel starts): retry.
        self.page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for(timeout=60_000)
        for attempt in range(3):
            self.page.get_by_role("menuitem", name="View", exact=True).click()
            self.page.locator('.lm-Menu-itemLabel:text-is("Activate Command Palette")').click()
            try:
                self.page.locator(".lm-CommandPalette-input:visible").fill(label, timeout=3000)
                self.page.locator(".lm-CommandPalette-item:visible", has_text=label).first.click(timeout=3000)
                return
            except PlaywrightTimeout:
                if attempt == 2:
                    raise

    def wait_graph_ready(self) -> None:
        self.page.wait_for_function("() => document.querySelector('#nbops-pipeline')?.dataset.graphState === 'ready'")

    def save(self) -> None:
        """Save the notebook (Ctrl+S), again if a late change (kernel info) made it dirty."""
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        for attempt in range(3):
            self.cell(0).locator(".jp-InputPrompt").click()  # focus the notebook, command mode
            self.page.keyboard.press("Control+s")
            try:
                self.page.wait_for_function("() => !document.querySelector('.lm-TabBar-tab.jp-mod-current.jp-mod-dirty')", timeout=5000)
                return
            except PlaywrightTimeout:
                if attempt == 2:
                    raise


@pytest.fixture
def lab_page(page, lab: Lab) -> LabPage:
    return LabPage(page, lab)
