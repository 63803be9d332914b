"""CPU rendering of our meshes with the exact camera of their crop (orthographic, no display):
``cameras`` (crop <-> image frames), ``rasterizer`` (z-buffer), ``shading`` (normals, Lambert),
``views`` (``render_mesh``). numpy only."""
from .cameras import CropCamera
from .rasterizer import Fragments, rasterize, rasterize_reference
from .views import Render, render_mesh

__all__ = ["CropCamera", "Fragments", "rasterize",
           "rasterize_reference", "Render", "render_mesh"]
