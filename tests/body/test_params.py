"""A fitted body as plain numbers and back (``body.params``)."""
import json

import numpy as np
import pytest

from body_inputs import random_pose, synthetic_inputs
from streamrecon.body.fit import BodyFitter, FitConfig
from streamrecon.body.params import body_mesh, from_params, to_params


def test_params_round_trip_to_the_same_posed_body_through_json(body_model):
    rng = np.random.default_rng(8)
    kp, world = synthetic_inputs(body_model, *random_pose(body_model, rng), rng)[:2]
    mask = np.zeros((900, 700), bool)
    mask[100:800, 150:550] = True
    fit = BodyFitter(body_model, FitConfig()).fit(kp, world, mask=mask)
    p = json.loads(json.dumps(to_params(fit)))
    assert len(p["pose"]) == len(p["bones"]) == 18 and len(p["betas"]) == body_model.n_betas
    again = from_params(p, body_model)
    # rounded to 1e-5 rad / 1e-5 m: sub-pixel at these scales (400 px per metre)
    assert np.abs(again.vertices - fit.vertices).max() < 0.05
    assert np.abs(again.landmarks - fit.landmarks).max() < 0.05
    assert again.mask_inside == pytest.approx(fit.mask_inside, abs=1e-4)
    mesh = body_mesh(again, rect=(0, 0, 700, 700))
    assert mesh.frame == "image" and abs(float(mesh.vertices[:, 2].mean())) < 1e-3
    np.testing.assert_allclose(mesh.vertices[:, :2], again.vertices[:, :2])
    with pytest.raises(ValueError, match="body params"):
        from_params({**p, "scale": -1.0}, body_model)
    with pytest.raises(ValueError, match="body params"):
        from_params({k: v for k, v in p.items() if k != "betas"}, body_model)
