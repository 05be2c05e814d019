"""The package's structure: the tree is the map. Folders by concern with at most a few modules at the root, every
folder saying what it holds, dependencies one way down the layers (no import out of utils/ or image/ upward), no
import cycle (function-local imports included), a reason for every function-local import outside the thin
binaries, modules of about 400 lines at most, and a `load("span_x4")` that walks one way."""

import ast
import os
import re

from conftest import REPO

PACKAGE = os.path.join(REPO, "sr_keras")
MAX_LINES = 400  # "About 300", and up to 400 where splitting a module would scatter one idea.
ROOT_MODULES = {"sr_keras", "sr_keras.version"}  # load() and the version; everything else is in a folder.
# The layers, bottom up: a module imports its own layer or lower ones only (the root package is the public face,
# which only the binaries import).
LAYERS = (("utils",), ("image",), ("models", "data", "zoo", "savedmodel"), ("infer", "evaluate"),
          ("train", "enhance", "serving"), ("release",), ("cli", ""))


def _modules() -> dict:
    """{dotted name: path} of every module of the package."""
    out = {}
    for dirpath, _, files in os.walk(PACKAGE):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(dirpath, f)
                name = os.path.relpath(path, REPO)[:-3].replace(os.sep, ".")
                out[name[:-len(".__init__")] if name.endswith(".__init__") else name] = path
    return out


def _imports(path: str, modules: dict, package: str) -> list:
    """(imported module, line, function-local?) for every import of a package module in `path`."""
    tree = ast.parse(open(path).read())
    local = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
             for n in ast.walk(f) if isinstance(n, (ast.Import, ast.ImportFrom))}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + ([base] if base else []))
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name:
                found.append((name, node.lineno, id(node) in local))
    return found


def _graph() -> dict:
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
        graph[name] = {m for m, _, _ in _imports(path, modules, package) if m != name}
    return graph


def _cycles(graph: dict) -> list:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))
    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_import_cycle_function_local_imports_included():
    graph = _graph()
    assert len(graph) > 60  # Not vacuous: the whole package was read.
    assert _cycles(graph) == []
    # The checker finds a cycle when there is one.
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_every_function_local_import_outside_the_binaries_says_why():
    """A function-local import is kept only to keep start-up light (TensorFlow, matplotlib, an optional package),
    with its reason on the line or in a comment just above its block."""
    missing = []
    for name, path in _modules().items():
        if ".cli." in name + ".":  # Binaries import the library after their flags parse (sr_keras/cli/__init__.py).
            continue
        lines = open(path).read().split("\n")
        tree = ast.parse("\n".join(lines))
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    i = node.lineno - 1
                    while i > 0 and re.match(r"\s*(from|import) ", lines[i - 1]):  # The top of its block.
                        i -= 1
                    if "#" not in lines[node.lineno - 1] and not lines[i - 1].strip().startswith("#"):
                        missing.append(f"{os.path.relpath(path, REPO)}:{node.lineno}")
    assert missing == []


def _layer(module: str) -> int:
    if module == "sr_keras.version":  # A constant: a leaf any layer may read.
        return 0
    folder = module.split(".")[1] if module.count(".") >= 1 else ""
    return next(i for i, names in enumerate(LAYERS) if folder in names)


def test_the_root_holds_only_load_and_the_version():
    assert {m for m in _modules() if m.count(".") <= 1 and not os.path.isdir(os.path.join(PACKAGE, m.split(".")[-1]))
            } == ROOT_MODULES


def test_every_folder_is_a_layer_and_says_what_it_holds():
    folders = sorted(d for d in os.listdir(PACKAGE) if os.path.isfile(os.path.join(PACKAGE, d, "__init__.py")))
    assert sorted(f for names in LAYERS for f in names if f) == folders
    for folder in folders:
        tree = ast.parse(open(os.path.join(PACKAGE, folder, "__init__.py")).read())
        assert len(ast.get_docstring(tree) or "") > 30, folder
    guide = os.path.join(REPO, "docs", "DEVELOPING.md")
    readme = open(guide).read().split("## Where things live", 1)[1].split("\n## ", 1)[0]
    assert [f for f in folders if f"`{f}/`" not in readme] == []  # The map names every folder.


def test_imports_run_down_the_layers():
    graph = _graph()
    up = sorted(f"{m} -> {d}" for m, deps in graph.items() for d in deps if _layer(d) > _layer(m))
    assert up == []
    # Not vacuous: the checker sees an upward import when there is one.
    assert _layer("sr_keras.utils.safe_files") < _layer("sr_keras.image.tiling") < _layer("sr_keras.train.loop")


def test_modules_stay_short():
    long = {os.path.relpath(p, REPO): n for p in _modules().values()
            if (n := len(open(p).read().splitlines())) > MAX_LINES}
    assert long == {}


def test_load_walks_one_way():
    """CLI -> zoo/load -> model artifact -> generator: the model artifact never reaches back up."""
    graph = _graph()

    def reach(start):
        seen, todo = set(), [start]
        while todo:
            for m in graph[todo.pop()]:
                if m not in seen:
                    seen.add(m)
                    todo.append(m)
        return seen
    artifact = {m for m in graph if m.startswith("sr_keras.savedmodel")}
    for module in artifact:
        up = reach(module) & {"sr_keras", "sr_keras.zoo.cache", "sr_keras.infer.enhancer", "sr_keras.evaluate.protocol",
                              "sr_keras.train.run_dir", "sr_keras.train.loop"}
        assert up == set(), (module, up)
    assert reach("sr_keras.zoo") & {"sr_keras.zoo.cache", "sr_keras.savedmodel.writer", "sr_keras.infer.enhancer"} == set()
