"""Image-space evaluation of a run directory: ``run_dir`` (manifest and files), ``evaluation``
(metrics per frame and person, ``metrics.json``), ``html`` and ``svg`` (the report page)."""
