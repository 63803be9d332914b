"""Package-level properties: light import, CLI answers, native extension present."""
import subprocess
import sys
from paths import ROOT  # noqa: E402

HEAVY = ("torch", "av", "open3d", "zmq", "tensorrt", "torch_tensorrt", "cv2", "mediapipe", "onnxruntime")


def test_import_is_light():
    code = (
        "import sys, streamrecon, streamrecon.cli; streamrecon.cli.build_parser(); "
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"heavy modules imported by `import streamrecon` / --help: {out.stdout}"


def test_cli_help_and_version():
    out = subprocess.run([sys.executable, "-m", "streamrecon.cli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and "streamrecon" in out.stdout


def test_every_subcommand_help_renders():
    """argparse %-formats help text: one stray "%" in a help string (or a config field's docstring
    turned into help) makes that command's --help raise instead of printing."""
    import argparse

    from streamrecon.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert {"run", "live", "view", "train"} <= set(sub.choices)
    for name, p in sub.choices.items():
        text = p.format_help()
        assert name in text and "--" in text, name


def test_native_extension_built():
    from streamrecon.native import load_native

    assert load_native().ABI_VERSION >= 1


def _import_graph() -> dict:
    """{module: modules of this package it imports}, read from the source with ``ast`` (imports
    inside functions count too: a lazy import still ties two modules together)."""
    import ast

    root = ROOT
    pkg = root / "streamrecon"
    modules = {}
    for path in pkg.rglob("*.py"):
        parts = list(path.relative_to(root).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts = parts[:-1]
        modules[".".join(parts)] = (path, is_pkg)
    graph = {}
    for name, (path, is_pkg) in modules.items():
        base = name.split(".") if is_pkg else name.split(".")[:-1]
        out = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    stem = ".".join(base[: len(base) - node.level + 1] + ([node.module] if node.module else []))
                else:
                    stem = node.module or ""
                targets = [f"{stem}.{a.name}" if f"{stem}.{a.name}" in modules else stem for a in node.names]
            else:
                continue
            for t in targets:
                while t and t not in modules:  # `import streamrecon.x.y` names a module or its parent
                    t = t.rpartition(".")[0]
                if t and t != name and t != "streamrecon":
                    out.add(t)
        graph[name] = out
    return graph


def test_import_graph_has_no_cycles():
    """Every module's imports, read from the source, form a DAG: no two modules (or longer loops)
    need each other, so each folder can be read from its dependencies upward."""
    graph = _import_graph()
    assert len(graph) > 50, "the package's modules were not found"
    state, stack, cycles = {}, [], []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                cycles.append(stack[stack.index(n):] + [n])
            elif n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)
