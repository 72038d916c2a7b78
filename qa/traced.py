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

Questions may take a second, quicker graph: the same weights in bfloat16, kept only where it
agrees with the exact vectors on the probes (QUICK_AGREEMENT, QUICK_COSINE) and embeds a batch
of questions at least QUICK_GAIN times faster on this machine (timed when traced, about 1 s
more: the Zen 4 cores of these machines, with bfloat16 instructions, run a 16-question batch
1.9x faster; CPUs that emulate bfloat16 keep the exact graph). A question's vector only ranks
passages against the stored ones and is never stored itself; documents are always embedded
exactly. Its batches are padded to few shapes (`_bucketed`): oneDNN's bfloat16 kernels keep
memory for every new input shape, and 1,000 batches of random shapes (1-16 questions of 5-45
tokens) grew a process by 300-540 MB without the padding, 52 MB with it (flat after the
first 200), at 1.6x the exact graph's speed (1.65x unpadded).
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

AGREEMENT = 1e-5  # largest difference from the eager model's vectors that `trace` accepts
QUICK_AGREEMENT = 5e-3  # the same for the bfloat16 graph, with
QUICK_COSINE = 0.9999  # the least cosine between its vectors and the eager model's
QUICK_GAIN = 1.2  # how much faster it must embed questions to be used
_PROBES = (
    "Why did Turkey choose the S-400?",
    "A longer passage, so that the probe batch is padded: the traced graph must mask the padding "
    "of shorter texts the way the eager model does.",
    " ".join(["Every text is cut at the model's window of tokens, as the eager one cuts it."] * 30),
)
_QUESTIONS = tuple(
    f"{asked} {topic}?"
    for asked in ("Who signed", "When was", "Why did the ministry question", "What is")
    for topic in ("the air defence deal", "the S-400", "the delivery", "a contract with NATO")
)  # 16 questions: the batch a busy server embeds
log = logging.getLogger(__name__)


class TracedEncoder:
    """`encode` as `SentenceTransformer.encode(..., normalize_embeddings=True)` computes it:
    the first module (a text transformer) traced, the later ones (pooling, normalising) as
    they are."""

    def __init__(
        self, model: Any, graph: Any, keys: tuple[str, ...], dim: int, quick: Any = None
    ) -> None:
        self.dim = dim
        self._model = model
        self._graph = graph
        self._keys = keys
        self.quick = quick  # the bfloat16 graph for questions, when `trace` chose one

    def encode(
        self, texts: Sequence[str], *, batch_size: int, progress: bool, questions: bool = False
    ) -> np.ndarray:
        """Unit-length float32 vectors; longest texts batched together, as
        sentence-transformers does, so a batch pads little. `questions`: from the quick
        graph, if there is one."""
        graph = self.quick if questions and self.quick is not None else self._graph
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
            vectors[rows] = self._forward(graph, [texts[i] for i in rows])
        return vectors

    def _forward(self, graph: Any, texts: list[str]) -> np.ndarray:
        import torch

        first, *rest = list(self._model)
        features = first.preprocess(texts)
        # The plain interpreter: the profiling executor's shape-specialised copies of the graph
        # cost about 50 MB a server and gained nothing measurable here.
        with torch.inference_mode(), torch.jit.optimized_execution(False):
            inputs = [features[key] for key in self._keys]
            rows, width = inputs[0].shape
            if graph is not self._graph:  # the quick graph, also while `_quick` tries it
                inputs = _bucketed(inputs)
            states = graph(*inputs)[:rows, :width]
            features["token_embeddings"] = states.float()  # a no-op but for the quick graph
            for module in rest:
                features = module(features)
            vectors = features["sentence_embedding"]
            vectors = torch.nn.functional.normalize(vectors, p=2, dim=1)
        return np.ascontiguousarray(vectors.numpy(), dtype=np.float32)


def _bucketed(inputs: list[Any]) -> list[Any]:
    """Inputs padded to one of few shapes: 1, 2 or 4 rows or a multiple of 4, tokens to a
    multiple of 8 (a 16-question batch of short questions: 6 x 2-4 shapes)."""
    import torch

    rows, width = inputs[0].shape
    to_rows = 1 << (rows - 1).bit_length() if rows <= 4 else -(-rows // 4) * 4
    to_width = -(-width // 8) * 8
    out = []
    for tensor in inputs:
        padded = torch.zeros((to_rows, to_width), dtype=tensor.dtype)
        padded[:rows, :width] = tensor
        padded[rows:, 0] = tensor[0, 0]  # filler rows: one token, masked like any text
        out.append(padded)
    return out


def trace(model: Any) -> TracedEncoder | None:
    """The model's first module traced and checked against the eager model, or None; with
    a quick graph for questions when one agrees and pays (`_quick`)."""
    import torch

    try:
        first = model[0]
        features = first.preprocess([_PROBES[0]])
        keys = tuple(k for k, v in features.items() if isinstance(v, torch.Tensor))
        graph = _graph(first.auto_model, keys, tuple(features[key] for key in keys))
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
    if not _agrees(traced, eager, AGREEMENT):
        return None
    encoder.quick = _quick(encoder, eager, tuple(features[key] for key in keys))
    return encoder


def _agrees(vectors: np.ndarray, eager: np.ndarray, most: float, cosine: float = -1.0) -> bool:
    """Same shape, no element further than `most` from the eager model's, no pair of rows
    below `cosine`; NaN never agrees."""
    if vectors.shape != eager.shape:
        return False
    differs = float(np.abs(vectors - eager).max())
    least = float(np.einsum("ij,ij->i", vectors, eager).min())
    return differs <= most and least >= cosine


def _graph(transformer: Any, keys: tuple[str, ...], example: tuple[Any, ...]) -> Any:
    """The transformer's token states as a frozen TorchScript graph of its inputs in `keys`
    order (one tensor out, whatever the transformers version's output type)."""
    import torch

    class TokenStates(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(self, *tensors: Any) -> Any:
            features = dict(zip(keys, tensors, strict=True))
            return self.transformer(**features, return_dict=False)[0]

    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # TracerWarnings about shapes the graph keeps general
        graph = torch.jit.trace(TokenStates().eval(), example, check_trace=False)
        return torch.jit.freeze(graph)


def _quick(encoder: TracedEncoder, eager: np.ndarray, example: tuple[Any, ...]) -> Any:
    """The bfloat16 graph if it agrees with the exact vectors (QUICK_AGREEMENT, QUICK_COSINE)
    and embeds a batch of questions QUICK_GAIN times faster than the exact graph (one
    thread), else None; never an error (the exact graph then serves questions too)."""
    import torch

    threads = torch.get_num_threads()
    try:
        quick = _graph(_bfloat16(encoder._model[0].auto_model), encoder._keys, example)
        vectors = encoder._forward(quick, list(_PROBES))
        if not _agrees(vectors, eager, QUICK_AGREEMENT, QUICK_COSINE):
            log.info("bfloat16 graph differs from the exact vectors: not used")
            return None
        torch.set_num_threads(1)
        exact, fast = (_seconds(encoder, graph) for graph in (encoder._graph, quick))
    except Exception as error:  # no bfloat16 kernels here, or any other failure
        log.info("no bfloat16 graph for questions (%s: %s)", type(error).__name__, error)
        return None
    finally:
        torch.set_num_threads(threads)
    log.info("bfloat16 graph: %.1fx the exact graph's speed on questions", exact / fast)
    return quick if exact >= QUICK_GAIN * fast else None


def _bfloat16(module: Any) -> Any:
    """A bfloat16 copy of `module`, its weights converted one by one: no float32 copy of
    90 MB on the way. The copy holds 47 MB; reading every weight also maps in the rest of
    the model file (another 47 MB of RSS, file pages that replicas on one host share)."""
    import copy

    import torch

    memo = {
        id(p): torch.nn.Parameter(p.detach().to(torch.bfloat16), requires_grad=False)
        for p in module.parameters()
    }
    return copy.deepcopy(module, memo).to(torch.bfloat16)


def _seconds(encoder: TracedEncoder, graph: Any) -> float:
    """The best of five timings of a 16-question batch (the first call warms the graph up)."""
    questions = list(_QUESTIONS)
    encoder._forward(graph, questions)
    timings = []
    for _ in range(5):
        began = time.perf_counter()
        encoder._forward(graph, questions)
        timings.append(time.perf_counter() - began)
    return min(timings)
