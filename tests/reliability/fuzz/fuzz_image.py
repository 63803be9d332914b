"""atheris harness: image loading (``streamrecon.images.header.image_size`` and
``streamrecon.images.decode.decode_image``, the byte-level core of ``load_image``) on arbitrary bytes.

Must return uint8 RGB [H, W, 3] or raise ``UserInputError``/``HeaderError``; anything else is a
finding. The pixel limit is lowered to 1 MP here so that a header claiming a large image is refused
without allocating (the limit is what this checks), and decoding stays fast.

    .venv/bin/python tests/reliability/fuzz/fuzz_image.py -runs=20000
    .venv/bin/python tests/reliability/fuzz/fuzz_image.py --write-seeds DIR
"""
import sys

import os
import atheris

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _instrument import instrument_modules  # noqa: E402

from streamrecon.images import decode, header  # noqa: E402
from streamrecon.errors import UserInputError  # noqa: E402
from streamrecon.images.header import HeaderError, image_size  # noqa: E402
from streamrecon.images.decode import decode_image  # noqa: E402

instrument_modules(atheris, header, decode)

MAX_PIXELS = 1 << 20


def TestOneInput(data: bytes) -> None:
    try:
        w, h, _ = image_size(data)
        assert w >= 0 and h >= 0
    except HeaderError:
        pass
    try:
        img = decode_image(data, name="fuzz", max_pixels=MAX_PIXELS)
    except UserInputError:
        return
    assert img.ndim == 3 and img.shape[2] == 3 and img.dtype.name == "uint8"
    assert img.shape[0] * img.shape[1] <= MAX_PIXELS


def seeds() -> dict:
    import cv2
    import numpy as np

    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (9, 7, 3), dtype=np.uint8)
    out = {}
    for ext, arr in ((".png", img), (".jpg", img), (".bmp", img), (".tif", img), (".webp", img),
                     (".ppm", img), (".png", (img[..., 0].astype(np.uint16) * 257))):
        ok, buf = cv2.imencode(ext, arr)
        if ok:
            out[f"seed{len(out)}{ext}"] = buf.tobytes()
    return out


def main(argv) -> None:
    if len(argv) == 3 and argv[1] == "--write-seeds":
        import os

        os.makedirs(argv[2], exist_ok=True)
        for name, data in seeds().items():
            with open(os.path.join(argv[2], name), "wb") as fh:
                fh.write(data)
        return
    atheris.Setup(argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
