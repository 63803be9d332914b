"""The runner factories, one per backend. Each returns ``fn(*tensors) -> tensor | tuple`` taking
float32 inputs on any device and returning float32 outputs on the configured device."""
from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)

ORT_CPU_MEM_ARENA = True
"""ONNX Runtime's CPU memory arena for engines with dynamic axes (run many times per frame, e.g.
the query MLPs: 25% less CPU time measured with it). Static-shape engines (image networks, run once
per frame) go without: the arena would keep their activations' peak reserved between frames
(full-size PIFuHD: peak RSS 3.9 -> 3.3 GiB)."""


def _to_float32(out):
    import torch

    if isinstance(out, torch.Tensor):
        return out.float() if out.is_floating_point() else out
    if isinstance(out, (tuple, list)):
        return type(out)(_to_float32(o) for o in out)
    return out


def eager_runner(module, device, dtype):
    """``module`` in torch as it is. bfloat16 on a CPU runs channels-last (module and 4-D inputs):
    oneDNN's bf16 convolutions (AMX) want that layout; NCHW bf16 is ~2x slower there."""
    import torch

    module = module.to(device=device, dtype=dtype)
    channels_last = torch.device(device).type == "cpu" and dtype == torch.bfloat16
    if channels_last:
        module = module.to(memory_format=torch.channels_last)

    def prepare(x):
        x = x.to(device=device, dtype=dtype)
        return x.contiguous(memory_format=torch.channels_last) if channels_last and x.ndim == 4 else x

    def fn(*xs):
        with torch.inference_mode():
            return _to_float32(module(*[prepare(x) for x in xs]))

    return fn


def compile_runner(module, device, dtype, dynamic: bool):
    import torch

    module = module.to(device=device, dtype=dtype)
    compiled = torch.compile(module, dynamic=dynamic)

    def fn(*xs):
        with torch.inference_mode():
            return _to_float32(compiled(*[x.to(device=device, dtype=dtype) for x in xs]))

    return fn


ONNX_EXTERNAL_DATA_BYTES = 64 << 20
"""ONNX models larger than this keep their weights in a sidecar file (``<model>.data``): ONNX
Runtime then reads them straight into its tensors, where a single-file model is parsed whole
first (full-size PIFuHD normal net: load peak 1.58 -> 0.85 GB, resident 0.84 -> 0.77 GB)."""

ONNX_SIDECAR = ".data"


def _export_onnx(module, example_inputs, path: Path, dynamic: dict) -> None:
    import torch

    names = [f"in{i}" for i in range(len(example_inputs))]
    axes = {f"in{i}": {d: f"in{i}_d{d}" for d in dims} for i, dims in dynamic.items()}
    cpu_module = module.to("cpu", torch.float32)
    inputs = tuple(t.detach().to("cpu", torch.float32) for t in example_inputs)
    import warnings

    with torch.no_grad(), warnings.catch_warnings():
        # The legacy exporter is deprecated but still the one that handles dynamic axes on plain
        # conv/linear nets without onnxscript; its warnings are noise for users.
        warnings.simplefilter("ignore")
        # The TorchScript exporter handles dynamic axes on plain conv/linear nets without extra deps.
        torch.onnx.export(
            cpu_module, inputs, str(path), dynamo=False, input_names=names,
            dynamic_axes=axes, opset_version=17, do_constant_folding=True,
        )
    if path.stat().st_size > ONNX_EXTERNAL_DATA_BYTES:
        _move_weights_to_sidecar(path)


def _move_weights_to_sidecar(path: Path) -> None:
    """Rewrite the ONNX model at ``path`` with its initializers in ``path.name + '.data'``."""
    import onnx

    model = onnx.load(str(path))
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=path.name + ONNX_SIDECAR, size_threshold=1024)


def onnx_runner(module, example_inputs, device, dynamic: dict, cache, fields, before_load=None):
    """``before_load()``, if given, runs once the engine file exists and before ONNX Runtime loads
    it (the caller frees the PyTorch weights there, so the two copies never coexist)."""
    import onnxruntime as ort
    import torch

    path = cache.lookup(fields, "onnx")
    if path is None:
        log.info("building ONNX engine for %s", fields.get("artefact"))
        path = cache.store(fields, "onnx", lambda p: _export_onnx(module, example_inputs, p, dynamic),
                           sidecars=(ONNX_SIDECAR,))
    if before_load is not None:
        before_load()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = torch.get_num_threads()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.enable_cpu_mem_arena = ORT_CPU_MEM_ARENA and bool(dynamic)
    providers = ["CPUExecutionProvider"]
    if device.type == "cuda":
        have = ort.get_available_providers()
        providers = [p for p in ("TensorrtExecutionProvider", "CUDAExecutionProvider") if p in have] + providers
    session = ort.InferenceSession(str(path), sess_options=opts, providers=providers)
    names = [i.name for i in session.get_inputs()]

    def fn(*xs):
        feeds = {n: x.detach().to("cpu", torch.float32).contiguous().numpy() for n, x in zip(names, xs)}
        outs = [torch.from_numpy(o).to(device) for o in session.run(None, feeds)]
        return outs[0] if len(outs) == 1 else tuple(outs)

    return fn


def tensorrt_runner(module, example_inputs, device, dtype, dynamic: dict, cache, fields):
    import torch
    import torch_tensorrt

    path = cache.lookup(fields, "ep")
    if path is not None:
        trt_module = torch.export.load(str(path)).module()
    else:
        specs = []
        for i, t in enumerate(example_inputs):
            shape = list(t.shape)
            if i in dynamic:
                lo, hi = list(shape), list(shape)
                for d in dynamic[i]:
                    lo[d], hi[d] = 1, shape[d]
                specs.append(torch_tensorrt.Input(min_shape=lo, opt_shape=shape, max_shape=hi, dtype=dtype))
            else:
                specs.append(torch_tensorrt.Input(shape=shape, dtype=dtype))
        log.info("building TensorRT engine for %s (minutes on first use)", fields.get("artefact"))
        module = module.to(device=device, dtype=dtype)
        trt_module = torch_tensorrt.compile(module, ir="dynamo", inputs=specs, enabled_precisions={dtype})
        inputs = [t.to(device=device, dtype=dtype) for t in example_inputs]
        try:
            cache.store(fields, "ep", lambda p: torch_tensorrt.save(trt_module, str(p), inputs=inputs))
        except Exception as exc:  # caching is an optimisation: keep the in-memory engine
            log.warning("could not cache the TensorRT engine (%s); it will be rebuilt next time", exc)

    def fn(*xs):
        with torch.inference_mode():
            return _to_float32(trt_module(*[x.to(device=device, dtype=dtype) for x in xs]))

    return fn
