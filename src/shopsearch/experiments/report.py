"""The experiment report: JSON, Markdown and a self-contained HTML page with plots.

Plots are matplotlib figures embedded as base64 PNG, drawn through ``matplotlib.figure.Figure`` so
the global pyplot backend is never touched (the same way as :mod:`shopsearch.eval.html`).
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from shopsearch.artifacts import atomic_write_text
from shopsearch.eval.html import _CSS, _png, _table
from shopsearch.eval.report import _clean


def _f(x: Any, digits: int = 4) -> str:
    return "–" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{digits}f}"


def _pct(x: Any, digits: int = 2) -> str:
    return "–" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{100 * x:+.{digits}f}%"


def _ci_pct(ci: Any) -> str:
    return f"[{_pct(ci[0])}, {_pct(ci[1])}]" if ci else ""


@dataclass
class AbReport:
    """Everything one analysis found; ``to_dict`` is the JSON shape."""

    experiment: dict[str, Any]
    data: dict[str, Any]
    srm: dict[str, Any] | None
    variants: dict[str, Any]
    comparisons: list[dict[str, Any]]
    interleaving: dict[str, Any] | None
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. a simulation's ground truth

    def comparison(self, variant: str, metric: str = "ctr") -> dict[str, Any]:
        for c in self.comparisons:
            if c["variant"] == variant and c["metric"] == metric:
                return c
        raise KeyError(f"no comparison of {variant!r} on {metric!r}")

    def to_dict(self) -> dict[str, Any]:
        return _clean({"experiment": self.experiment, "data": self.data, "srm": self.srm, "variants": self.variants,
                       "comparisons": self.comparisons, "interleaving": self.interleaving, "notes": self.notes,
                       **self.extra})

    def write_json(self, path: str | Path) -> Path:
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n")
        return Path(path)

    def to_markdown(self) -> str:
        return render_markdown(self)

    def write_markdown(self, path: str | Path) -> Path:
        atomic_write_text(path, self.to_markdown())
        return Path(path)

    def write_html(self, path: str | Path) -> Path:
        atomic_write_text(path, render_html(self))
        return Path(path)


def _facts(r: AbReport) -> list[str]:
    e = r.experiment
    split = ", ".join(f"{v['name']} {v['split']:.0%}" for v in e["variants"])
    facts = [f"Experiment {e['name']}: {e['design']} design, randomised by {e['unit']}; split {split}; "
             f"control {e['control']}",
             f"Tests: two-sided at alpha {e['alpha']}; MDE at power {e['power']}; primary metric "
             f"{e['primary_metric']} ({e['metrics'][e['primary_metric']]})"]
    if e["design"] == "ab":
        facts.append("Rates are ratios of per-unit sums; standard errors, CIs and Welch t-tests use the delta "
                     "method over units (Deng et al. 2018); secondary metrics are Holm-adjusted")
    else:
        facts.append("Team-draft interleaving (Radlinski et al. 2008): a search is won by the team with more "
                     "credited clicks; binomial test of wins, ties left out (Chapelle et al. 2012)")
    facts += [f"{k.replace('_', ' ')}: {v}" for k, v in r.data.items() if v not in (0, {}, None)]
    return facts + r.notes


def _srm_line(srm: dict[str, Any]) -> str:
    obs = ", ".join(f"{k} {v:,}" for k, v in srm["observed"].items())
    verdict = ("**SAMPLE RATIO MISMATCH — do not trust the results below**" if srm["mismatch"]
               else "no sample-ratio mismatch")
    return f"Units per variant: {obs}; chi-square {_f(srm['chi2'], 2)}, p {_f(srm['p_value'])} " \
           f"(threshold {srm['threshold']}): {verdict}"


def _preference_sentence(i: dict[str, Any]) -> str:
    ci = i["win_share_ci"]
    return (f"Win share of {i['team_a']}: {_f(i['win_share_a'])} [{_f(ci[0])}, {_f(ci[1])}], binomial p "
            f"{_f(i['p_value'])}; delta_AB {_f(i['delta_ab'])}; by unit: {i['unit_wins_a']:,} vs "
            f"{i['unit_wins_b']:,}, p {_f(i['unit_p_value'])}; detectable win-share deviation from 0.5 at this "
            f"traffic: {_f(i['mde_share'])}. Preferred: {i['preferred'] or 'no significant preference'}.")


def render_markdown(r: AbReport) -> str:
    out = [f"# Experiment report: {r.experiment['name']}", ""]
    if r.extra.get("synthetic"):
        out += ["> **SIMULATED TRAFFIC** — clicks come from a click model on judged grades, not from shoppers.", ""]
    out += [f"- {f}" for f in _facts(r)] + [""]
    if r.srm is not None:
        out += [_srm_line(r.srm), ""]
    if r.variants:
        keys = list(next(iter(r.variants.values()))["metrics"])
        out += ["## Variants", "", "| variant | units | searches | " + " | ".join(keys) + " |",
                "|---|---:|---:|" + "---:|" * len(keys)]
        for name, v in r.variants.items():
            cells = [f"{_f(m['value'])} ± {_f(m['se'])}" for m in v["metrics"].values()]
            out.append(f"| {name} | {v['units']:,} | {v['searches']:,} | " + " | ".join(cells) + " |")
    if r.comparisons:
        out += ["", "## Comparisons with the control (* significant)", "",
                "| variant | metric | control | variant | lift | lift CI | p | p adj. | MDE | |",
                "|---|---|---:|---:|---:|---|---:|---:|---:|---|"]
        for c in r.comparisons:
            out.append(f"| {c['variant']} | {c['metric']} | {_f(c['control_value'])} | {_f(c['value'])} | "
                       f"{_pct(c['lift'])} | {_ci_pct(c['lift_ci'])} | {_f(c['p_value'])} | {_f(c['p_adjusted'])} | "
                       f"{_pct(c['mde_rel'])} | {'*' if c['significant'] else ''} |")
        prim = [c for c in r.comparisons if c["metric"] == r.experiment["primary_metric"]]
        for c in prim:
            need = {k: "–" if v is None else f"{v:,}" for k, v in c["units_for_mde"].items()}
            out.append(f"\nUnits needed for a relative MDE on {c['metric']} of 1%: {need['1%']}; "
                       f"of 3%: {need['3%']} (now {c['n_units'] + c['control_n_units']:,}).")
    if r.interleaving is not None:
        i = r.interleaving
        out += ["", "## Interleaving preference", "", "| | searches |", "|---|---:|",
                f"| won by {i['team_a']} | {i['wins_a']:,} |", f"| won by {i['team_b']} | {i['wins_b']:,} |",
                f"| ties (clicks on both equally) | {i['ties']:,} |", f"| no click | {i['no_clicks']:,} |", "",
                _preference_sentence(i)]
    if "truth" in r.extra:
        out += ["", "## Simulation ground truth", ""] + [f"- {k}: {v}" for k, v in r.extra["truth"].items()]
    return "\n".join(out) + "\n"


def _rates_plot(r: AbReport) -> str | None:
    from matplotlib.figure import Figure

    if not r.variants:
        return None
    names = list(r.variants)
    metrics = list(next(iter(r.variants.values()))["metrics"])
    fig = Figure(figsize=(3.2 * len(metrics), 3.0), layout="constrained")
    for i, m in enumerate(metrics):
        ax = fig.add_subplot(1, len(metrics), i + 1)
        vals = np.array([r.variants[n]["metrics"][m]["value"] for n in names], dtype=float)
        err = np.array([1.96 * r.variants[n]["metrics"][m]["se"] for n in names], dtype=float)
        ax.bar(range(len(names)), vals, yerr=np.nan_to_num(err), capsize=3, color=[f"C{j}" for j in range(len(names))])
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, fontsize=8)
        ax.set_title(m, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("rates per variant (whiskers: 95% delta-method CI)", fontsize=10)
    return _png(fig)


def _lift_plot(r: AbReport) -> str | None:
    from matplotlib.figure import Figure

    if not r.comparisons:
        return None
    fig = Figure(figsize=(6.5, 0.45 * len(r.comparisons) + 1.2), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    for y, c in enumerate(r.comparisons):
        lo, hi = c["lift_ci"]
        color = "C2" if c["significant"] and c["lift"] > 0 else "C3" if c["significant"] else "C7"
        ax.plot([100 * lo, 100 * hi], [y, y], color=color, lw=2)
        ax.plot([100 * c["lift"]], [y], "o", color=color)
        ax.plot([100 * c["mde_rel"], -100 * c["mde_rel"]], [y, y], "|", color="C1", ms=10)
    ax.axvline(0, color="k", lw=0.8)
    ax.set_yticks(range(len(r.comparisons)))
    ax.set_yticklabels([f"{c['variant']}: {c['metric']}" for c in r.comparisons], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("relative lift vs control, % (bars: 95% CI; orange ticks: ± MDE)")
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)


def _interleaving_plot(r: AbReport) -> str | None:
    from matplotlib.figure import Figure

    i = r.interleaving
    if i is None:
        return None
    fig = Figure(figsize=(5.5, 2.6), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    labels = [f"won by {i['team_a']}", f"won by {i['team_b']}", "ties", "no click"]
    ax.barh(labels, [i["wins_a"], i["wins_b"], i["ties"], i["no_clicks"]], color=["C0", "C1", "C7", "C7"])
    ax.invert_yaxis()
    ax.set_xlabel("interleaved searches")
    return _png(fig)


def render_html(r: AbReport) -> str:
    e = html.escape
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>shopsearch experiment "
             f"{e(r.experiment['name'])}</title><style>{_CSS}</style></head><body>"
             f"<h1>Experiment report: {e(r.experiment['name'])}</h1>"]
    if r.extra.get("synthetic"):
        parts.append("<div class='banner'>SIMULATED TRAFFIC — clicks come from a click model on judged grades, "
                     "not from shoppers.</div>")
    parts.append("<ul class='facts'>" + "".join(f"<li>{e(str(f))}</li>" for f in _facts(r)) + "</ul>")
    if r.srm is not None:
        cls = "banner" if r.srm["mismatch"] else ""
        parts.append(f"<p class='{cls}'>{e(_srm_line(r.srm)).replace('**', '')}</p>")
    if r.variants:
        keys = list(next(iter(r.variants.values()))["metrics"])
        rows = [[e(n), f"{v['units']:,}", f"{v['searches']:,}"]
                + [f"{_f(m['value'])} <span class='ci'>± {_f(m['se'])}</span>" for m in v["metrics"].values()]
                for n, v in r.variants.items()]
        parts += ["<h2>Variants</h2>", _table(["variant", "units", "searches", *keys], rows)]
        if img := _rates_plot(r):
            parts.append(f"<img alt='rates per variant' src='{img}'>")
    if r.comparisons:
        rows = []
        for c in r.comparisons:
            cls = ("sig" if c["significant"] else "") + (" neg" if c["lift"] < 0 else "")
            rows.append([e(c["variant"]), e(c["metric"]), _f(c["control_value"]), _f(c["value"]),
                         f"<span class='{cls}'>{_pct(c['lift'])}</span>", _ci_pct(c["lift_ci"]), _f(c["p_value"]),
                         _f(c["p_adjusted"]), _pct(c["mde_rel"]), "*" if c["significant"] else ""])
        parts += ["<h2>Comparisons with the control</h2>",
                  _table(["variant", "metric", "control", "variant", "lift", "lift CI", "p", "p adj.", "MDE", ""],
                         rows, left=2)]
        if img := _lift_plot(r):
            parts.append(f"<img alt='lifts with confidence intervals' src='{img}'>")
    if r.interleaving is not None:
        i = r.interleaving
        rows = [[f"won by {e(i['team_a'])}", f"{i['wins_a']:,}"], [f"won by {e(i['team_b'])}", f"{i['wins_b']:,}"],
                ["ties", f"{i['ties']:,}"], ["no click", f"{i['no_clicks']:,}"]]
        parts += ["<h2>Interleaving preference</h2>", _table(["", "searches"], rows),
                  f"<p>{e(_preference_sentence(i))}</p>"]
        if img := _interleaving_plot(r):
            parts.append(f"<img alt='interleaving outcomes' src='{img}'>")
    if "truth" in r.extra:
        parts.append("<h2>Simulation ground truth</h2><ul>"
                     + "".join(f"<li>{e(str(k))}: {e(str(v))}</li>" for k, v in r.extra["truth"].items()) + "</ul>")
    parts.append("</body></html>\n")
    return "".join(parts)
