"""The 3D figures of a run (``eval.metrics.depth`` and ``eval.metrics.motion``) frame after frame:
``Body3D`` keeps each person's previous mesh, body and joints (one frame in memory), fills the
rows of ``metrics.json`` and summarises; ``not_made`` says which figures a run without fitted
bodies cannot have, and why. Used by ``evaluation.evaluate_run`` on its one thread."""
from __future__ import annotations

import logging
from dataclasses import replace
from typing import Optional

import numpy as np

from ..metrics.depth import body_from_params, depth_verdict, person_depth_metrics
from ..metrics.motion import joint_acceleration_mm, joints_m, mesh_change, vertex_transforms
from .config import EvaluateConfig
from .stats import stats as _stats

log = logging.getLogger(__name__)

FIGURE_KEYS = ("body_covered", "body_inside", "body_points", "covered_bands", "covered_min", "covered_min_band",
               "body_dist_mean_px", "body_dist_p95_px", "body_dist_mean_cm", "body_dist_p95_cm", "depth_shift_px",
               "tolerance_px", "thickness")
TEMPORAL_KEYS = ("mesh_change_px", "mesh_change_cm", "mesh_change_raw_px", "mesh_change_raw_cm", "body_accel_mm")

NO_BODIES = ("the manifest holds no fitted bodies (a run with --no-body, a model run without the body fitter, "
             "or a run written before bodies were recorded): nothing to judge the unseen views against")
MADE_FROM_BODIES = ("body_covered", "body_inside", "body_dist_mean_cm", "body_dist_p95_cm", "thickness",
                    "mesh_change_cm", "body_accel_mm", "3D failing rule", "3D views with the body")


def empty_figures() -> dict:
    """The 3D keys of a person row before anything is known (all None)."""
    return dict({k: None for k in FIGURE_KEYS + TEMPORAL_KEYS}, depth_status=None, depth_failing=None)


class Body3D:
    """3D figures over one run. ``person(k, fr, p, mesh, mask)`` per person-frame in manifest
    order (``k`` its position: ``rows[k]`` of ``finish(rows)``), then ``finish(rows)``."""

    def __init__(self, cfg: EvaluateConfig):
        self.cfg = cfg
        self.prev: dict = {}  # person -> (k, mesh vertices, BodyRef shifted, vertex transforms)
        self.joints: dict = {}  # person -> {k: joints [P, 3] metres}
        self.counts = {"no_body": 0, "unreadable_body": 0, "judged": 0}

    def person(self, k: int, fr, p, mesh, mask: Optional[np.ndarray]) -> dict:
        """3D figures of person ``p`` (a ``run_dir.PersonEntry``) in frame ``fr`` with its ``mesh``
        (``types.Mesh`` in the manifest's frame, or None) and ``mask`` ([H, W] bool or None)."""
        from ...mesh.coords import mesh_to_frame

        out = empty_figures()
        if p.body is None:
            out["depth_status"] = "no_body"
            self.counts["no_body"] += 1
            return out
        try:
            body = body_from_params(p.body)
        except ValueError as exc:
            log.warning("frame %d person %d: %s", fr.index, p.person, exc)
            out["depth_status"] = "unreadable_body"
            self.counts["unreadable_body"] += 1
            return out
        self.joints.setdefault(p.person, {})[k] = joints_m(body.fit)
        if mesh is None:
            out["depth_status"] = "no_mesh"
            return out
        cfg = self.cfg
        m = mesh_to_frame(mesh, "image", p.rect)
        mv = m.vertices.astype(np.float64)
        fig, shifted = person_depth_metrics(mv, m.faces, body, p.rect, (fr.height, fr.width), mask,
                                            tolerance_cm=cfg.body_tolerance, bands=cfg.thickness_bands,
                                            points=cfg.body_points)
        out.update(fig)
        out["depth_status"] = "ok"
        out["depth_failing"] = depth_verdict(fig, cfg.covered_threshold, cfg.thickness_threshold)
        self.counts["judged"] += 1
        body = replace(body, vertices=shifted)
        T = vertex_transforms(body)
        before = self.prev.get(p.person)
        if before is not None and before[0] == k - 1 and len(before[1]) and len(mv):
            out.update(mesh_change(before[1], mv, before[2], body, before[3], T))
        self.prev[p.person] = (k, mv, body, T)
        return out

    def finish(self, rows: list) -> dict:
        """Fill ``body_accel_mm`` (needs the next frame) into the rows and return the 3D summary."""
        for pid, by_k in self.joints.items():
            for k, x in by_k.items():
                if k - 1 in by_k and k + 1 in by_k:
                    for p in rows[k]["persons"]:
                        if p["person"] == pid:
                            p["body_accel_mm"] = joint_acceleration_mm(by_k[k - 1], x, by_k[k + 1])
        persons = [p for r in rows for p in r["persons"]]
        judged = [p for p in persons if p.get("depth_status") == "ok"]
        cfg = self.cfg
        summary = {
            "judged": len(judged),
            "failing": sum(p.get("depth_failing") is not None for p in judged),
            "without_body": self.counts["no_body"], "unreadable_body": self.counts["unreadable_body"],
            "covered_threshold": cfg.covered_threshold, "thickness_threshold": cfg.thickness_threshold,
            "tolerance_cm": cfg.body_tolerance, "bands": cfg.thickness_bands,
        }
        for key in ("body_covered", "body_inside", "covered_min", "body_dist_mean_cm", "body_dist_p95_cm"):
            summary[key] = _stats(p.get(key) for p in judged)
        summary["thickness_min_ratio"] = _stats((p.get("thickness") or {}).get("min_ratio") for p in judged)
        summary["thickness_ratio"] = _stats((p.get("thickness") or {}).get("overall") for p in judged)
        summary["temporal"] = {}
        for pid in sorted({p["person"] for p in persons}):
            mine = [p for p in persons if p["person"] == pid]
            t = {key: _stats(p.get(key) for p in mine) for key in ("mesh_change_cm", "mesh_change_raw_cm", "body_accel_mm")}
            if any(v is not None for v in t.values()):
                summary["temporal"][str(pid)] = t
        return summary

    def not_made(self) -> list:
        """[{figures, reason}]: what the 3D part could not make in this run, and why."""
        out = []
        total = self.counts["judged"] + self.counts["no_body"] + self.counts["unreadable_body"]
        if total and self.counts["judged"] == 0 and self.counts["unreadable_body"] == 0:
            out.append({"figures": list(MADE_FROM_BODIES), "reason": NO_BODIES})
        else:
            if self.counts["no_body"]:
                out.append({"figures": list(MADE_FROM_BODIES),
                            "reason": f"{self.counts['no_body']} person-frame(s) have no fitted body (the fitter "
                                      "found none for them): their 3D figures are missing"})
            if self.counts["unreadable_body"]:
                out.append({"figures": list(MADE_FROM_BODIES),
                            "reason": f"{self.counts['unreadable_body']} person-frame(s) have a malformed "
                                      "'body' entry in the manifest (see the log): their 3D figures are missing"})
        return out
