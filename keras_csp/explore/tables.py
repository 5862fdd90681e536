"""HTML tables of the notebooks: one point against its baseline, and rows of dicts."""

import html


def _fmt(value, spec, suffix=""):
    return "–" if value is None else f"{value:{spec}}{suffix}"


def _ratio(a, b):
    return "–" if a is None or not b else f"{a / b:.3f}"


_TABLE_STYLE = (
    "<style>.csp-table{border-collapse:collapse;margin:4px 0}"
    ".csp-table td,.csp-table th{padding:3px 12px;border-bottom:1px solid #ddd}"
    ".csp-table td{text-align:right;font-variant-numeric:tabular-nums}</style>"
)


def profile_html(result, baseline, latency=None, baseline_latency=None):
    """The notebook-01 table of one point against its baseline, as HTML.

    Stable classes for tests and styling: `csp-table`, `csp-params` (the CSP model's parameter
    count, formatted `21,616,168`), `csp-flops`, `csp-memory`, `csp-latency`, and `csp-message`
    for a point that cannot be built.
    """
    title = (
        f"{html.escape(result.model)} (γ = {result.part_ratio:.2f}, fusion "
        f"{html.escape(result.fusion)}) against {html.escape(baseline.model)} at "
        f"{result.input_size}x{result.input_size}"
    )
    if not result.ok:
        return (
            f'<div class="csp-message" style="color:#a00"><b>{html.escape(result.model)}: '
            f"γ = {result.part_ratio:.2f} with fusion {html.escape(result.fusion)} gives no model."
            f"</b><br>{html.escape(result.error)}<br>Move the γ slider: other values work.</div>"
        )
    lat = latency.median_ms if latency else None
    base_lat = baseline_latency.median_ms if baseline_latency else None
    rows = [
        ("parameters", "csp-params", _fmt(result.params, ","), _fmt(baseline.params, ","),
         _ratio(result.params, baseline.params)),
        ("GFLOPs", "csp-flops", _fmt(result.gflops, ".3f"), _fmt(baseline.gflops, ".3f"),
         _ratio(result.flops, baseline.flops)),
        ("activation memory (MiB)", "csp-memory", _fmt(result.activation_mib, ".1f"),
         _fmt(baseline.activation_mib, ".1f"),
         _ratio(result.activation_bytes, baseline.activation_bytes)),
        ("CPU latency, batch 1 (ms)", "csp-latency",
         _fmt(lat, ".1f") if latency else "not measured", _fmt(base_lat, ".1f")
         if baseline_latency else "not measured", _ratio(lat, base_lat)),
    ]
    body = "".join(
        f'<tr><th style="text-align:left">{label}</th><td class="{cls}">{ours}</td>'
        f'<td class="{cls}-baseline">{base}</td><td>{ratio}</td></tr>'
        for label, cls, ours, base, ratio in rows
    )
    return (
        _TABLE_STYLE
        + f'<table class="csp-table"><caption style="text-align:left">{title}</caption>'
        f"<tr><th></th><th>CSP</th><th>non-CSP baseline</th><th>ratio</th></tr>{body}</table>"
        "<small>FLOPs: 2 per multiply-add (the paper's count); memory: every layer output of one "
        "forward pass at batch 1, float32.</small>"
    )


def html_table(rows, css_class="csp-table"):
    """A list of same-keyed dicts as an HTML table."""
    if not rows:
        return "<p>(no rows)</p>"
    keys = list(rows[0])

    def cell(v):
        return f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else html.escape(str(v))

    head = "".join(f"<th>{html.escape(k)}</th>" for k in keys)
    body = "".join("<tr>" + "".join(f"<td>{cell(r[k])}</td>" for k in keys) + "</tr>" for r in rows)
    return _TABLE_STYLE + f'<table class="{css_class}"><tr>{head}</tr>{body}</table>'
