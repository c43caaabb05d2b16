"""Markdown and self-contained HTML renderings of an :class:`EvalReport`.

The HTML file has inline CSS and its plots embedded as base64 PNG (matplotlib's Agg canvas through
``matplotlib.figure.Figure``, so the global pyplot backend is never touched): no external resource.
"""

from __future__ import annotations

import base64
import html
import io
import math
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from shopsearch.eval.report import EvalReport

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1200px;
color:#222;line-height:1.45;padding:0 1rem}
h1{font-size:1.6rem}h2{font-size:1.25rem;margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.6rem 0;font-size:.88rem}
th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:right}th{background:#f3f3f3}
td.l,th.l{text-align:left}.banner{background:#fff3cd;border:2px solid #e0a800;padding:.8rem;font-weight:bold}
.sig{color:#0a7d20;font-weight:bold}.neg{color:#b00020}ul.facts li{margin:.15rem 0}.ci{color:#777;font-size:.8em}
img{max-width:100%;border:1px solid #eee;margin:.5rem 0}
"""


def _f(x: Any, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.{digits}f}"


def _ci(ci: Any, digits: int = 4) -> str:
    if not ci or ci[0] is None or (isinstance(ci[0], float) and math.isnan(ci[0])):
        return ""
    return f"[{_f(ci[0], digits)}, {_f(ci[1], digits)}]"


def _mark(c: dict[str, Any]) -> str:
    p = c.get("p_holm")
    if p is None:
        return ""
    return "**" if c.get("significant") and p < 0.01 else ("*" if c.get("significant") else "")


def _facts(r: EvalReport) -> list[str]:
    p, s, c = r.protocol, r.grade_scheme, r.counts
    facts = [
        f"Protocol: {p['name']} — {p['description']}",
        f"Dataset: {p.get('dataset') or 'unnamed'}; split: {p.get('split') or 'not stated'}; "
        f"catalogue size: {p.get('catalogue_size') or 'not stated'}",
        f"Grade scheme: {s['name']} — {s.get('description') or ''}; NDCG gain: {s['gain']}; "
        f"binary metrics and AUC count grade >= {s['relevant_min']} as relevant",
        f"Cutoffs: {', '.join(map(str, p.get('cutoffs', []))) or '–'}; run depth: {p.get('depth') or 'as given'}; "
        f"ties: {p['tie_rule']}; unjudged products: {p['unjudged']}",
        f"Queries evaluated: {c['queries_evaluated']}; with a relevant product: {c['queries_with_relevant']}; "
        f"left out of binary metrics (no relevant product): "
        f"{c['queries_without_relevant_left_out_of_binary_metrics']}; all-grade-0 queries (NDCG 0, kept): "
        f"{c['queries_all_grade_zero_ndcg_0']}",
    ]
    for k in ("queries_without_judgments", "judged_queries_missing_from_queries", "judged_queries_with_empty_text"):
        if c.get(k):
            facts.append(f"{k.replace('_', ' ')}: {c[k]} (not evaluated)")
    for dim, m in r.strata_method.items():
        facts.append(f"Strata by {dim}: {m.get('description') or m.get('method')}")
    sig = r.significance
    facts.append(f"Significance: {sig['per_query_metrics']}; AUC: {sig['auc']}; {sig['multiple_testing']}; "
                 f"{sig['n_resamples']} resamples, seed {sig['seed']}, {sig['confidence']:.0%} CIs; "
                 f"differences {sig['differences']}; baseline: {r.baseline}")
    for name, s_ in r.systems.items():
        facts += [f"{name}: {n}" for n in s_.get("notes", [])]
    return facts + [n for n in r.notes if not (r.synthetic and n.startswith("SYNTHETIC DATA"))]


def _stratum_rows(r: EvalReport, dim: str) -> list[tuple[str, str, dict[str, Any]]]:
    tiers: list[str] = []
    for s in r.systems.values():
        tiers += [t for t in s["strata"].get(dim, {}) if t not in tiers]
    return [(t, name, s["strata"][dim][t]) for t in tiers for name, s in r.systems.items() if t in s["strata"][dim]]


def _dims(r: EvalReport) -> list[str]:
    dims: list[str] = []
    for s in r.systems.values():
        dims += [d for d in s["strata"] if d not in dims]
    return dims


def render_markdown(r: EvalReport, full: bool = True) -> str:
    """The report as Markdown; ``full=False`` keeps the overall table, the frequency strata and the
    overall comparisons (what a terminal can show), the files get everything."""
    keys = r.metric_keys
    out = ["# shopsearch evaluation report", ""]
    if r.synthetic:
        out += ["> **SYNTHETIC DATA** — these figures measure the pipeline, not real search quality.", ""]
    out += [f"- {f}" for f in _facts(r)] + ["", "## Overall", ""]
    out += ["| system | " + " | ".join(keys) + " |", "|---|" + "---:|" * len(keys)]
    for name, s in r.systems.items():
        cells = [f"{_f(s['metrics'].get(k))} {_ci(s['ci'].get(k), 3)}".strip() for k in keys]
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    for dim in _dims(r) if full else [d for d in _dims(r) if d == "frequency"]:
        out += ["", f"## By {dim}", "", "| stratum | n | system | " + " | ".join(keys) + " |",
                "|---|---:|---|" + "---:|" * len(keys)]
        for tier, name, e in _stratum_rows(r, dim):
            cells = [f"{_f(e.get(k))} {_ci(e['ci'].get(k), 3)}".strip() for k in keys]
            out.append(f"| {tier} | {e['n']} | {name} | " + " | ".join(cells) + " |")
    if r.comparisons:
        out += ["", f"## Paired comparisons vs {r.baseline} (points; * p_Holm < {r.significance['alpha']}, "
                "** < 0.01)", "", "| system | stratum | metric | n | diff | CI | p | p Holm | |",
                "|---|---|---|---:|---:|---|---:|---:|---|"]
        for c in r.comparisons if full else [c for c in r.comparisons if c["stratification"] == "overall"]:
            stratum = "overall" if c["stratification"] == "overall" else f"{c['stratification']}: {c['stratum']}"
            out.append(f"| {c['system']} | {stratum} | {c['metric']} | {c['n']} | {c['diff_points']:+.2f} | "
                       f"[{c['ci_low_points']:+.2f}, {c['ci_high_points']:+.2f}] | {_f(c['p_value'])} | "
                       f"{_f(c['p_holm'])} | {_mark(c)} |")
    return "\n".join(out) + "\n"


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _bar_plot(r: EvalReport, dim: str | None) -> str | None:
    from matplotlib.figure import Figure

    keys = [k for k in r.metric_keys if any(s["metrics"].get(k) is not None for s in r.systems.values())]
    if not keys:
        return None
    names = list(r.systems)
    if dim is None:
        groups = ["overall"]
        entry = {(g, n): {**r.systems[n]["metrics"], "ci": r.systems[n]["ci"], "n": r.systems[n]["counts"]["n"]}
                 for g in groups for n in names}
    else:
        groups, entry = [], {}
        for tier, name, e in _stratum_rows(r, dim):
            if tier not in groups:
                groups.append(tier)
            entry[(tier, name)] = e
    cols = min(len(keys), 3)
    rows = math.ceil(len(keys) / cols)
    fig = Figure(figsize=(4.6 * cols, 3.3 * rows), layout="constrained")
    sizes = {g: max((entry.get((g, n), {}).get("n", 0) for n in names), default=0) for g in groups}
    labels = [f"{g}\n(n={sizes[g]})" if sizes[g] else g for g in groups]
    width = 0.8 / max(len(names), 1)
    x = np.arange(len(groups))
    for i, key in enumerate(keys):
        ax = fig.add_subplot(rows, cols, i + 1)
        for j, name in enumerate(names):
            vals: list[float] = []
            err: list[list[float]] = [[], []]
            for g in groups:
                e = entry.get((g, name), {})
                v = e.get(key)
                v = np.nan if v is None else v
                lo, hi = (e.get("ci", {}).get(key) or [None, None])[:2]
                vals.append(v)
                err[0].append(0 if lo is None or np.isnan(v) or np.isnan(lo) else max(v - lo, 0))
                err[1].append(0 if hi is None or np.isnan(v) or np.isnan(hi) else max(hi - v, 0))
            ax.bar(x + (j - (len(names) - 1) / 2) * width, vals, width, yerr=err, capsize=2, label=name)
        ax.set_title(key)
        ax.set_xticks(x)
        ax.set_xticklabels(labels, rotation=30 if len(groups) > 3 else 0, ha="right" if len(groups) > 3 else "center",
                           fontsize=8)
        ax.set_ylim(0, 1.05)
        ax.grid(axis="y", alpha=0.3)
        if i == 0:
            ax.legend(fontsize=7)
    fig.suptitle(f"{'overall' if dim is None else 'by ' + dim} (bars: mean; whiskers: "
                 f"{r.significance['confidence']:.0%} bootstrap CI)", fontsize=10)
    return _png(fig)


def _table(header: list[str], rows: list[list[str]], left: int = 1) -> str:
    th = "".join(f"<th class='l'>{html.escape(h)}</th>" if i < left else f"<th>{html.escape(h)}</th>"
                 for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(f"<td class='l'>{c}</td>" if i < left else f"<td>{c}</td>"
                                    for i, c in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def render_html(r: EvalReport) -> str:
    e = html.escape
    keys = r.metric_keys
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>shopsearch evaluation</title>"
             f"<style>{_CSS}</style></head><body><h1>shopsearch evaluation report</h1>"]
    if r.synthetic:
        parts.append("<div class='banner'>SYNTHETIC DATA — these figures measure the pipeline, not real search "
                     "quality.</div>")
    parts.append("<ul class='facts'>" + "".join(f"<li>{e(f)}</li>" for f in _facts(r)) + "</ul><h2>Overall</h2>")
    rows = [[e(n)] + [f"{_f(s['metrics'].get(k))} <span class='ci'>{_ci(s['ci'].get(k), 3)}</span>" for k in keys]
            for n, s in r.systems.items()]
    parts.append(_table(["system", *keys], rows))
    img = _bar_plot(r, None)
    if img:
        parts.append(f"<img alt='overall metrics' src='{img}'>")
    for dim in _dims(r):
        parts.append(f"<h2>By {e(dim)}</h2><p>{e(str(r.strata_method.get(dim, {}).get('description', '')))}</p>")
        rows = [[e(t), str(en["n"]), e(n)] + [f"{_f(en.get(k))} <span class='ci'>{_ci(en['ci'].get(k), 3)}</span>"
                                              for k in keys] for t, n, en in _stratum_rows(r, dim)]
        parts.append(_table(["stratum", "n", "system", *keys], rows, left=1))
        img = _bar_plot(r, dim)
        if img:
            parts.append(f"<img alt='metrics by {e(dim)}' src='{img}'>")
    if r.comparisons:
        parts.append(f"<h2>Paired comparisons vs {e(r.baseline)}</h2><p>Differences in points; * p<sub>Holm</sub> "
                     f"&lt; {r.significance['alpha']}, ** &lt; 0.01; {e(r.significance['multiple_testing'])}.</p>")
        rows = []
        for c in r.comparisons:
            stratum = "overall" if c["stratification"] == "overall" else f"{c['stratification']}: {c['stratum']}"
            cls = "sig" if c["significant"] else ""
            cls += " neg" if c["diff_points"] < 0 else ""
            rows.append([e(c["system"]), e(stratum), e(c["metric"]), str(c["n"]),
                         f"<span class='{cls}'>{c['diff_points']:+.2f}</span>",
                         f"[{c['ci_low_points']:+.2f}, {c['ci_high_points']:+.2f}]", _f(c["p_value"]),
                         _f(c["p_holm"]), _mark(c), e(c["test"])])
        parts.append(_table(["system", "stratum", "metric", "n", "diff (pts)", "CI (pts)", "p", "p Holm", "",
                             "test"], rows, left=3))
    parts.append("</body></html>\n")
    return "".join(parts)
