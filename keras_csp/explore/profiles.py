"""`keras_csp.profile` results per (family, γ, fusion, input size), each computed once."""

import dataclasses
import time

from keras_csp.explore.families import FAMILIES, FUSIONS, check_family, default_input_size
from keras_csp.explore.latency import measure_latency


@dataclasses.dataclass
class ProfileResult:
    """One (family, γ, fusion) point: `keras_csp.profile`'s numbers, or why it cannot be built."""

    family: str
    model: str
    part_ratio: float
    fusion: str  # "full" / "first" / "last", or "none" for the non-CSP baseline
    input_size: int
    params: int = None
    flops: int = None
    activation_bytes: int = None
    stages: list = dataclasses.field(default_factory=list)
    error: str = None
    seconds: float = 0.0

    @property
    def ok(self):
        return self.error is None

    @property
    def gflops(self):
        return None if self.flops is None else self.flops / 1e9

    @property
    def activation_mib(self):
        return None if self.activation_bytes is None else self.activation_bytes / 2**20


def _model_of(family, part_ratio, fusion):
    """`(model name, build_model keyword arguments)` of a point: the family's CSP model with its γ
    and fusion, or (`fusion="none"`) its non-CSP baseline as built by default."""
    csp, plain = FAMILIES[family]
    if fusion == "none":
        return plain, {}
    return csp, {"part_ratio": part_ratio, "fusion": fusion}


def _profile_quietly(name, input_size, **kwargs):
    """`keras_csp.profile` of a model built in a `StatelessScope`: weights are never initialized."""
    import keras

    from keras_csp.profiler import profile

    with keras.StatelessScope():
        return profile(name, (input_size, input_size, 3), **kwargs)


class ProfileCache:
    """`keras_csp.profile` results per (family, γ, fusion, input size), each computed once.

    Building a full-size model to profile it takes a second or two on a CPU; a cached point answers
    in microseconds. A γ that leaves a CSP path empty (the `ValueError` of `build_model`) is cached
    as a `ProfileResult` with `error` set, so that callers show the message instead of a traceback.
    """

    def __init__(self, input_size=None):
        self.input_size = input_size
        self._results = {}
        self._latency = {}

    def size_of(self, family):
        return self.input_size or default_input_size(family)

    def _key(self, family, part_ratio, fusion):
        check_family(family)
        if fusion == "none":
            return (family, None, "none", self.size_of(family))
        if fusion not in FUSIONS:
            raise ValueError(
                f"fusion={fusion!r} is not allowed; allowed: {', '.join(FUSIONS)} or 'none'."
            )
        return (family, round(float(part_ratio), 4), fusion, self.size_of(family))

    def cached(self, family, part_ratio, fusion):
        return self._key(family, part_ratio, fusion) in self._results

    def __len__(self):
        return len(self._results)

    def get(self, family, part_ratio=0.5, fusion="full"):
        """The `ProfileResult` of one point (`fusion="none"`: the family's non-CSP baseline)."""
        key = self._key(family, part_ratio, fusion)
        if key not in self._results:
            self._results[key] = self._compute(*key)
        return self._results[key]

    def baseline(self, family):
        return self.get(family, None, "none")

    def _compute(self, family, part_ratio, fusion, size):
        name, kwargs = _model_of(family, part_ratio, fusion)
        result = ProfileResult(family, name, part_ratio, fusion, size)
        start = time.perf_counter()
        try:
            p = _profile_quietly(name, size, **kwargs)
        except ValueError as e:
            result.error = str(e)
        else:
            result.params, result.flops = p.params, p.flops
            result.activation_bytes = p.activation_bytes
            result.stages = [dataclasses.asdict(s) for s in p.stages]
        result.seconds = time.perf_counter() - start
        return result

    def sweep(self, family, gammas, fusions=FUSIONS, progress=None):
        """`{fusion: [ProfileResult for each γ]}`, computing only what is not cached yet.

        `progress(done, total)` is called after each point (e.g. to move a progress bar).
        """
        todo = [(g, f) for f in fusions for g in gammas]
        for i, (g, f) in enumerate(todo):
            self.get(family, g, f)
            if progress is not None:
                progress(i + 1, len(todo))
        return {f: [self.get(family, g, f) for g in gammas] for f in fusions}

    def latency(self, family, part_ratio=0.5, fusion="full", runs=10, warmup=2):
        """Measured batch-1 CPU latency (a `LatencyResult`) of a point, cached; None if it cannot
        be built (see `get(...).error`)."""
        key = self._key(family, part_ratio, fusion)
        if not self.get(family, part_ratio, fusion).ok:
            return None
        if key not in self._latency or self._latency[key].runs < runs:
            name, kwargs = _model_of(family, key[1], fusion)
            self._latency[key] = measure_latency(name, key[3], runs=runs, warmup=warmup, **kwargs)
        return self._latency[key]

    def cached_latency(self, family, part_ratio, fusion):
        return self._latency.get(self._key(family, part_ratio, fusion))
