"""OpenVINO inference for large ``Encoder.encode`` calls (the default where OpenVINO is installed).

The encoder's forward plus its pooling and L2 normalisation is converted once
per model state (``openvino.convert_model`` on a traced wrapper, dynamic batch
and length) and compiled for the CPU with the precision the project uses
there (bf16 where :func:`lib.machine.bf16_supported`, else f32) and the
throughput hint: length-sorted requests of :data:`REQUEST_SIZE` texts run in
parallel streams, each on its own share of torch's thread count.

Why: OpenVINO fuses the work around the matrix multiplies (layer norms,
GELU, attention) that the torch forward runs op by op, and the parallel
streams keep both cores busy on short texts; ``benchmarks/encode_backends.py``
measures the speed, the agreement of the embeddings with the torch forward and
the mAP of stored models both ways (README, "Speed"). Training never goes
through here: gradients need torch.

``HBT_ENCODER_BACKEND`` chooses: ``auto`` (default: OpenVINO for calls of at
least :data:`MIN_TEXTS` texts when the package imports, torch otherwise),
``openvino`` (the same, but an error when the package is missing) or
``torch`` (never OpenVINO). A conversion or inference failure warns and
falls back to torch. A converted model is tied to the parameters' version
counters, so a training step or ``load_state_dict`` in between converts
again instead of serving stale weights.
"""
from __future__ import annotations

import importlib.util
import os
import sys
import warnings

import numpy as np
import torch

from lib.errors import ConfigError

BACKENDS = ("auto", "torch", "openvino")
ENV = "HBT_ENCODER_BACKEND"
MIN_TEXTS = 512  # smaller calls are not worth a conversion (about 4 s for the 12-layer backbone)
REQUEST_SIZE = 32  # texts per inference request (32 ran faster than 64 or 128 on the 2-core AMD EPYC machine)


def setting() -> str:
    """The ``HBT_ENCODER_BACKEND`` value (``auto`` when unset); ConfigError naming it when invalid."""
    value = os.environ.get(ENV, "").strip() or "auto"
    if value not in BACKENDS:
        raise ConfigError(f"{ENV}={value!r}: use one of {', '.join(BACKENDS)} (auto: OpenVINO for large "
                          "encode calls when it is installed)")
    return value


def installed() -> bool:
    return importlib.util.find_spec("openvino") is not None


def wanted(n_texts: int, device: torch.device) -> bool:
    """Whether an ``encode`` call of ``n_texts`` texts on ``device`` goes through OpenVINO."""
    value = setting()
    if value == "torch" or device.type != "cpu" or n_texts < MIN_TEXTS:
        return False
    if not installed():
        if value == "openvino":
            raise ConfigError(f"{ENV}=openvino but the openvino package is not installed "
                              "(`.venv/bin/pip install --no-deps -r requirements-nodeps.txt`, as the set-up does), or set it "
                              "to torch / auto")
        return False
    return True


def warn_fallback(exc: Exception) -> None:
    warnings.warn(f"OpenVINO encoding failed ({type(exc).__name__}: {str(exc)[:200]}); encoding with torch",
                  RuntimeWarning, stacklevel=3)


class _Pooled(torch.nn.Module):
    """The encoder's forward plus its pooling and normalisation (``Encoder._pool``) as one traceable module."""

    def __init__(self, encoder):
        super().__init__()
        self.model = encoder.model
        self.pool = encoder._pool

    def forward(self, input_ids, attention_mask):
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self.pool(hidden, attention_mask)


def state_key(model, bf16: bool, threads: int) -> tuple:
    """What a converted model depends on: the module, its parameters' versions, precision and threads."""
    return (id(model), tuple(p._version for p in model.parameters()), bf16, threads)


def telemetry_off() -> None:
    """Keep OpenVINO from sending usage events; call before importing ``openvino``.

    OpenVINO's converter reports its import and each conversion to Intel (from
    a forked process) unless a consent file says no; the study runs offline
    and sends nothing. The set-up installs OpenVINO without
    ``openvino-telemetry``, so the converter uses its built-in stub; where that
    package is installed anyway, it is made unimportable for this process
    (the converter then takes the stub), and a converter imported before this
    call is pointed at the stub."""
    if "openvino_telemetry" not in sys.modules:
        sys.modules["openvino_telemetry"] = None  # import raises ImportError: the converter's fallback
    ovc = sys.modules.get("openvino.tools.ovc")
    if ovc is None:
        return
    from openvino.tools.ovc import convert_impl, telemetry_stub, telemetry_utils

    for module in (ovc, convert_impl, telemetry_utils):
        if hasattr(module, "tm"):
            module.tm = telemetry_stub
    if hasattr(ovc, "telemetry"):
        ovc.telemetry = telemetry_stub.Telemetry()


class Compiled:
    """One encoder state converted and compiled for the CPU; ``run`` fills embeddings batch by batch."""

    def __init__(self, encoder, bf16: bool, threads: int):
        telemetry_off()
        import openvino as ov

        self.key = state_key(encoder.model, bf16, threads)
        tok = encoder.tokenizer(["a", "a b"], padding=True, return_tensors="pt", return_token_type_ids=False)
        dynamic = [(name, ov.PartialShape([-1, -1]), ov.Type.i64) for name in ("input_ids", "attention_mask")]
        was_training = encoder.model.training
        encoder.model.eval()
        try:
            with torch.no_grad(), warnings.catch_warnings():
                # the trace fixes transformers' shape checks (no extra padding, no causal mask), true for every call
                warnings.simplefilter("ignore", torch.jit.TracerWarning)
                warnings.filterwarnings("ignore", "`is_gradient_checkpointing` is deprecated", FutureWarning)
                graph = ov.convert_model(_Pooled(encoder),
                                         example_input=(tok["input_ids"], tok["attention_mask"]), input=dynamic)
        finally:
            encoder.model.train(was_training)
        self.precision = "bf16" if bf16 else "f32"
        self.model = ov.Core().compile_model(graph, "CPU", {
            "INFERENCE_PRECISION_HINT": self.precision, "PERFORMANCE_HINT": "THROUGHPUT",
            "INFERENCE_NUM_THREADS": int(threads)})
        self._ov = ov

    def run(self, batches, out: np.ndarray, done) -> None:
        """Each ``(rows, padded batch)`` of ``batches`` goes to a free request; results land in ``out[rows]``
        and ``done(len(rows))`` is called as each finishes."""
        queue = self._ov.AsyncInferQueue(self.model)
        errors: list[BaseException] = []

        def finished(request, rows):
            try:
                out[rows] = request.get_output_tensor(0).data
                done(len(rows))
            except BaseException as exc:  # noqa: BLE001 (re-raised in the caller's thread)
                errors.append(exc)

        queue.set_callback(finished)
        for rows, batch in batches:
            queue.start_async({"input_ids": batch["input_ids"].numpy(),
                               "attention_mask": batch["attention_mask"].numpy()}, rows)
        queue.wait_all()
        if errors:
            raise errors[0]
