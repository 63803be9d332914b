"""Per-frame image-space metrics (numpy only): silhouette IoU and boundary F-score against the
person mask, PSNR/SSIM of the shaded render against the masked grayscale input, and temporal
stability over a video."""
from .image import psnr, ssim, to_gray
from .silhouette import boundary, boundary_fscore, boundary_fscore_reference, default_tolerance, iou
from .temporal import depth_change, silhouette_change, stability_summary

__all__ = ["psnr", "ssim", "to_gray", "boundary", "boundary_fscore", "boundary_fscore_reference",
           "default_tolerance", "iou", "depth_change", "silhouette_change", "stability_summary"]
