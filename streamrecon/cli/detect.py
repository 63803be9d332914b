"""``streamrecon detect IMAGE_OR_VIDEO --out DIR``: find people and write what the reconstruction
will see — reference-format rect files, person masks, the network input image and an overlay."""
from __future__ import annotations

import argparse
import os

from dataclasses import fields

from ..people.config import BACKGROUNDS, DETECTORS, SEGMENTATIONS, PeopleConfig, parse_color
from .help import field_docs


def register(sub) -> None:
    p = sub.add_parser(
        "detect", help="find people: crop rects, masks and an overlay per image or video frame",
        description="Writes into DIR, per image (or per video frame, named frame_NNNNNN): "
        "<name>_rect.txt (one 'x y w h' line per person, PIFuHD's reference format), "
        "<name>_mask_p<ID>.png (person mask), <name>.png (the image as the network will see it, "
        "background applied) and <name>_overlay.jpg (rects, keypoints, ids). people.jsonl lists every "
        "person per frame with id, rect before/after smoothing, score and crop rule.")
    p.add_argument("input", metavar="IMAGE_OR_VIDEO", help="an image file, a video file, or a folder of images")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created)")
    p.add_argument("--every", type=int, default=1, metavar="N",
                   help="video: write images/masks/overlays for every N-th frame only (rects for all)")
    p.add_argument("--max-frames", type=int, default=0, metavar="N", help="video: stop after N frames (0: all)")
    add_arguments(p)
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from ..errors import UserInputError

    cfg = from_args(args)
    if args.every < 1:
        raise UserInputError(f"--every must be >= 1, got {args.every}")
    if not os.path.exists(args.input):
        raise UserInputError(f"input {args.input!r} does not exist; give an image, a video or a folder of images")
    from ..people.detect_io import detect_path

    summary = detect_path(args.input, args.out, cfg, every=args.every, max_frames=args.max_frames)
    print(f"{summary['frames']} frame(s), {summary['people']} person detection(s), ids {summary['ids']}; "
          f"median {summary['median_ms']:.1f} ms/frame; wrote {args.out}")
    return 0


def add_arguments(parser, prefix: str = "") -> None:
    """Add one flag per PeopleConfig field to an argparse parser (``--max-people`` ...), help from
    the field docstrings, defaults from the dataclass."""
    import argparse

    docs = field_docs(PeopleConfig)
    default = PeopleConfig()
    for f in fields(PeopleConfig):
        flag = "--" + prefix + f.name.replace("_", "-")
        d = getattr(default, f.name)
        help_ = f"{docs.get(f.name, '')} (default: {d})"
        if f.name == "detector":
            parser.add_argument(flag, dest=f.name, choices=DETECTORS, default=d, help=help_)
        elif f.name == "background":
            parser.add_argument(flag, dest=f.name, choices=BACKGROUNDS, default=d, help=help_)
        elif f.name == "segmentation":
            parser.add_argument(flag, dest=f.name, choices=SEGMENTATIONS, default=d, help=help_)
        elif f.name == "background_color":
            parser.add_argument(flag, dest=f.name, type=parse_color, default=d, metavar="R,G,B", help=help_)
        elif isinstance(d, bool):
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=d, help=help_)
        else:
            parser.add_argument(flag, dest=f.name, type=type(d), default=d, help=help_)


def from_args(args) -> PeopleConfig:
    """PeopleConfig from parsed flags (see ``add_arguments``); bad values raise UserInputError."""
    from ..errors import UserInputError

    try:
        return PeopleConfig(**{f.name: getattr(args, f.name) for f in fields(PeopleConfig)})
    except ValueError as exc:
        raise UserInputError(f"{exc} (fix the matching --flag)") from exc
