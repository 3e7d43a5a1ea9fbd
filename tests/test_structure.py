"""The import graph of astro_cl: no cycles, private names stay home, only the CLI imports the CLI.

The graph is read with `ast` from the source files (every ``import`` and
``from ... import``, including those inside functions), not by importing the
package, so it also covers code paths the tests never run.
"""

import ast
import textwrap
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "astro_cl"


def _modules(package):
    """Return ``{dotted name: (path, is_package)}`` for every module under ``package``."""
    out = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        out[".".join(parts)] = (path, is_package)
    return out


def _known(name, modules):
    """The longest prefix of the dotted ``name`` that is a module of the graph (or None)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _imports(name, modules):
    """Yield ``(target module, imported name or None, line)`` for each import in ``name``.

    ``from a.b import c`` targets the module ``a.b.c`` (name None) when there
    is one, else ``a.b`` with the name ``c``.
    """
    path, is_package = modules[name]
    root = name.split(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = _known(alias.name, modules)
                if target:
                    yield target, None, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[:len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if source.split(".")[0] != root:
                continue
            for alias in node.names:
                full = f"{source}.{alias.name}"
                if full in modules:
                    yield full, None, node.lineno
                else:
                    target = _known(source, modules)
                    if target:
                        yield target, alias.name, node.lineno


def _subpackage(name, modules):
    """``astro_cl.X`` for a module of the subpackage X; ``astro_cl`` for top-level modules."""
    parts = name.split(".")
    if len(parts) >= 2 and modules.get(".".join(parts[:2]), (None, False))[1]:
        return ".".join(parts[:2])
    return parts[0]


def _is_private(part):
    return part.startswith("_") and not part.startswith("__")


def build_graph(package):
    """Read the import graph of ``package``.

    Returns
    -------
    modules : dict
        See `_modules`.
    edges : dict of str to set of str
        Importing module -> imported modules, without the edges from a
        package to its own submodules (an ``__init__`` re-exporting them).
    imports : list of (str, str, str or None, int)
        Every import: importer, target module, imported name (None for a
        module), line.
    """
    modules = _modules(package)
    edges = {name: set() for name in modules}
    imports = []
    for name in modules:
        for target, imported, line in _imports(name, modules):
            imports.append((name, target, imported, line))
            if target == name:
                continue
            if modules[name][1] and target.startswith(name + "."):
                continue  # a package re-exporting its own submodule
            edges[name].add(target)
    return modules, edges, imports


def import_cycles(edges):
    """Return the strongly connected components of more than one module (Tarjan, iterative)."""
    index, low, on_stack, stack, cycles = {}, {}, set(), [], []
    counter = 0
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    cycles.append(sorted(component))
    return sorted(cycles)


def private_crossings(modules, imports):
    """Imports of a private name, or from a private module, of another subpackage."""
    found = []
    for importer, target, imported, line in imports:
        home = _subpackage(target, modules)
        if _subpackage(importer, modules) == home:
            continue
        below = target[len(home):].split(".")  # the target's path inside its subpackage
        if any(_is_private(part) for part in below) or (imported and _is_private(imported)):
            shown = target if imported is None else f"{target}.{imported}"
            found.append(f"{importer} (line {line}) imports {shown}")
    return sorted(found)


def cli_importers(modules, imports, cli="astro_cl.cli"):
    """Modules outside the CLI that import it."""
    return sorted({f"{importer} (line {line})" for importer, target, _, line in imports
                   if (target == cli or target.startswith(cli + "."))
                   and not (importer == cli or importer.startswith(cli + "."))})


GRAPH = build_graph(PACKAGE)


def test_no_import_cycles():
    _, edges, _ = GRAPH
    cycles = import_cycles(edges)
    assert not cycles, "import cycles (strongly connected modules):\n" + "\n".join(
        " <-> ".join(c) for c in cycles)


def test_private_names_stay_in_their_subpackage():
    modules, _, imports = GRAPH
    found = private_crossings(modules, imports)
    assert not found, "private names imported across subpackages:\n" + "\n".join(found)


def test_only_the_cli_imports_the_cli():
    modules, _, imports = GRAPH
    found = cli_importers(modules, imports)
    assert not found, "the library imports the command line:\n" + "\n".join(found)


def test_augment_and_preprocess_are_in_no_cycle():
    _, edges, _ = GRAPH
    ours = [c for c in import_cycles(edges)
            if any(m.startswith(("astro_cl.augment", "astro_cl.preprocess")) for m in c)]
    assert not ours, ours


def test_augment_modules_import_no_private_name_of_each_other():
    # private helper modules (_random, _resample) are imported by the modules
    # that need them; a module's own private names stay in that module
    _, _, imports = GRAPH
    found = [f"{importer} (line {line}) imports {target}.{name}"
             for importer, target, name, line in imports
             if importer.startswith("astro_cl.augment") and target.startswith("astro_cl.augment")
             and target != importer and name and _is_private(name)]
    assert not found, found


def test_the_augmenter_interface_and_the_chain_name_no_concrete_augmenter():
    # Compose asks each step whether it fuses (Augmenter.fusion): neither the
    # interface nor the chain imports the modules of the steps
    _, edges, _ = GRAPH
    steps = {"astro_cl.augment." + m for m in ("colour", "geometric", "masking", "photometric",
                                               "preprocessed", "rebin", "spectral")}
    for module in ("astro_cl.augment.base", "astro_cl.augment.compose"):
        assert not edges[module] & steps, (module, sorted(edges[module] & steps))


def test_models_sit_on_training_and_training_knows_no_model():
    # the model layer (networks, losses) uses the training layer (trainer,
    # settings, checkpoints); the trainer builds no model, so the two never
    # stack on each other
    _, edges, _ = GRAPH
    up = sorted(f"{m} -> {t}" for m, targets in edges.items() if m.startswith("astro_cl.training")
                for t in targets if t.startswith("astro_cl.models"))
    assert not up, up
    assert any(t.startswith("astro_cl.training") for t in edges["astro_cl.models.torch_encoder"])


def _write_package(root, files):
    for rel, source in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
    return root / "pkg"


def test_the_checks_find_what_they_look_for(tmp_path):
    package = _write_package(tmp_path, {
        "pkg/__init__.py": "from pkg.a import thing\nfrom . import b\n",  # re-exports
        "pkg/a/__init__.py": "",
        "pkg/a/thing.py": "def f():\n    from pkg.b.other import helper\n",  # in a function
        "pkg/a/_private.py": "x = 1\n",
        "pkg/a/user.py": "from pkg.a._private import x\nfrom .thing import _y\n",
        "pkg/b/__init__.py": "",
        "pkg/b/other.py": ("from pkg.a.thing import f\nfrom pkg.a import _private\n"
                           "from pkg.a.thing import _z\nimport pkg.cli.run\n"),
        "pkg/cli/__init__.py": "from pkg.cli import run\n",
        "pkg/cli/run.py": "from pkg import a\n",
        "pkg/top.py": "from pkg._hidden import w\n",  # top-level modules share the root
        "pkg/_hidden.py": "",
    })
    modules, edges, imports = build_graph(package)
    assert import_cycles(edges) == [["pkg.a.thing", "pkg.b.other"]]
    assert "pkg.a.thing" not in edges["pkg"] and "pkg.cli.run" not in edges["pkg.cli"]
    assert private_crossings(modules, imports) == [
        "pkg.b.other (line 2) imports pkg.a._private",
        "pkg.b.other (line 3) imports pkg.a.thing._z",
    ]
    assert cli_importers(modules, imports, cli="pkg.cli") == ["pkg.b.other (line 4)"]
