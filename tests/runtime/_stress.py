"""What the runtime's stress tests share: an unload / load cycler and the exact-accounting check."""

from __future__ import annotations

import random
import time

from devicefit.runtime import Model


def cycler(model: Model, cycles: int, seed: int, errors: list[str], max_pause_s: float = 0.012) -> None:
    """Unload the model ``cycles`` times at random moments, loading it again half of the time."""
    rng = random.Random(seed)
    for _ in range(cycles):
        try:
            time.sleep(rng.random() * max_pause_s)
            model.unload()
            if rng.random() < 0.5:
                model.load()
        except Exception as e:
            errors.append(f"{type(e).__name__}: {e}")


def assert_exact_accounting(model: Model, outcomes: list[str], calls: int) -> None:
    """Every ``predict_async`` call is counted once, as the outcome its caller saw; none ended unexpectedly."""
    assert not [o for o in outcomes if o.startswith("unexpected")], [
        o for o in outcomes if o.startswith("unexp")
    ]
    s = model.stats
    assert len(outcomes) == calls
    assert s.submitted == len(outcomes) - outcomes.count("never called")
    assert s.submitted == s.completed + s.failed + s.cancelled + s.dropped + s.rejected
    assert (s.completed, s.failed, s.dropped) == (
        outcomes.count("completed"),
        outcomes.count("failed"),
        outcomes.count("dropped"),
    )
    # a request cancelled after it finished running counts as cancelled in the stats only when its result was
    # discarded; the caller always sees CancelledError
    assert s.cancelled == outcomes.count("cancelled")
