"""Flag help from config dataclasses: each field of a config is followed by its docstring, which
becomes the ``--help`` text of the matching flag, so a setting's default and its description live
in the config that owns them (``PeopleConfig``, ``OctreeConfig``, ``EvaluateConfig``, ...)."""
from __future__ import annotations

import ast
import inspect
import textwrap


def field_docs(cls) -> dict:
    """{field name: its docstring} of a dataclass whose fields are each followed by a string
    literal, as argparse help: whitespace folded and ``%`` doubled (argparse %-formats help, so a
    bare "30%" would crash ``--help``). Empty when the source is unavailable (frozen installs)."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError):
        return {}
    body = tree.body[0].body
    out = {}
    for node, nxt in zip(body, body[1:]):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)):
            out[node.target.id] = " ".join(nxt.value.value.split()).replace("%", "%%")
    return out
