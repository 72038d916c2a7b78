"""A picture of an evaluation: abstention score distributions and hit@k per retrieval mode."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from qa.eval.evaluate import Outcome, hit_at_k


def plot(
    results: dict[str, Sequence[Outcome]], threshold: float, path: str | Path, main: str = "hybrid"
) -> None:
    """Left: confidence of answerable vs unanswerable questions; right: hit@k against k."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    outcomes = results.get(main) or next(iter(results.values()))
    bins = [i / 20 for i in range(21)]
    left.hist(
        [o.confidence for o in outcomes if o.answerable],
        bins=bins,
        alpha=0.6,
        label="answerable",
        color="tab:green",
    )
    left.hist(
        [o.confidence for o in outcomes if not o.answerable],
        bins=bins,
        alpha=0.6,
        label="unanswerable",
        color="tab:red",
    )
    left.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold:g}")
    left.set_xlabel("answer confidence")
    left.set_ylabel("questions")
    left.set_title("Abstention: who gets declined")
    left.legend()
    ks = list(range(1, 11))
    for mode, mode_outcomes in results.items():
        right.plot(ks, hit_at_k(mode_outcomes, ks), marker="o", label=mode)
    right.set_xlabel("k (passages)")
    right.set_ylabel("answer-bearing passage in top k")
    right.set_title("Retrieval: hit@k per ranking mode")
    right.set_xticks(ks)
    right.grid(alpha=0.3)
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
