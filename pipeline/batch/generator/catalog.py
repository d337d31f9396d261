"""Sellers, products and the category translation table."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.batch.generator import columns as C
from pipeline.batch.generator.counts import cap_share, scaled
from pipeline.batch.generator.geography import UF, Addresses, Places, draw_addresses, zip_text
from pipeline.batch.generator.reference import (
    CATEGORY_PRODUCT_WEIGHTS,
    CATEGORY_TRANSLATIONS,
    ODD_SELLER_CITIES,
    STATES,
    UNTRANSLATED_CATEGORIES,
)

CATEGORIES = [pt for pt, _ in CATEGORY_TRANSLATIONS] + list(UNTRANSLATED_CATEGORIES)
MAX_PRICE_CENTS = 673_500


@dataclass(frozen=True)
class Sellers:
    ids: np.ndarray
    address: Addresses
    popularity: np.ndarray
    frame: C.Frame


@dataclass(frozen=True)
class Products:
    ids: np.ndarray
    seller: np.ndarray  # index into Sellers.ids
    price_cents: np.ndarray
    freight_cents: np.ndarray
    popularity: np.ndarray
    frame: C.Frame


def translation_frame() -> C.Frame:
    pt = np.array([p for p, _ in CATEGORY_TRANSLATIONS], dtype=object)
    en = np.array([e for _, e in CATEGORY_TRANSLATIONS], dtype=object)
    return C.Frame(
        "product_category_name_translation",
        {"product_category_name": C.text(pt), "product_category_name_english": C.text(en)},
    )


def build_sellers(rng: np.random.Generator, places: Places, n: int, scale: float) -> Sellers:
    """Sellers, ~60% in SP; a few with no geolocation row and a few oddly typed cities."""
    weights = np.array([s.sellers for s in STATES], dtype=np.float64) + 0.05
    address = draw_addresses(rng, places, n, weights, scaled(7, scale, 1))
    city = address.city_names()
    n_odd = min(len(ODD_SELLER_CITIES), scaled(4, scale, 1))
    for uf, name in ODD_SELLER_CITIES[:n_odd]:
        rows = np.flatnonzero(address.state == UF.index(uf))
        if len(rows):
            city[rows[rng.integers(0, len(rows))]] = name
    ids = C.hex_ids(rng, n)
    frame = C.Frame(
        "sellers",
        {
            "seller_id": C.text(ids),
            "seller_zip_code_prefix": C.text(zip_text(address.prefix)),
            "seller_city": C.text(city),
            "seller_state": C.lookup(address.state, UF),
        },
    )
    return Sellers(ids, address, cap_share(rng.lognormal(0.0, 1.35, n), 0.02), frame)


def _forced(rng: np.random.Generator, free: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Take ``k`` random rows out of ``free``; return (taken, still free)."""
    k = min(k, len(free))
    pick = rng.choice(len(free), size=k, replace=False)
    mask = np.ones(len(free), dtype=bool)
    mask[pick] = False
    return free[pick], free[mask]


def _prices(rng: np.random.Generator, category: np.ndarray) -> np.ndarray:
    """Log-normal prices (median ~75), a per-category level, shop-like endings (.90, .99, .00)."""
    n = len(category)
    level = np.append(rng.normal(0.0, 0.35, len(CATEGORIES)), 0.0)  # last: no category
    log_price = np.log(72.0) + level[category] + rng.normal(0.0, 0.95, n)
    # Stretch the top 1% so the dearest product costs what the real one does.
    top, high = np.quantile(log_price, 0.99), log_price.max()
    if high > top:
        stretch = (np.log(MAX_PRICE_CENTS / 100) - top) / (high - top)
        log_price = np.where(log_price > top, top + (log_price - top) * max(stretch, 1.0), log_price)
    whole = np.maximum(np.floor(np.exp(log_price)), 0)
    ending = rng.choice([90, 99, 0, 50], size=n, p=[0.4, 0.25, 0.2, 0.15])
    cents = np.where(rng.random(n) < 0.2, rng.integers(0, 100, n), ending)
    price = (whole * 100 + cents).astype(np.int64)
    price[price > MAX_PRICE_CENTS] = MAX_PRICE_CENTS
    return np.maximum(price, 85)


def build_products(rng: np.random.Generator, sellers: Sellers, n: int, scale: float) -> Products:
    """The catalogue with its nulls, zero weights and untranslated categories."""
    free = rng.permutation(n)
    no_category, free = _forced(rng, free, scaled(610, scale, 1))
    category = np.full(n, -1, dtype=np.int64)
    for name, full in zip(UNTRANSLATED_CATEGORIES, (3, 10), strict=True):
        rows, free = _forced(rng, free, scaled(full, scale, 1))
        category[rows] = CATEGORIES.index(name)
    translated = len(CATEGORY_TRANSLATIONS)
    w = np.array([CATEGORY_PRODUCT_WEIGHTS[c] for c in CATEGORIES[:translated]], dtype=np.float64)
    category[free] = rng.choice(translated, size=len(free), p=w / w.sum())

    name_len = np.clip(np.round(76 - rng.gamma(2.5, 11.0, n)), 5, 76).astype(np.int64)
    desc_len = np.clip(np.round(rng.lognormal(np.log(600), 0.75, n)), 4, 3992).astype(np.int64)
    photos = np.clip(rng.geometric(0.46, n), 1, 20).astype(np.int64)
    for arr in (name_len, desc_len, photos):
        arr[no_category] = C.INT_NULL

    size = rng.normal(0, 1, n)
    weight = np.clip(np.round(np.exp(np.log(700) + 1.55 * size)), 2, 40425).astype(np.int64)
    length = np.clip(np.round(25 * np.exp(0.45 * size + rng.normal(0, 0.25, n))), 7, 105).astype(np.int64)
    height = np.clip(np.round(13 * np.exp(0.6 * size + rng.normal(0, 0.35, n))), 2, 105).astype(np.int64)
    width = np.clip(np.round(20 * np.exp(0.4 * size + rng.normal(0, 0.25, n))), 6, 118).astype(np.int64)
    sized = np.setdiff1d(np.arange(n), no_category)
    no_size, sized = _forced(rng, rng.permutation(sized), scaled(2, scale, 1))
    for arr in (weight, length, height, width):
        arr[no_size] = C.INT_NULL
    zero, _ = _forced(rng, sized, scaled(4, scale, 1))
    weight[zero] = 0

    # Every seller sells something: the first products go one to each seller, the rest by popularity.
    n_sellers = len(sellers.ids)
    seller = rng.choice(n_sellers, size=n, p=sellers.popularity / sellers.popularity.sum())
    first = rng.choice(n, size=min(n, n_sellers), replace=False)
    seller[first] = rng.permutation(n_sellers)[: len(first)]

    price = _prices(rng, category)
    grams = np.where(weight > 0, weight, 700).astype(np.float64)
    freight = rng.lognormal(np.log(1650), 0.55, n) * (grams / 700) ** 0.15
    freight_cents = np.clip(np.round(freight), 0, 40968).astype(np.int64)

    ids = C.hex_ids(rng, n)
    frame = C.Frame(
        "products",
        {
            "product_id": C.text(ids),
            "product_category_name": C.lookup(category, CATEGORIES),
            "product_name_lenght": C.integers(name_len),
            "product_description_lenght": C.integers(desc_len),
            "product_photos_qty": C.integers(photos),
            "product_weight_g": C.integers(weight),
            "product_length_cm": C.integers(length),
            "product_height_cm": C.integers(height),
            "product_width_cm": C.integers(width),
        },
    )
    return Products(ids, seller, price, freight_cents, cap_share(rng.lognormal(0.0, 1.6, n), 0.006), frame)
