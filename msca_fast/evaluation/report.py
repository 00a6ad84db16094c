"""Evaluation reports: a markdown table like the paper's Table 1, a JSON file, an HTML page."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

# (key, label with the better direction): the paper's four, then the region and attention
# measures (msca_fast.metrics.region, msca_fast.evaluation.attention_quality) with their baselines.
MEASURES = (
    ("psnr", "PSNR ↑"), ("lpips", "LPIPS ↓"), ("fid", "FID ↓"), ("style", "style loss ↓"),
    ("region_score", "region transfer score ↑ (0 = global mean, 1 = class copy)"),
    ("region_error", "region colour error ↓ (RGB 0-255)"),
    ("region_error_global", "… of global-mean painting"),
    ("region_error_class_copy", "… of class-copy painting"),
    ("psnr_global", "PSNR of global-mean painting"),
    ("psnr_class_copy", "PSNR of class-copy painting"),
    ("sensitivity", "exemplar sensitivity (1 = as the truth)"),
    ("texture_ratio", "texture energy ratio (1 = as the truth, 0 = flat)"),
    ("texture_ratio_other_phase", "… of the truth in another noise phase"),
    ("texture_score", "texture score ↑ (0 = flat class copy, 1 = truth in another phase)"),
    ("texture_distance", "texture distance ↓ (5x5 high-pass patches, sliced W1, grey levels)"),
    ("texture_distance_flat", "… of flat class-copy painting"),
    ("texture_distance_other_phase", "… of the truth in another noise phase"),
    ("purity", "attention purity ↑"),
    ("purity_area", "… class-blind baseline (largest class's area)"),
    ("channel_entropy", "channel attention entropy / log K"),
)  # fmt: skip

PAPER_MEASURES = ("psnr", "lpips", "fid", "style")  # always shown, n/a when missing

Results = dict[str, dict[str, dict[str, float | None]]]  # column -> task -> measure -> value


def markdown_table(results: Results, missing: dict[str, str] | None = None) -> str:
    """Rows: task x measure; columns: the models compared (one column for a single checkpoint)."""
    columns = list(results)
    tasks = list(dict.fromkeys(task for column in results.values() for task in column))
    lines = ["| task | measure | " + " | ".join(columns) + " |", "|---|---|" + "---:|" * len(columns)]
    for task in tasks:
        for key, label in MEASURES:
            values = [results[c].get(task, {}).get(key) for c in columns]
            if key not in PAPER_MEASURES and all(v is None for v in values):
                continue
            cells = [_cell(v) for v in values]
            lines.append(f"| {task} | {label} | " + " | ".join(cells) + " |")
    for key, reason in (missing or {}).items():
        lines.append(f"\n{key}: n/a ({reason})")
    return "\n".join(lines) + "\n"


def _cell(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.4f}" if abs(value) < 1 else f"{value:.2f}"


def write_json(path: Path, payload: dict[str, Any]) -> None:
    path.write_text(json.dumps(payload, indent=2, sort_keys=True))


def write_html(path: Path, title: str, table_markdown: str, rows: dict[str, list[str]]) -> None:
    """A page with the table (as preformatted text) and, per task, sample rows: PNG paths
    relative to ``path``'s folder, each showing target label | exemplar | output | ground truth."""
    parts = [
        "<!doctype html><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;margin:2em} img{image-rendering:pixelated;max-width:100%}"
        " pre{background:#f4f4f4;padding:1em}</style>",
        f"<h1>{html.escape(title)}</h1>",
        f"<pre>{html.escape(table_markdown)}</pre>",
        "<p>Each row: target label | exemplar | output | ground truth.</p>",
    ]
    for task, images in rows.items():
        parts.append(f"<h2>{html.escape(task)}</h2>")
        parts += [f"<div><img src='{html.escape(src)}' alt='{html.escape(src)}'></div>" for src in images]
    path.write_text("\n".join(parts))
