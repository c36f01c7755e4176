"""Make the torch stack importable on CPU-only machines.

PyPI's torchvision wheel is a CUDA build; next to a CPU build of torch its C extension does not load, and
``import torchvision`` then fails with "operator torchvision::nms does not exist" (its fake-tensor
registrations for ``nms``/``qnms`` run unconditionally). transformers and open_clip import torchvision
whenever it is installed, so that one failure breaks every model import.

:func:`ensure_torch_stack` defines the two missing operator *schemas* (no kernels) when, and only when,
the plain import fails. torchvision's Python transforms, which open_clip uses, then work; its compiled
detection ops (nms, roi_align) stay unavailable, and nothing here uses them. On a machine whose
torchvision matches its torch, the import succeeds first time and nothing is defined.
"""

from __future__ import annotations

import importlib
import logging
import sys
from functools import cache

log = logging.getLogger(__name__)

_SCHEMAS = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}
_LIBRARIES: list = []  # keep the torch.library.Library objects alive


def _drop_partial_torchvision() -> None:
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]


@cache
def ensure_torch_stack() -> bool:
    """Import torch (and torchvision when installed). Returns True if the schema shim was needed."""
    import torch

    try:
        importlib.import_module("torchvision")
        return False
    except ModuleNotFoundError:
        return False
    except RuntimeError as exc:
        if "torchvision::" not in str(exc):
            raise
        log.info(
            "torchvision's C extension does not match torch %s; defining op schemas only", torch.__version__
        )
    _drop_partial_torchvision()
    lib = torch.library.Library("torchvision", "DEF")
    for schema in _SCHEMAS.values():
        lib.define(schema)
    _LIBRARIES.append(lib)
    importlib.import_module("torchvision")
    return True
