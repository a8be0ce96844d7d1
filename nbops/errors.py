"""The error classes of nbops.

Every error a user can cause is an ``NbopsError``: it carries what went wrong,
where (file, cell), and how to fix it, and an ``exit_code`` the CLI returns.
Surfaces map these classes once (CLI exit codes, HTTP status codes); nothing
else in nbops should print a traceback at a user.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from nbops.text import cell_ref

__all__ = [
    "NbopsError",
    "UsageError",
    "NotebookError",
    "CellIssue",
    "GraphError",
    "ParameterError",
    "MarshalError",
    "StoreError",
    "ReadOnlyStoreError",
    "CorruptObjectError",
    "NotFoundError",
    "RunFailed",
    "MissingExtraError",
]


class NbopsError(Exception):
    """Base class: a user-facing error with a message and a fix."""

    exit_code = 2
    http_status = 400

    def __init__(self, message: str, fix: str | None = None):
        self.message = message
        self.fix = fix
        super().__init__(self.render())

    def render(self) -> str:
        return f"{self.message}\n  fix: {self.fix}" if self.fix else self.message

    def to_json(self) -> dict:
        return {"error": type(self).__name__, "message": self.message, "fix": self.fix}


class UsageError(NbopsError):
    """Bad command-line or API input (unknown option value, bad id...)."""


@dataclass(frozen=True)
class CellIssue:
    """One problem found in a notebook, pinned to a cell where there is one."""

    message: str
    fix: str
    cell_index: int | None = None
    cell_first_line: str | None = None
    kind: str = "error"
    code: str = "invalid"
    extra: dict = field(default_factory=dict)

    def where(self, path: str) -> str:
        if self.cell_index is None:
            return path
        return f"{path}, {cell_ref(self.cell_index, self.cell_first_line)}"

    def to_json(self) -> dict:
        return {
            "code": self.code,
            "kind": self.kind,
            "message": self.message,
            "fix": self.fix,
            "cell": self.cell_index,
            "first_line": self.cell_first_line,
        }


class NotebookError(NbopsError):
    """The notebook file itself cannot be used (not JSON, too old, ...)."""

    def __init__(self, path: str, message: str, fix: str, issue: CellIssue | None = None):
        self.path = path
        self.issues = [issue] if issue else [CellIssue(message, fix)]
        super().__init__(f"{issue.where(path) if issue else path}: {message}", fix)


class GraphError(NbopsError):
    """The stage graph has one or more errors; each names its cell and fix."""

    def __init__(self, path: str, issues: list[CellIssue]):
        self.path = path
        self.issues = issues
        lines = [f"{i.where(path)}: {i.message}\n  fix: {i.fix}" for i in issues]
        noun = "error" if len(issues) == 1 else "errors"
        super().__init__(f"{len(issues)} {noun} in {path}:\n" + "\n".join(lines))

    def render(self) -> str:
        return self.message

    def to_json(self) -> dict:
        return {"error": "GraphError", "message": self.message, "issues": [i.to_json() for i in self.issues]}


class ParameterError(NbopsError):
    """A parameter value is unknown, mistyped or unparseable."""


class MarshalError(NbopsError):
    """A value cannot be passed between stages."""


class StoreError(NbopsError):
    """The run store cannot be read or written."""

    exit_code = 3
    http_status = 500


class CorruptObjectError(StoreError):
    """A stored object is missing, the wrong size, or no longer hashes to its name."""

    def __init__(self, digest: str, problem: str, path: object = None):
        self.digest, self.problem = digest, problem
        where = f" ({path})" if path else ""
        super().__init__(
            f"stored object {digest[:12]} is {problem}{where}",
            "run 'nbops store verify --repair' (the stages that made it are then recomputed by the next run)",
        )

    def to_json(self) -> dict:
        return {**super().to_json(), "digest": self.digest, "problem": self.problem}


class NotFoundError(NbopsError):
    """A run, stage or study that does not exist."""

    http_status = 404


class RunFailed(NbopsError):
    """A run finished, but a stage or a check failed."""

    exit_code = 1
    http_status = 200


class MissingExtraError(NbopsError):
    """An optional backend is used but not installed."""

    def __init__(self, feature: str, extra: str, module: str):
        super().__init__(
            f"{feature} needs the '{module}' package, which is not installed",
            f"pip install 'nbops[{extra}]'",
        )


class ReadOnlyStoreError(StoreError):
    """The store (a database role, or a folder) lets this user read but not write."""

    http_status = 403
