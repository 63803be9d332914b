"""Evaluation of a run directory: ``run_dir`` (manifest and files), ``evaluation`` (metrics per
frame and person, ``metrics.json``), ``body3d`` (the 3D figures against the fitted bodies over a
run), ``html``, ``html3d``, ``views3d`` and ``svg`` (the report page and its pictures)."""
