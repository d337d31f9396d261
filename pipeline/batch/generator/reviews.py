"""Order reviews: scores, Portuguese titles and messages, survey and answer dates."""

from __future__ import annotations

import numpy as np

from pipeline.batch.generator import columns as C
from pipeline.batch.generator.columns import DAY, TS_NULL
from pipeline.batch.generator.counts import scaled
from pipeline.batch.generator.orders import DELIVERED, Orders
from pipeline.batch.generator.reference import (
    REVIEW_SENTENCES_BAD,
    REVIEW_SENTENCES_GOOD,
    REVIEW_SENTENCES_MIXED,
    REVIEW_TITLES_BAD,
    REVIEW_TITLES_GOOD,
    REVIEW_TITLES_MIXED,
    SHOWCASE_MESSAGES,
)

FULL_REVIEWED_ORDERS = 98_673
FULL_DISTINCT_IDS = 98_410
FULL_TRIPLE_REVIEWED = 4
# Score 1..5 probabilities for orders that went well, and for late or undelivered ones; mixed ~88/12
# they give the real shares (5: 58%, 4: 19%, 1: 12%, 3: 8%, 2: 3%).
SCORES_WELL = np.array([0.0739, 0.0266, 0.078, 0.203, 0.6266])
SCORES_BADLY = np.array([0.45, 0.08, 0.12, 0.12, 0.23])
TITLE_SHARE = 1 - 87_656 / 99_224
MESSAGE_SHARE_HAPPY = 0.34  # score 4-5; unhappy customers write more often
MESSAGE_SHARE_UNHAPPY = 0.65
MULTILINE_SHARE = 0.08
POOL_SIZE = 400


def _message_pool(rng: np.random.Generator, sentences: tuple[str, ...]) -> np.ndarray:
    """Messages of one or two sentences, some on several lines, some typed in lower case."""
    pool = []
    for _ in range(POOL_SIZE):
        count = int(rng.integers(1, 3))
        picked = [sentences[i] for i in rng.choice(len(sentences), size=count, replace=False)]
        message = ("\n" if rng.random() < MULTILINE_SHARE else " ").join(picked)
        pool.append(message.lower() if rng.random() < 0.2 else message)
    return np.array(pool, dtype=object)


def _pick(rng: np.random.Generator, pools: list[np.ndarray], mood: np.ndarray) -> np.ndarray:
    out = np.empty(len(mood), dtype=object)
    for m, pool in enumerate(pools):
        rows = np.flatnonzero(mood == m)
        out[rows] = pool[rng.integers(0, len(pool), len(rows))]
    return out


def build_reviews(rng: np.random.Generator, orders: Orders, n_rows: int, scale: float) -> C.Frame:
    """Most orders get one review, some two or three, and some review ids cover several orders."""
    n_orders = len(orders.ids)
    n_reviewed = min(n_orders, scaled(FULL_REVIEWED_ORDERS, scale, 1), n_rows)
    if n_rows - n_reviewed < 1 and n_reviewed > 1:
        n_reviewed -= 1  # keep at least one order with several reviews
    extra = n_rows - n_reviewed
    reviewed = rng.choice(n_orders, size=n_reviewed, replace=False)
    n_third = min(scaled(FULL_TRIPLE_REVIEWED, scale), extra // 2)
    seconds = rng.choice(reviewed, size=extra - n_third, replace=False)
    order = np.concatenate([reviewed, seconds, seconds[:n_third]])
    nth = np.concatenate([np.zeros(n_reviewed), np.ones(len(seconds)), np.full(n_third, 2)]).astype(np.int64)
    n = len(order)

    delivered = orders.delivered[order]
    went_badly = (
        (orders.status[order] != DELIVERED) | (delivered == TS_NULL) | (delivered > orders.estimated[order])
    )
    score = np.empty(n, dtype=np.int64)
    for mask, p in ((~went_badly, SCORES_WELL), (went_badly, SCORES_BADLY)):
        score[mask] = rng.choice(np.arange(1, 6), size=int(mask.sum()), p=p / p.sum())
    mood = np.where(score >= 4, 0, np.where(score == 3, 1, 2))

    titles = _pick(rng, [np.array(t, dtype=object) for t in
                         (REVIEW_TITLES_GOOD, REVIEW_TITLES_MIXED, REVIEW_TITLES_BAD)], mood)
    titles[rng.random(n) >= TITLE_SHARE] = None
    sentences = (REVIEW_SENTENCES_GOOD, REVIEW_SENTENCES_MIXED, REVIEW_SENTENCES_BAD)
    pools = [_message_pool(rng, s) for s in sentences]
    messages = _pick(rng, pools, mood)
    share = np.where(mood == 0, MESSAGE_SHARE_HAPPY, MESSAGE_SHARE_UNHAPPY)
    messages[rng.random(n) >= share] = None

    # The survey goes out the day after delivery, or after the estimated date when that comes first.
    sent = np.where(delivered == TS_NULL, orders.estimated[order],
                    np.minimum(delivered, orders.estimated[order]))
    later = np.where(nth > 0, rng.integers(1, 30, n) * nth, 0)
    creation = (sent // DAY + 1 + later) * DAY
    answer = creation + (rng.gamma(1.2, 2.2 * DAY, n) + rng.uniform(0.05, 1.0, n) * DAY).astype(np.int64)

    ids = C.hex_ids(rng, n)
    first_rows = rng.permutation(n_reviewed)
    showcase = first_rows[: min(len(SHOWCASE_MESSAGES), n_reviewed)]
    messages[showcase] = np.array(SHOWCASE_MESSAGES[: len(showcase)], dtype=object)
    # Some review ids cover several orders: a review (id, text and dates) is copied onto the row of an
    # order whose survey went out at about the same time, never earlier, so dates stay in order.
    rest = first_rows[len(showcase) :]
    by_date = rest[np.argsort(creation[rest], kind="stable")]
    n_copies = min(max(1, n - scaled(FULL_DISTINCT_IDS, scale)), len(by_date) // 2)
    pair = rng.choice(len(by_date) // 2, size=n_copies, replace=False)
    targets, sources = by_date[2 * pair], by_date[2 * pair + 1]
    for arr in (ids, score, titles, messages, creation, answer):
        arr[targets] = arr[sources]

    perm = rng.permutation(n)
    return C.Frame(
        "order_reviews",
        {
            "review_id": C.text(ids[perm]),
            "order_id": C.lookup(order[perm], orders.ids),
            "review_score": C.integers(score[perm]),
            "review_comment_title": C.text(titles[perm]),
            "review_comment_message": C.text(messages[perm]),
            "review_creation_date": C.timestamps(creation[perm]),
            "review_answer_timestamp": C.timestamps(answer[perm]),
        },
    )
