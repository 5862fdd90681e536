"""The CSPNet paper's numbers that notebook 01 overlays on its sweeps."""

import dataclasses


@dataclasses.dataclass(frozen=True)
class PaperPoint:
    table: str
    family: str
    label: str
    fusion: str  # "full" / "first" / "last" in this package's terms, "" when the paper does not say
    gamma: float
    bflops: float
    top1: float
    baseline_bflops: float

    @property
    def flops_ratio(self):
        return self.bflops / self.baseline_bflops


_PELEE_BASELINE_BFLOPS = 1.017  # PeleeNet [37], Table 1 (70.7 % top-1)
# CSPNet paper (arXiv 1911.11929), Table 1 "Ablation of CSPNet on ImageNet" (PeleeNet backbone),
# as transcribed in the project's fact sheet of the paper's numbers (shared/reference/
# paper_tables.md, section 1). The paper's rows map to this package's fusions as README.md's
# Table-1 reproduction does: "CSP (fusion first)" -> "first", "CSP (fusion last)" -> "last",
# "CSPPeleeNet" -> "full".
# BFLOPs count 2 per multiply-add, probably at 224x224 (inferred in paper_tables.md).
PAPER_TABLE1 = tuple(
    PaperPoint("Table 1", "PeleeNet", label, fusion, gamma, bflops, top1, _PELEE_BASELINE_BFLOPS)
    for label, fusion, gamma, top1, bflops in (
        ("CSP (fusion first)", "first", 0.75, 68.4, 0.649),
        ("CSP (fusion first)", "first", 0.5, 69.2, 0.755),
        ("CSP (fusion first)", "first", 0.25, 70.0, 0.861),
        ("CSP (fusion last)", "last", 0.75, 69.2, 0.716),
        ("CSP (fusion last)", "last", 0.5, 70.6, 0.804),
        ("CSP (fusion last)", "last", 0.25, 70.8, 0.902),
        ("CSPPeleeNet", "full", 0.75, 70.4, 0.800),
        ("CSPPeleeNet", "full", 0.5, 70.9, 0.888),
        ("CSPPeleeNet", "full", 0.25, 71.5, 0.986),
    )
)
# The same paper, Table 3 (paper_tables.md, section 3): CSPResNeXt-50 7.93 BFLOPs (77.9 %) against
# ResNeXt-50 10.11 (77.8 %), at the authors' 256x256, with their default split γ = 0.5. The paper
# does not name its fusion, so the point is drawn without one.
PAPER_TABLE3 = (PaperPoint("Table 3", "ResNeXt", "CSPResNeXt-50", "", 0.5, 7.93, 77.9, 10.11),)
PAPER_POINTS = PAPER_TABLE1 + PAPER_TABLE3


def paper_points(family):
    return [p for p in PAPER_POINTS if p.family == family]
