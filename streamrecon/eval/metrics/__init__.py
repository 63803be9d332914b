"""Per-frame metrics: image space (numpy only: silhouette IoU and boundary F-score against the
person mask, PSNR/SSIM of the shaded render against the masked grayscale input, temporal
stability over a video) and 3D against the person's fitted body (``depth``, ``motion``, on the
mesh geometry of ``geometry``; scipy, libigl when installed; import those submodules directly)."""
from .image import psnr, ssim, to_gray
from .silhouette import boundary, boundary_fscore, boundary_fscore_reference, default_tolerance, iou
from .temporal import depth_change, silhouette_change, stability_summary

__all__ = ["psnr", "ssim", "to_gray", "boundary", "boundary_fscore", "boundary_fscore_reference",
           "default_tolerance", "iou", "depth_change", "silhouette_change", "stability_summary"]
