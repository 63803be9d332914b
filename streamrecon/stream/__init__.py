"""The streaming engine: capture (``capture``), bounded queues (``queues``), the threaded
pipeline (``pipeline``), the per-frame stages (``stages``), the session that wires them to the
sinks (``session``), the run directory (``run_writer``) and run statistics (``stats``)."""
