"""Fixtures of the body tests (helpers in ``body_inputs.py``)."""
from __future__ import annotations

import pytest

from streamrecon.body.model import BodyModel


@pytest.fixture(scope="session")
def body_model() -> BodyModel:
    return BodyModel()
