"""The report of :mod:`shopsearch.synthesis.evaluation`: JSON and Markdown.

Every good-rate figure carries its label source (``judged`` / ``classifier`` / ``mixed`` with the
judged share), and the Markdown repeats the statements that make the numbers comparable: setting,
queries, protocol, the definition of a good item and of m (METHOD.md part B asks for stated metric
definitions, since the paper publishes none).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shopsearch.artifacts import atomic_write_text


@dataclass
class SynthEvalReport:
    """What :func:`evaluate_synthetic` found: ``data`` is the JSON shape; ``per_query`` one frame per system."""

    data: dict[str, Any]
    per_query: dict[str, pd.DataFrame] = field(default_factory=dict)

    def to_dict(self, per_query: bool = True) -> dict[str, Any]:
        out = dict(self.data)
        if per_query:
            out["per_query"] = {name: {str(q): {k: v for k, v in row.items() if not _nan(v)}
                                       for q, row in frame.to_dict("index").items()}
                                for name, frame in self.per_query.items()}
        return json_safe(out)

    def write_json(self, path: str | Path) -> Path:
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n")
        return Path(path)

    def to_markdown(self) -> str:
        return render_markdown(self.data)

    def write_markdown(self, path: str | Path) -> Path:
        atomic_write_text(path, self.to_markdown())
        return Path(path)



# ---------------------------------------------------------------------------------------------


def _nan(v: Any) -> bool:
    return isinstance(v, float) and math.isnan(v)


def json_safe(x: Any) -> Any:
    """JSON-safe: NaN/inf -> None, numpy scalars -> Python, tuples -> lists, keys -> str."""
    if isinstance(x, Mapping):
        return {str(k): json_safe(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [json_safe(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _fmt(v: Any, points: bool = False) -> str:
    if v is None or _nan(v):
        return "–"
    return f"{v:+.2f}" if points else f"{v:.4f}"


def _source_note(figs: list[dict[str, Any]], names: list[str]) -> str:
    """Each system's label source, once when they all agree ("mixed" with its judged share)."""
    parts = [f["label_source"] + (f" ({f['judged_share']:.0%} judged)" if f["label_source"] == "mixed" else "")
             for f in figs]
    return parts[0] if len(set(parts)) == 1 else "; ".join(f"{n}: {p}" for n, p in zip(names, parts, strict=True))


def render_markdown(data: Mapping[str, Any]) -> str:
    """The report as Markdown: the statements, then one table per metric (scopes as rows)."""
    s, p = data["setting"], data["protocol"]
    lines = [f"# Synthetic training data on long-tail queries — setting ({s.get('name') or '?'})", "",
             f"- Setting: {s['description']}",
             f"- Queries: {data['queries']['evaluated']} ({data['queries']['tiers']}); types "
             f"{data['queries']['types']} (tagger: {data['queries']['tagger']})",
             f"- Protocol: {p['retrieval']} over {p['catalogue_size']:,} products, depth {p['depth']}; "
             f"{p['grade_scheme'].get('description', '')}",
             f"- Good item: {p['good']}. ItemGoodRate: {p['item_good_rate']}. QueryGoodRate: {p['query_good_rate']} "
             f"(m = {p['min_good']}).",
             f"- Significance: {data['significance']['test']}; {data['significance']['multiple_testing']}.",
             *[f"- Note: {n}" for n in data.get("notes", [])], ""]
    names = data["systems"]
    for key in data["metric_keys"]:
        lines += [f"## {key}", ""]
        head = ["scope", "n", *names]
        for other in names[1:]:
            head += [f"{other} − {names[0]} (pts) [CI]", "p (Holm)"]
        head.append("label source")
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for scope, entry in data["scopes"].items():
            figs = [entry["systems"][n][key] for n in names]
            row = [scope, str(figs[0]["n"]), *(_fmt(f["value"]) for f in figs)]
            for other in names[1:]:
                c = next((c for c in data["comparisons"]
                          if c["scope"] == scope and c["metric"] == key and c["system"] == other), None)
                if c is None:
                    row += ["–", "–"]
                    continue
                star = " *" if c["significant"] else ""
                row += [f"{_fmt(c['diff_points'], True)} [{_fmt(c['ci_low_points'], True)}, "
                        f"{_fmt(c['ci_high_points'], True)}]", f"{c['p_holm']:.3g}{star}" if c["p_holm"] is not None else "–"]
            lines.append("| " + " | ".join([*row, _source_note(figs, names)]) + " |")
        lines.append("")
    lines.append("`*` significant at alpha after Holm.")
    return "\n".join(lines) + "\n"
