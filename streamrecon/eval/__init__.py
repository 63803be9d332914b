"""Judging meshes: CPU rendering with the crop camera (``render``), image-space metrics
(``metrics``) and the run report of ``streamrecon evaluate`` (``report``)."""
