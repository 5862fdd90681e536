"""Wall-clock timing of repeated calls: the one loop behind `keras_csp.explore`'s latencies and the
benchmarks' rows.

Standard library only, so that every interpreter the benchmarks start (the LiteRT venv, the
PyTorch reference venv) can import it.

    times = time_calls(lambda: model(x), runs=20, warmup=5)   # milliseconds, one per timed call
    summary(times)   # {"ms": median, "min_ms": fastest, "p90_ms": 90th percentile, "runs": 20}
"""

import statistics
import time


def time_calls(fn, runs=10, warmup=2):
    """Wall-clock milliseconds of `runs` calls of `fn()` after `warmup` untimed ones."""
    if runs < 1 or warmup < 0:
        raise ValueError(f"runs={runs!r}, warmup={warmup!r}; allowed: runs >= 1, warmup >= 0.")
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return times


def summary(times_ms):
    """The median (`ms`), fastest (`min_ms`) and 90th-percentile (`p90_ms`, the nearest rank of the
    sorted times) of a list of times, and how many there are (`runs`)."""
    if not times_ms:
        raise ValueError("times_ms=[] is not allowed; allowed: at least one time.")
    ordered = sorted(times_ms)
    return {
        "ms": statistics.median(ordered),
        "min_ms": ordered[0],
        "p90_ms": ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))],
        "runs": len(ordered),
    }
