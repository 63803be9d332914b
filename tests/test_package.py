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


def test_native_extension_built():
    from streamrecon.native import load_native

    assert load_native().ABI_VERSION >= 1
