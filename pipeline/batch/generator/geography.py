"""Zip prefixes, the geolocation table, and addresses for customers and sellers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.batch.generator import columns as C
from pipeline.batch.generator.counts import apportion
from pipeline.batch.generator.reference import FOREIGN_POINTS, STATES

FULL_PREFIXES = 19_015  # distinct zip prefixes of the full geolocation file
DUPLICATE_SHARE = 0.38  # rows copied from another row of the same prefix (~26% end up identical)
ACCENTED_SHARE = 0.15  # geolocation rows that spell the city with its accents
FULL_FOREIGN = 29  # points outside Brazil in the full file

UF = [s.uf for s in STATES]
_CITIES = [c for s in STATES for c in s.cities]
CITY_LAT = np.array([c.lat for c in _CITIES])
CITY_LNG = np.array([c.lng for c in _CITIES])
# City labels: code 2*c is the plain spelling of city c, 2*c + 1 its accented one (or the plain again).
CITY_LABELS = [name for c in _CITIES for name in (c.name, c.accented or c.name)]
_FIRST_CITY = np.cumsum([0] + [len(s.cities) for s in STATES])
_CAPITAL = np.array([i == 0 for s in STATES for i in range(len(s.cities))])


def _state_candidates(si: int) -> np.ndarray:
    return np.concatenate([np.arange(lo, hi + 1) for lo, hi in STATES[si].zips])


def _city_ranges(si: int) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
    """Global indices of the state's cities, and (lo, hi, city) for those with a CEP range."""
    first = int(_FIRST_CITY[si])
    cities = STATES[si].cities
    ranged = [(c.zips[0], c.zips[1], first + i) for i, c in enumerate(cities) if c.zips]
    return np.arange(first, first + len(cities)), ranged


def cities_for(rng: np.random.Generator, si: int, prefixes: np.ndarray) -> np.ndarray:
    """The city (global index) of each zip prefix of state ``si``: its range's city, else a town."""
    all_cities, ranged = _city_ranges(si)
    with_range = {r[2] for r in ranged}
    towns = np.array([c for c in all_cities if c not in with_range] or all_cities[1:] or all_cities)
    city = towns[rng.integers(0, len(towns), len(prefixes))]
    for lo, hi, ci in ranged:
        city[(prefixes >= lo) & (prefixes <= hi)] = ci
    return city


@dataclass(frozen=True)
class Places:
    """The distinct zip prefixes of the geolocation table."""

    prefix: np.ndarray  # int, ascending within each state
    state: np.ndarray  # index into STATES
    city: np.ndarray  # global city index
    lat: np.ndarray  # centre of the prefix
    lng: np.ndarray
    weight: np.ndarray  # how populous: customers, sellers and geolocation rows follow it


def build_places(rng: np.random.Generator, n_prefixes: int) -> Places:
    """Pick ``n_prefixes`` zip prefixes across the 27 states, with a city and a centre each."""
    quota = apportion([s.customers**0.8 for s in STATES], max(n_prefixes, len(STATES)), minimum=1)
    prefixes, states, cities = [], [], []
    for si in range(len(STATES)):
        cand = _state_candidates(si)
        ranged = _city_ranges(si)[1]
        boost = np.ones(len(cand))
        for lo, hi, ci in ranged:
            boost[(cand >= lo) & (cand <= hi)] = 2.0 if _CAPITAL[ci] else 1.5
        k = min(int(quota[si]), len(cand) * 9 // 10)
        # Weighted sampling without replacement (Efraimidis-Spirakis keys).
        keys = np.log(rng.random(len(cand))) / boost
        chosen = np.sort(cand[np.argsort(-keys, kind="stable")[:k]])
        prefixes.append(chosen)
        states.append(np.full(k, si))
        cities.append(cities_for(rng, si, chosen))
    prefix = np.concatenate(prefixes)
    state = np.concatenate(states)
    city = np.concatenate(cities)
    n = len(prefix)
    spread = np.where(_CAPITAL[city], 0.06, 0.04)
    lat = CITY_LAT[city] + rng.normal(0, 1, n) * spread
    lng = CITY_LNG[city] + rng.normal(0, 1, n) * spread
    lat, lng = _clip_to_state(state, lat, lng)
    weight = rng.lognormal(0.0, 1.2, n)
    return Places(prefix, state, city, lat, lng, weight)


def _clip_to_state(state: np.ndarray, lat: np.ndarray, lng: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    box = np.array([s.box for s in STATES])[state]
    return np.clip(lat, box[:, 0], box[:, 1]), np.clip(lng, box[:, 2], box[:, 3])


def zip_text(prefixes: np.ndarray) -> np.ndarray:
    """Zip prefixes as 5-digit text, leading zeros kept."""
    return np.array([f"{p:05d}" for p in prefixes.tolist()], dtype=object)


def build_geolocation(rng: np.random.Generator, places: Places, n_rows: int, scale: float) -> C.Frame:
    """Many points per prefix around its centre, with duplicates, accent variants and foreign points."""
    n_places = len(places.prefix)
    counts = apportion(places.weight, n_rows, minimum=1 if n_rows >= n_places else 0)
    place = np.repeat(np.arange(n_places), counts)
    n = len(place)
    jitter = rng.choice([0.004, 0.012, 0.03], size=n, p=[0.45, 0.4, 0.15])
    lat = places.lat[place] + rng.normal(0, 1, n) * jitter
    lng = places.lng[place] + rng.normal(0, 1, n) * jitter
    lat, lng = _clip_to_state(places.state[place], lat, lng)
    coarse = rng.random(n) < 0.12  # some sources give only a few decimals
    lat = np.where(coarse, np.round(lat, 6), np.round(lat, 14))
    lng = np.where(coarse, np.round(lng, 6), np.round(lng, 14))
    city = places.city[place]
    accented = np.array([CITY_LABELS[2 * c] != CITY_LABELS[2 * c + 1] for c in range(len(_CITIES))])
    city_code = 2 * city + ((rng.random(n) < ACCENTED_SHARE) & accented[city])
    # Exact duplicates: copy every field from a random row of the same prefix.
    starts = np.cumsum(counts) - counts
    src = starts[place] + (rng.random(n) * counts[place]).astype(np.int64)
    dup = rng.random(n) < DUPLICATE_SHARE
    for arr in (lat, lng, city_code):
        arr[dup] = arr[src[dup]]
    # A few points far outside Brazil, the extreme ones first.
    n_foreign = min(n, max(2, round(FULL_FOREIGN * scale)))
    foreign = rng.choice(n, size=n_foreign, replace=False)
    pts = np.array(FOREIGN_POINTS)[np.arange(n_foreign) % len(FOREIGN_POINTS)]
    lat[foreign], lng[foreign] = pts[:, 0], pts[:, 1]
    # The real file runs roughly by prefix: sorted by its first three digits, shuffled within.
    order = np.lexsort((rng.random(n), places.prefix[place] // 100))
    return C.Frame(
        "geolocation",
        {
            "geolocation_zip_code_prefix": C.lookup(place[order], zip_text(places.prefix)),
            "geolocation_lat": C.floats(lat[order]),
            "geolocation_lng": C.floats(lng[order]),
            "geolocation_city": C.lookup(city_code[order], CITY_LABELS),
            "geolocation_state": C.lookup(places.state[place][order], UF),
        },
    )


@dataclass(frozen=True)
class Addresses:
    """Zip prefix, city and state of customers or sellers."""

    prefix: np.ndarray
    city: np.ndarray  # global city index
    state: np.ndarray

    def city_names(self) -> np.ndarray:
        return np.array([CITY_LABELS[2 * c] for c in self.city.tolist()], dtype=object)


def draw_addresses(
    rng: np.random.Generator, places: Places, n: int, state_weights: np.ndarray, n_unmatched: int
) -> Addresses:
    """``n`` addresses: a state by ``state_weights``, then a prefix of it by population.

    ``n_unmatched`` of them get a prefix of their state that has no geolocation row.
    """
    present = np.flatnonzero(np.bincount(places.state, minlength=len(STATES)) > 0)
    w = np.zeros(len(STATES))
    w[present] = np.asarray(state_weights, dtype=np.float64)[present]
    state = rng.choice(len(STATES), size=n, p=w / w.sum())
    idx = np.empty(n, dtype=np.int64)
    for si in np.unique(state).tolist():
        rows = np.flatnonzero(state == si)
        pool = np.flatnonzero(places.state == si)
        pw = places.weight[pool]
        idx[rows] = pool[rng.choice(len(pool), size=len(rows), p=pw / pw.sum())]
    prefix = places.prefix[idx].copy()
    city = places.city[idx].copy()
    unmatched = np.sort(rng.choice(n, size=min(n, n_unmatched), replace=False))
    for si in np.unique(state[unmatched]).tolist():
        rows = unmatched[state[unmatched] == si]
        cand = _state_candidates(si)
        cand = cand[~np.isin(cand, places.prefix)]
        if len(cand):
            prefix[rows] = cand[rng.integers(0, len(cand), len(rows))]
            city[rows] = cities_for(rng, si, prefix[rows])
    return Addresses(prefix, city, state)
