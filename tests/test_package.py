"""Package-level properties: light import, CLI answers, native extension present."""
import subprocess
import sys

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
