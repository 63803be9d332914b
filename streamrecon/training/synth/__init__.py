"""Synthetic people for training and evaluating the embedded model.

Pipeline (each module one job, pure functions on numpy arrays; anny/igl/trimesh imported lazily):

- ``bodies``: the anny body model (default topology only) and its shape distribution.
- ``poses``: random joint angles within hand-set limits; self-intersecting poses are rejected.
- ``clothing``: procedural garments as closed meshes unioned with the body (loose shells, skirts,
  hair).
- ``camera``: random yaw and the orthographic crop camera (world metres -> crop frame).
- ``render``: orthographic ray casting (embree through trimesh) -> mask, normals, depth, shading.
- ``labels``: occupancy labels near the surface and in the volume (igl fast winding number).
- ``generate``: the whole recipe for one subject from one seed, and dataset shards on disk.

Needs the ``train`` extra: ``pip install 'streamrecon[train]'``. See docs/embedded_model.md.
"""
