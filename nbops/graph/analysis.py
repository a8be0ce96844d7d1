"""What one cell reads and defines, from its source (``ast``, no execution).

The rules, in the order a reader needs them:
- A name bound at the cell's top level (assignment, ``for``, ``with``,
  ``import``, ``def``, ``class``...) is *defined* by the cell.
- A name changed in place is defined too, since later stages must see the
  change: ``df['x'] = ...``, ``obj.attr = ...``, ``x += 1``, a mutating
  method (``items.append``, ``model.fit``, ``df.drop(..., inplace=True)``,
  torch's ``t.add_()``), a bare call of a user function on a name
  (``add_features(df)``: it may mutate its argument), and any of those
  through an alias (``for d in [train, test]: d['x'] = ...``, ``d = train``).
- A name loaded before the cell binds it is *read*, in source order. Free
  names inside ``def``/``lambda``/``class`` bodies are read when called, so
  they are *deferred* reads: they count only if the stage never defines them.
- IPython syntax (``%magic``, ``!cmd``, ``x?``) is turned into Python with
  IPython's own transformer first; cell magics with a Python body (``%%time``,
  ``%%stage``...) are analysed on their body, others are opaque.
"""

from __future__ import annotations

import ast
import builtins
from dataclasses import dataclass, field

from nbops.notebook.magic_line import PIPELINE_MAGICS, cell_magic, strip_pipeline_magic

__all__ = ["CellAnalysis", "analyze_source", "strip_pipeline_magic", "CellSyntaxError", "BUILTIN_NAMES"]

BUILTIN_NAMES = frozenset(dir(builtins)) | {
    "get_ipython", "display", "In", "Out", "_", "__", "___", "_i", "_ii", "_iii",
    "_ih", "_oh", "_dh", "exit", "quit", "__file__", "__name__", "__builtins__",
}  # fmt: skip

MUTATING_METHODS = frozenset(
    """append extend insert remove pop clear sort reverse update setdefault popitem add discard
    difference_update intersection_update symmetric_difference_update
    fit partial_fit fit_transform set_params
    to train eval step zero_grad load_state_dict cuda cpu
    set_axis set_index reset_index rename drop fillna replace dropna sort_values sort_index
    write seek truncate""".split()
)
# Calls that change their first argument: random.shuffle(x), np.random.shuffle(x)...
MUTATING_FUNCTIONS = frozenset({"shuffle", "heappush", "heappop", "heapify", "setattr", "delattr"})
# Bare calls that only show something.
DISPLAY_FUNCTIONS = frozenset({"print", "display", "len", "repr", "type", "help", "dir", "vars"})
# Cell magics whose body is Python.
PYTHON_BODY_MAGICS = frozenset({"time", "timeit", "capture", "prun", "debug", *PIPELINE_MAGICS})


class CellSyntaxError(Exception):
    def __init__(self, msg: str, lineno: int | None):
        super().__init__(msg)
        self.msg = msg
        self.lineno = lineno


@dataclass
class CellAnalysis:
    reads: list[str] = field(default_factory=list)  # in order, before any own binding
    defines: set[str] = field(default_factory=set)
    deferred: set[str] = field(default_factory=set)
    imports: dict[str, str] = field(default_factory=dict)  # name -> the import statement binding it
    star_import: bool = False
    opaque: bool = False  # a non-Python cell magic: nothing known


def _to_python(source: str) -> str | None:
    """Source as plain Python, or None for an opaque cell magic."""
    magic = cell_magic(source)
    if magic is not None:
        if magic.name not in PYTHON_BODY_MAGICS:
            return None
        source = magic.body
    try:
        ast.parse(source)
        return source
    except SyntaxError:
        pass
    from IPython.core.inputtransformer2 import TransformerManager  # only when needed: slow import

    return TransformerManager().transform_cell(source)


def analyze_source(source: str) -> CellAnalysis:
    """Analyse one cell. Raises CellSyntaxError when it does not parse."""
    python = _to_python(source)
    if python is None:
        return CellAnalysis(opaque=True)
    try:
        tree = ast.parse(python)
    except SyntaxError as exc:
        raise CellSyntaxError(exc.msg, exc.lineno) from None
    visitor = _CellVisitor()
    for stmt in tree.body:
        visitor.statement(stmt)
    return visitor.result


def _root_name(node: ast.AST) -> str | None:
    """``df`` for ``df``, ``df.loc[0]``, ``df['a'].values``, ``model.layers[0]``."""
    while True:
        if isinstance(node, ast.Name):
            return node.id
        if isinstance(node, (ast.Attribute, ast.Subscript)):
            node = node.value
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            node = node.func.value  # df.loc[...].fillna(0, inplace=True)
        else:
            return None


class _CellVisitor:
    def __init__(self) -> None:
        self.result = CellAnalysis()
        self.aliases: dict[str, set[str]] = {}

    # -- names ------------------------------------------------------------
    def load(self, name: str) -> None:
        r = self.result
        if name not in r.defines and name not in r.reads:
            r.reads.append(name)

    def bind(self, name: str) -> None:
        self.result.defines.add(name)
        self.result.imports.pop(name, None)
        self.aliases.pop(name, None)

    def mutate(self, name: str) -> None:
        # A mutation reads the old value and defines the new one.
        for target in {name} | self.aliases.get(name, set()):
            self.load(target)
            self.result.defines.add(target)

    # -- expressions ------------------------------------------------------
    def expr(self, node: ast.AST | None) -> None:
        if node is None:
            return
        if isinstance(node, ast.Name):
            if isinstance(node.ctx, ast.Load):
                self.load(node.id)
            return
        if isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)):
            for name in sorted(_free_names(node)):
                self.load(name)
            return
        if isinstance(node, ast.Lambda):
            for d in node.args.defaults + [d for d in node.args.kw_defaults if d]:
                self.expr(d)
            self.result.deferred |= _free_names(node)
            return
        if isinstance(node, ast.NamedExpr):
            self.expr(node.value)
            self.bind(node.target.id)
            return
        for child in ast.iter_child_nodes(node):
            self.expr(child)

    def target(self, node: ast.AST, alias_of: set[str] | None = None) -> None:
        if isinstance(node, ast.Name):
            self.bind(node.id)
            if alias_of:
                self.aliases[node.id] = set(alias_of)
        elif isinstance(node, (ast.Tuple, ast.List)):
            for elt in node.elts:
                self.target(elt.value if isinstance(elt, ast.Starred) else elt)
        elif isinstance(node, ast.Starred):
            self.target(node.value)
        elif isinstance(node, (ast.Subscript, ast.Attribute)):
            # df['x'] = ... / obj.attr = ...: index/slice expressions are reads
            self.expr(node.slice if isinstance(node, ast.Subscript) else None)
            root = _root_name(node)
            self.expr(node.value) if root is None else self.mutate(root)

    def call_statement(self, call: ast.Call) -> None:
        """A call whose result is discarded: is it changing something?"""
        self.expr(call)
        func = call.func
        inplace = any(k.arg == "inplace" and isinstance(k.value, ast.Constant) and k.value.value is True for k in call.keywords)
        if isinstance(func, ast.Attribute):
            root = _root_name(func.value)
            method = func.attr
            if method in MUTATING_FUNCTIONS and call.args:
                arg_root = _root_name(call.args[0])
                if arg_root:
                    self.mutate(arg_root)
            elif root and (inplace or method in MUTATING_METHODS or (method.endswith("_") and not method.endswith("__"))):
                self.mutate(root)
        elif isinstance(func, ast.Name) and func.id not in DISPLAY_FUNCTIONS:
            if func.id in MUTATING_FUNCTIONS or func.id not in BUILTIN_NAMES:
                for arg in call.args:
                    if isinstance(arg, ast.Name):
                        self.mutate(arg.id)

    # -- statements -------------------------------------------------------
    def statement(self, node: ast.stmt) -> None:
        if isinstance(node, ast.Assign):
            self.expr(node.value)
            alias = _alias_source(node.value)
            for t in node.targets:
                self.target(t, alias)
        elif isinstance(node, ast.AnnAssign):
            self.expr(node.value)
            self.expr(node.annotation)
            if node.value is not None or not isinstance(node.target, ast.Name):
                self.target(node.target)
        elif isinstance(node, ast.AugAssign):
            self.expr(node.value)
            root = _root_name(node.target)
            if root:
                self.mutate(root)
            self.expr(node.target.slice if isinstance(node.target, ast.Subscript) else None)
        elif isinstance(node, ast.Expr):
            if isinstance(node.value, ast.Call):
                self.call_statement(node.value)
            else:
                self.expr(node.value)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            self.import_(node)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for d in node.decorator_list + node.args.defaults + [d for d in node.args.kw_defaults if d]:
                self.expr(d)
            self.result.deferred |= _free_names(node)
            self.bind(node.name)
        elif isinstance(node, ast.ClassDef):
            for d in node.decorator_list + node.bases + [k.value for k in node.keywords]:
                self.expr(d)
            self.result.deferred |= _free_names(node)
            self.bind(node.name)
        elif isinstance(node, (ast.For, ast.AsyncFor)):
            self.expr(node.iter)
            self.target(node.target, _element_aliases(node.iter))
            self.body(node.body + node.orelse)
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            for item in node.items:
                self.expr(item.context_expr)
                if item.optional_vars is not None:
                    self.target(item.optional_vars)
            self.body(node.body)
        elif isinstance(node, ast.Delete):
            for t in node.targets:
                if isinstance(t, ast.Name):
                    self.result.defines.add(t.id)
                else:
                    self.target(t)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            pass
        elif isinstance(node, ast.Try) or type(node).__name__ == "TryStar":
            self.body(node.body)
            for handler in node.handlers:
                self.expr(handler.type)
                if handler.name:
                    self.bind(handler.name)
                self.body(handler.body)
            self.body(node.orelse + node.finalbody)
        elif isinstance(node, ast.Match):
            self.expr(node.subject)
            for case in node.cases:
                for n in ast.walk(case.pattern):
                    name = getattr(n, "name", None) or getattr(n, "rest", None)
                    if isinstance(name, str):
                        self.bind(name)
                self.expr(case.guard)
                self.body(case.body)
        else:  # If, While, Return, Raise, Assert, Pass, Break, Continue...
            for field_name, value in ast.iter_fields(node):
                if field_name in ("body", "orelse", "finalbody") and isinstance(value, list):
                    self.body(value)
                elif isinstance(value, ast.AST):
                    self.expr(value)
                elif isinstance(value, list):
                    for v in value:
                        if isinstance(v, ast.AST):
                            self.expr(v)

    def body(self, stmts: list[ast.stmt]) -> None:
        for s in stmts:
            self.statement(s)

    def import_(self, node: ast.Import | ast.ImportFrom) -> None:
        for alias in node.names:
            if alias.name == "*":
                self.result.star_import = True
                continue
            bound = alias.asname or alias.name.split(".")[0]
            if isinstance(node, ast.Import):
                stmt = ast.Import(names=[alias])
            else:
                stmt = ast.ImportFrom(module=node.module, names=[alias], level=node.level)
            self.bind(bound)
            self.result.imports[bound] = ast.unparse(stmt)


def _alias_source(value: ast.AST) -> set[str] | None:
    return {value.id} if isinstance(value, ast.Name) else None


def _element_aliases(iterable: ast.AST) -> set[str] | None:
    """``for d in [train, test]``: d stands for train and test in turn."""
    if isinstance(iterable, (ast.List, ast.Tuple, ast.Set)):
        names = {e.id for e in iterable.elts if isinstance(e, ast.Name)}
        return names or None
    return None


def _free_names(scope: ast.AST) -> set[str]:
    """Names a nested scope (function, lambda, class, comprehension) loads but does not bind."""
    bound: set[str] = set()
    loaded: set[str] = set()
    args = getattr(scope, "args", None)
    if isinstance(args, ast.arguments):
        for a in args.posonlyargs + args.args + args.kwonlyargs + [args.vararg, args.kwarg]:
            if a is not None:
                bound.add(a.arg)
    if isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        # Decorators, defaults and bases run at definition time: the caller reads those.
        nodes = [n for stmt in scope.body for n in ast.walk(stmt)]
    else:
        nodes = list(ast.walk(scope))
    globals_: set[str] = set()
    for n in nodes:
        if isinstance(n, ast.Name):
            (loaded if isinstance(n.ctx, ast.Load) else bound).add(n.id)
        elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and n is not scope:
            bound.add(n.name)
        elif isinstance(n, ast.arg):
            bound.add(n.arg)
        elif isinstance(n, (ast.Import, ast.ImportFrom)):
            for a in n.names:
                bound.add(a.asname or a.name.split(".")[0])
        elif isinstance(n, ast.ExceptHandler) and n.name:
            bound.add(n.name)
        elif isinstance(n, ast.Global):
            globals_.update(n.names)
    return (loaded - bound) | (loaded & globals_)
