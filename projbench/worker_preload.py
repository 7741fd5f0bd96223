"""Imported once by the executors' fork server (:func:`projbench.executors.worker_context`):
everything a worker needs for any task, so that each forked worker starts with it loaded —
torch and what its optimisers import on first use (``torch._dynamo``, ~3 s), the training and
subspace code, the plugin registries (every plugin imported and registered) and, where
installed, scikit-learn's dataset loader behind the embedded ``digits`` dataset (~2.5 s).
Importing this module runs no torch operation, so forking after it is safe.
"""

from __future__ import annotations

import contextlib
import warnings

import torch
import torch._dynamo
import torch.optim  # noqa: F401

from projbench.manager import get_registry

with warnings.catch_warnings():  # the driver has told the user about its plugins already
    warnings.simplefilter("ignore")
    for _kind in ("projections", "architectures", "datasets", "backends", "suites"):
        get_registry(_kind)

with contextlib.suppress(ImportError):
    import sklearn.datasets
    import sklearn.model_selection  # noqa: F401
