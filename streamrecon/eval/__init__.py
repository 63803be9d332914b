"""Judging meshes: CPU rendering with the crop camera (``render``), image-space and 3D metrics
(``metrics``: against the input frame and mask, and against each person's fitted body) and the run
report of ``streamrecon evaluate`` (``report``)."""
