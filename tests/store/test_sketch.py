"""The log-bucket sketch: stated error bound against exact percentiles, merging, JSON."""

from __future__ import annotations

import base64
import json
import math
import random

import pytest

from checker.store.sketch import ALPHA, Sketch


def exact_lower(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[math.floor(q * (len(ordered) - 1))]


def within_bound(estimate: float | None, exact: float) -> bool:
    assert estimate is not None
    return abs(estimate - exact) <= ALPHA * exact * (1 + 1e-9)


DISTRIBUTIONS = {
    "lognormal": lambda rng: rng.lognormvariate(6.0, 1.0),
    "uniform": lambda rng: rng.uniform(50, 5000),
    "pareto": lambda rng: 10 * rng.paretovariate(1.2),
    "tight": lambda rng: 1000 + rng.random(),
    "tiny": lambda rng: rng.uniform(1e-4, 1e-2),
}


def test_error_bound_is_about_one_percent() -> None:
    assert 0.009 < ALPHA < 0.01


@pytest.mark.parametrize("name", sorted(DISTRIBUTIONS))
def test_quantiles_within_stated_error(name: str) -> None:
    rng = random.Random(name)
    values = [DISTRIBUTIONS[name](rng) for _ in range(5000)]
    sketch = Sketch(values)
    assert sketch.count == len(values)
    for q in (0.0, 0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0):
        assert within_bound(sketch.quantile(q), exact_lower(values, q)), q


def test_merge_equals_sketch_of_union() -> None:
    rng = random.Random(1)
    parts = [[rng.lognormvariate(5, 0.8) for _ in range(rng.randint(0, 300))] for _ in range(24)]
    merged = Sketch()
    for part in parts:
        merged.merge(Sketch(part))
    union = [v for part in parts for v in part]
    assert merged == Sketch(union)
    assert merged.count == len(union)
    for q in (0.5, 0.95, 0.99):
        assert within_bound(merged.quantile(q), exact_lower(union, q))


def test_json_round_trip_is_compact_and_exact() -> None:
    rng = random.Random(2)
    sketch = Sketch(rng.uniform(100, 200) for _ in range(1000))
    sketch.add(0.0, 3)
    text = json.dumps(sketch.to_json())
    data = json.loads(text)
    assert data["z"] == 3
    # 100..200 ms spans log_1.02(2) = 35 buckets, whatever the sample size; counts of up
    # to 255 take one byte each, so the stored form stays around a hundred characters.
    assert data["w"] == "B"
    assert len(text) < 100
    restored = Sketch.from_json(data)
    assert restored == sketch
    assert restored.count == 1003
    assert Sketch().merge_json(data).quantile(0.5) == sketch.quantile(0.5)


def test_extend_equals_adding_one_by_one() -> None:
    rng = random.Random(3)
    values = [rng.lognormvariate(3, 2) for _ in range(2000)] + [0.0, -1.0]
    one_by_one = Sketch()
    for v in values:
        one_by_one.add(v)
    assert Sketch(values) == one_by_one
    assert Sketch(values).count == one_by_one.count == 2002


def test_wide_counts_are_encoded_wider() -> None:
    sketch = Sketch()
    sketch.add(5.0, 70_000)
    sketch.add(50.0, 3)
    data = json.loads(json.dumps(sketch.to_json()))
    assert data["w"] == "I"
    restored = Sketch.from_json(data)
    assert restored.count == 70_003
    assert restored == sketch
    assert within_bound(restored.quantile(1.0), 50.0)


def test_merge_grows_in_both_directions() -> None:
    middle, low, high = Sketch([100.0]), Sketch([1.0, 2.0]), Sketch([10_000.0])
    merged = Sketch().merge(middle).merge(low).merge(high)
    assert merged == Sketch([1.0, 2.0, 100.0, 10_000.0])
    assert within_bound(merged.quantile(0.0), 1.0)
    assert within_bound(merged.quantile(1.0), 10_000.0)
    assert Sketch().to_json() == {}


def test_zero_negative_and_nan_land_in_zero_bucket() -> None:
    sketch = Sketch([0.0, -5.0, float("nan"), 10.0])
    assert sketch.count == 4
    assert sketch.quantile(0.0) == 0.0
    assert sketch.quantile(0.5) == 0.0  # rank 1 of 4: still a zero
    top = sketch.quantile(1.0)
    assert top is not None and abs(top - 10.0) <= ALPHA * 10.0


def test_empty_sketch_and_bad_quantile() -> None:
    assert Sketch().quantile(0.5) is None
    assert not Sketch()
    assert Sketch.from_json(None).count == 0
    with pytest.raises(ValueError):
        Sketch([1.0]).quantile(1.5)


def test_single_value_is_reported_within_bound() -> None:
    for value in (0.001, 1.0, 123.456, 98765.0):
        assert within_bound(Sketch([value]).quantile(0.99), value)


def test_merge_json_of_every_width_and_offset_equals_the_union() -> None:
    """Stored forms merged through the 64-bit lane accumulator: one-, two- and four-byte
    counts, offsets below and above the first one, zeros, mixed with add() and merge()."""
    rng = random.Random(4)
    parts: list[list[float]] = []
    for i in range(40):
        scale = rng.choice((0.01, 1.0, 300.0, 1e6))
        part = [rng.lognormvariate(0, 0.5) * scale for _ in range(rng.randint(0, 200))]
        if i % 7 == 0:
            part += [0.0] * 3
        parts.append(part)
    heavy = Sketch()
    heavy.add(42.0, 70_000)  # stored with 4-byte counts
    heavy.add(43.5, 300)  # 2-byte range in the same run
    stored = [json.loads(json.dumps(Sketch(p).to_json())) for p in parts]
    stored.append(json.loads(json.dumps(heavy.to_json())))
    assert {d.get("w") for d in stored} >= {"B", "I"}

    merged = Sketch([7.0])
    for i, data in enumerate(stored):
        merged.merge_json(data)
        if i == 20:  # reading in the middle folds the accumulator; merging goes on after
            assert merged.count == 1 + sum(len(p) for p in parts[:21])
            merged.add(9.0)
            merged.merge(Sketch([0.5]))
    union = [7.0, 9.0, 0.5, *(v for p in parts for v in p), *([42.0] * 70_000), *([43.5] * 300)]
    expected = Sketch(union)
    assert merged.count == len(union)
    assert merged == expected
    for q in (0.0, 0.1, 0.5, 0.9, 0.99, 1.0):
        assert merged.quantile(q) == expected.quantile(q)


def test_counts_past_four_bytes_survive_merging() -> None:
    # One bucket holding the largest count a stored run can hold (2**32 - 1).
    big = Sketch([5.0]).to_json()
    big["w"], big["b"] = "I", base64.b64encode((2**32 - 1).to_bytes(4, "little")).decode()
    merged = Sketch().merge_json(big).merge_json(big).merge_json(big)
    assert merged.count == 3 * (2**32 - 1)
    assert within_bound(merged.quantile(0.5), 5.0)
