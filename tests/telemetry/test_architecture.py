"""The shape of the code a newcomer relies on: no import cycles between telemetry's modules,
the import contracts of ``pyproject.toml`` kept (telemetry imports nothing of the platform,
the platform and the plugins only ``telemetry.api``, the packages layered), and imports
at module top but for the few a cycle with Django's app loading forces."""

import ast
import subprocess

import grimp

from tests.live import ROOT, VENV_BIN

TELEMETRY = ROOT / "telemetry"
#: Imports inside functions, as a share of all imports: the anchors keep theirs to 6-12 %.
MAX_INNER_IMPORT_SHARE = 0.12


def _cycles(graph):
    """Strongly connected groups of more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(module):
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in graph.find_modules_directly_imported_by(module):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == module:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return groups


def test_no_import_cycles_between_telemetry_modules():
    graph = grimp.build_graph("telemetry", include_external_packages=False)
    # A package's __init__ importing its own submodules (re-exports) is not a cycle of design.
    for module in list(graph.modules):
        for imported in graph.find_modules_directly_imported_by(module):
            if imported.startswith(module + "."):
                graph.remove_import(importer=module, imported=imported)
    assert _cycles(graph) == []


def test_the_import_contracts_hold():
    result = subprocess.run([str(VENV_BIN / "lint-imports"), "--no-cache"], cwd=ROOT, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def _imports(path):
    """(module-level imports, imports inside functions or classes) of one file."""
    tree = ast.parse(path.read_text())
    top = set()

    def visit(body):
        for node in body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                top.add(id(node))
            elif isinstance(node, (ast.If, ast.Try)):
                for block in (node.body, node.orelse, getattr(node, "finalbody", []),
                              *[handler.body for handler in getattr(node, "handlers", [])]):
                    visit(block)

    visit(tree.body)
    every = [node for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))]
    return len(top), len(every) - len(top)


def test_imports_sit_at_module_top():
    top = inner = 0
    for path in TELEMETRY.rglob("*.py"):
        if "migrations" not in path.parts:
            at_top, inside = _imports(path)
            top, inner = top + at_top, inner + inside
    assert inner / (top + inner) <= MAX_INNER_IMPORT_SHARE, f"{inner} of {top + inner} imports inside functions"
