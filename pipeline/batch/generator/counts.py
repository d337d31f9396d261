"""Row counts at a scale, and splitting totals into groups (items per order, payments per order...)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

# Row counts of the full data set.
FULL_ROWS = {
    "customers": 99_441,
    "geolocation": 1_000_163,
    "orders": 99_441,
    "order_items": 112_650,
    "order_payments": 103_886,
    "order_reviews": 99_224,
    "products": 32_951,
    "sellers": 3_095,
    "product_category_name_translation": 71,
}


def scaled(full: float, scale: float, minimum: int = 0) -> int:
    """``round(full * scale)``, at least ``minimum``."""
    return max(minimum, round(full * scale))


def table_rows(scale: float) -> dict[str, int]:
    """Rows of every file at ``scale`` (the translation file always has its 71)."""
    rows = {name: scaled(full, scale, 1) for name, full in FULL_ROWS.items()}
    rows["product_category_name_translation"] = FULL_ROWS["product_category_name_translation"]
    return rows


def apportion(weights: Sequence[float] | np.ndarray, total: int, minimum: int = 0) -> np.ndarray:
    """Split ``total`` in proportion to ``weights`` (largest remainder), each part at least ``minimum``.

    Parts lifted to ``minimum`` are paid for by the largest parts, so the proportional split is kept
    exactly wherever the minimum does not bind.
    """
    w = np.asarray(weights, dtype=np.float64)
    if total < minimum * len(w):
        raise ValueError(f"cannot split {total} into {len(w)} parts of at least {minimum}")
    share = w / w.sum() * total
    parts = np.floor(share).astype(np.int64)
    rest = total - int(parts.sum())
    if rest:
        parts[np.argsort(-(share - parts), kind="stable")[:rest]] += 1
    deficit = int(np.maximum(minimum - parts, 0).sum())
    parts = np.maximum(parts, minimum)
    while deficit:
        big = int(np.argmax(parts))
        take = min(deficit, int(parts[big]) - minimum)
        parts[big] -= take
        deficit -= take
    return parts


def cap_share(weights: np.ndarray, share: float) -> np.ndarray:
    """Lower the largest ``weights`` so that none holds more than ``share`` of the total (or 2/n).

    Small samples keep the real top share instead of piling on their few most popular members.
    """
    w = np.asarray(weights, dtype=np.float64).copy()
    share = max(share, 2.0 / len(w))
    for _ in range(50):
        cap = share * w.sum()
        if w.max() <= cap * (1 + 1e-9):
            break
        w = np.minimum(w, cap)
    return w


def group_sizes(
    rng: np.random.Generator, histogram: Mapping[int, int], scale: float, groups: int, total: int
) -> np.ndarray:
    """Sizes of ``groups`` groups summing to ``total``, shaped like ``histogram`` (size -> full count).

    Sizes above 1 take their scaled counts; the rest are 1; rounding differences are settled by
    growing or shrinking random groups by one. The result is in random order.
    """
    if total < groups:
        raise ValueError(f"{total} rows cannot fill {groups} groups")
    counts = {k: scaled(c, scale) for k, c in sorted(histogram.items()) if k > 1}
    big = sum(counts.values())
    for k in sorted(counts, reverse=True):  # too few groups for the tail: drop the largest sizes first
        if big <= groups:
            break
        cut = min(counts[k], big - groups)
        counts[k] -= cut
        big -= cut
    sizes = np.ones(groups, dtype=np.int64)
    pos = 0
    for k, c in counts.items():
        sizes[pos : pos + c] = k
        pos += c
    diff = total - int(sizes.sum())
    if diff > 0:
        np.add.at(sizes, rng.integers(0, groups, diff), 1)
    while diff < 0:
        shrinkable = np.flatnonzero(sizes > 1)
        take = rng.choice(shrinkable, size=min(len(shrinkable), -diff), replace=False)
        sizes[take] -= 1
        diff += len(take)
    return rng.permutation(sizes)


def group_index(sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For groups of ``sizes``: each row's group and its 1-based position within the group."""
    group = np.repeat(np.arange(len(sizes)), sizes)
    starts = np.cumsum(sizes) - sizes
    position = np.arange(int(sizes.sum())) - np.repeat(starts, sizes) + 1
    return group, position
