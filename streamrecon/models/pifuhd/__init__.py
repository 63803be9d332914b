"""Our PIFuHD (Saito et al., CVPR 2020) in plain torch, loading the official ``pifuhd.pt``.

Modules, each with one job:

- ``options``: frozen configs of both levels, read from the checkpoint's own options and the
  state-dict shapes (the normal nets' sizes are only in the shapes).
- ``normal_net``: pix2pixHD global generator (front/back normal maps).
- ``hourglass``: stacked-hourglass image filter (``ConvBlock``, ``HourGlass``, ``HGFilter``).
- ``mlp``: the pixel-aligned point MLP (1x1 convolutions with residual input).
- ``model``: coarse level (``CoarseNet``), fine level (``FineNet``) and ``PifuhdModel``, the
  ``streamrecon.models.protocol.ImplicitModel`` around them.
- ``reference_recon``: the reference's mesh path (grid, octree, marching cubes), kept as the slow,
  obviously-equivalent twin of the fast reconstruction.

Importing this package imports nothing heavy; import the submodules (they need torch).
"""
