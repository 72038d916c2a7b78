"""The embedding model's transformer as a TorchScript graph: the same vectors, less Python.

sentence-transformers runs MiniLM's forward pass as eager PyTorch: about a hundred Python
module calls per text, all holding the GIL. Traced once at load (about 1 s with the check
below), the same weights run as one graph call that releases the GIL, so a server's other
threads (HTTP, retrieval, the answer step) run beside it on the other core. Measured on 2
cores: one question 15-17 -> 11 ms (bench/RESULTS.md, "Load test", "The model alone"), and
two threads embed 180-210 questions/s instead of 105. The vectors agree with
`SentenceTransformer.encode` to 1e-7; `trace` checks that on probe texts (a padded batch, a
text past the window) and returns None, so that the caller keeps the eager model, when they
do not agree or the model cannot be traced.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

AGREEMENT = 1e-5  # largest difference from the eager model's vectors that `trace` accepts
_PROBES = (
    "Why did Turkey choose the S-400?",
    "A longer passage, so that the probe batch is padded: the traced graph must mask the padding "
    "of shorter texts the way the eager model does.",
    " ".join(["Every text is cut at the model's window of tokens, as the eager one cuts it."] * 30),
)


class TracedEncoder:
    """`encode` as `SentenceTransformer.encode(..., normalize_embeddings=True)` computes it:
    the first module (a text transformer) traced, the later ones (pooling, normalising) as
    they are."""

    def __init__(self, model: Any, graph: Any, keys: tuple[str, ...], dim: int) -> None:
        self.dim = dim
        self._model = model
        self._graph = graph
        self._keys = keys

    def encode(self, texts: Sequence[str], *, batch_size: int, progress: bool) -> np.ndarray:
        """Unit-length float32 vectors; longest texts batched together, as
        sentence-transformers does, so a batch pads little."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        starts = range(0, len(order), batch_size)
        if progress:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc="Batches", unit="batch")
        vectors = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in starts:
            rows = order[start : start + batch_size]
            vectors[rows] = self._forward([texts[i] for i in rows])
        return vectors

    def _forward(self, texts: list[str]) -> np.ndarray:
        import torch

        first, *rest = list(self._model)
        features = first.preprocess(texts)
        # The plain interpreter: the profiling executor's shape-specialised copies of the graph
        # cost about 50 MB a server and gained nothing measurable here.
        with torch.inference_mode(), torch.jit.optimized_execution(False):
            features["token_embeddings"] = self._graph(*(features[key] for key in self._keys))
            for module in rest:
                features = module(features)
            vectors = features["sentence_embedding"]
            vectors = torch.nn.functional.normalize(vectors, p=2, dim=1)
        return np.ascontiguousarray(vectors.numpy(), dtype=np.float32)


def trace(model: Any) -> TracedEncoder | None:
    """The model's first module traced and checked against the eager model, or None."""
    import torch

    class TokenStates(torch.nn.Module):
        """The transformer's token states only, from its inputs in `keys` order: one tensor
        out, whatever the transformers version's output type."""

        def __init__(self, transformer: Any, keys: tuple[str, ...]) -> None:
            super().__init__()
            self.transformer = transformer
            self.keys = keys

        def forward(self, *tensors: Any) -> Any:
            features = dict(zip(self.keys, tensors, strict=True))
            return self.transformer(**features, return_dict=False)[0]

    try:
        first = model[0]
        features = first.preprocess([_PROBES[0]])
        keys = tuple(k for k, v in features.items() if isinstance(v, torch.Tensor))
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # TracerWarnings about shapes the graph keeps general
            graph = torch.jit.trace(
                TokenStates(first.auto_model, keys).eval(),
                tuple(features[key] for key in keys),
                check_trace=False,
            )
            graph = torch.jit.freeze(graph)
        probes = list(_PROBES)
        eager = model.encode(
            probes,
            batch_size=len(probes),
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        encoder = TracedEncoder(model, graph, keys, dim=int(eager.shape[1]))
        traced = encoder.encode(probes, batch_size=len(probes), progress=False)
    except Exception:  # any model we cannot trace keeps the eager path
        return None
    if traced.shape != eager.shape or float(np.abs(traced - eager).max()) > AGREEMENT:
        return None
    return encoder
