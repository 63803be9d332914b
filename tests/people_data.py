"""Real photos with hand-made person masks (Debian's ``labelme-examples``) and the person finder,
for the people tests; each skips with the reason when its material is absent."""
import json
from pathlib import Path

import numpy as np
import pytest

LABELME = Path("/usr/share/doc/labelme-examples/examples/instance_segmentation/data_annotated")
"""labelme's instance-segmentation examples: photos + polygons (``person``, ``__ignore__``, ...)"""


def finder(**kw):
    """``PeopleFinder`` with BlazePose (``PeopleConfig`` fields as keywords), or a skip."""
    from streamrecon.errors import BackendUnavailableError
    from streamrecon.people import PeopleConfig, PeopleFinder

    try:
        return PeopleFinder(PeopleConfig(detector="mediapipe", **kw))
    except BackendUnavailableError as exc:
        pytest.skip(f"BlazePose models unavailable: {exc}")


def rgb(path):
    """uint8 RGB of an image file, or a skip when it is absent."""
    cv2 = pytest.importorskip("cv2")
    if not Path(path).exists():
        pytest.skip(f"{path} not present")
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def labelme_instances(stem, with_held=False):
    """(RGB image, one bool mask per person (polygons sharing a group_id are one person), the
    ``__ignore__`` mask[, with ``with_held``: the mask of bottles held in front of a body])."""
    cv2 = pytest.importorskip("cv2")
    path = LABELME / f"{stem}.json"
    if not path.exists():
        pytest.skip("labelme examples absent: `apt-get install labelme-examples` (Debian) provides them")
    d = json.loads(path.read_text())
    img = rgb(LABELME / d["imagePath"])
    h, w = img.shape[:2]
    inst, ignore, held = {}, np.zeros((h, w), np.uint8), np.zeros((h, w), np.uint8)
    for k, s in enumerate(d["shapes"]):
        m = np.zeros((h, w), np.uint8)
        cv2.fillPoly(m, [np.round(np.asarray(s["points"])).astype(np.int32)], 1)
        if s["label"] == "person":
            key = s["group_id"] if s["group_id"] is not None else ("shape", k)
            inst[key] = inst.get(key, 0) | m
        elif s["label"] == "__ignore__":
            ignore |= m
        elif s["label"] == "bottle":  # held in a hand, in front of the body
            held |= m
    if with_held:
        return img, [v.astype(bool) for v in inst.values()], ignore.astype(bool), held.astype(bool)
    return img, [v.astype(bool) for v in inst.values()], ignore.astype(bool)
