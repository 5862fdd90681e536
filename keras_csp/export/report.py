"""The report every export prints: what was written, how big, which ops, GPU verdict, notes."""

import dataclasses
import json


def accelerator_lines(check):
    """The report's lines for an `export.gpu.accelerator_check` result."""
    # Why the check ran on SwiftShader, where the machine's own Vulkan gave no device.
    note = [f"  {check['note']}"] if check.get("note") else []
    if not check.get("started"):
        return [f"GPU accelerator: did not start ({check.get('reason')})", *note]
    if "error" in check:
        return [f"GPU accelerator: the run failed: {check['error']}", *note]
    diffs = ", ".join(
        f"{name} {value:.3g}" + (
            f" ({check['max_steps'][name]:g} quantization steps)" if name in check["max_steps"]
            else ""
        )
        for name, value in check["max_difference"].items()
    )
    agrees = "agrees with the CPU" if check["agrees"] else "DISAGREES with the CPU"
    return [
        f"GPU accelerator (LiteRT ML Drift, {check['adapter']}): {check['summary']}",
        f"  {agrees} (fp32 on the GPU); max difference: {diffs}",
        *note,
    ]


@dataclasses.dataclass
class ExportReport:
    path: str
    format: str  # "savedmodel" or "tflite"
    quantize: str  # "none", "fp16", "dynamic", "int8", "qat" ("none" for a SavedModel)
    size_bytes: int
    ops: dict  # op name -> count (TFLite ops, or TF op types of the serving function)
    kind: str  # "classifier", "detector" or "backbone"
    inputs: list  # [{"name", "shape", "dtype", "quantization"}]
    outputs: list
    gpu_compatible: bool = None  # None: not a TFLite file
    # LiteRT's GPU accelerator run (export.gpu.accelerator_check); None: not a TFLite file
    gpu_accelerator: dict = None
    analyzer_verdict: str = ""
    gpu_issues: list = dataclasses.field(default_factory=list)
    notes: list = dataclasses.field(default_factory=list)
    analyzer_output: str = dataclasses.field(default="", repr=False)

    def to_dict(self, analyzer_output=False):
        d = dataclasses.asdict(self)
        if not analyzer_output:
            d.pop("analyzer_output")
        return d

    def to_json(self):
        return json.dumps(self.to_dict(), indent=2, default=str)

    def summary(self):
        mode = f" ({self.quantize})" if self.format == "tflite" else ""
        lines = [
            f"exported {self.kind} to {self.path}: {self.format}{mode}, "
            f"{self.size_bytes:,} bytes ({self.size_bytes / 2**20:.2f} MiB)",
        ]
        for label, tensors in (("input", self.inputs), ("output", self.outputs)):
            for t in tensors:
                q = t.get("quantization")
                qtext = f", scale {q[0]:.6g} zero point {q[1]}" if q and q[0] else ""
                lines.append(f"  {label:<6} {t['name']}: {t['shape']} {t['dtype']}{qtext}")
        ops = ", ".join(f"{name} x{count}" for name, count in sorted(self.ops.items()))
        lines.append(f"  ops ({sum(self.ops.values())}): {ops}")
        if self.gpu_compatible is None:
            lines.append(f"  GPU delegate: {self.analyzer_verdict or 'n/a'}")
        else:
            ran = bool(self.gpu_accelerator and self.gpu_accelerator.get("started"))
            ran = ran and "error" not in self.gpu_accelerator
            verdict = "compatible" if self.gpu_compatible else "NOT compatible"
            how = "the accelerator run" if ran else "static checks only"
            lines.append(f"  GPU delegate: {verdict} ({how})")
            if self.gpu_accelerator is not None:
                lines.extend(f"    {line}" for line in accelerator_lines(self.gpu_accelerator))
            lines.append(f"    analyzer: {self.analyzer_verdict}")
            if self.gpu_issues:
                lines.extend(f"    op check: {issue}" for issue in self.gpu_issues)
            else:
                lines.append("    op check: every op is one the GPU delegate implements, <= 4-D")
        lines.extend(f"  note: {note}" for note in self.notes)
        return "\n".join(lines)

    def __str__(self):
        return self.summary()
