"""Where the tests find the project and the shared material, from any test folder."""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
"""the project root (``pyproject.toml``, ``streamrecon/``)"""
SHARED = ROOT.parent / "shared"
"""``../shared``: fixtures, real media, reference figures"""
MEDIA = SHARED / "media"
FIXTURES = SHARED / "fixtures"
