"""``python -m msca_fast.ablation``: the paper's Table 1 ablations, trained and evaluated alike.

    python -m msca_fast.ablation --output-dir ablation                      # synthetic, demo budget
    python -m msca_fast.ablation --output-dir ablation --preset 256 --dataset coco-stuff \\
        --data-root /data/cocostuff --steps 50000 --eval-size 256

Each variant (full MSCA, w/o masking, GAP, w/o attention, w/o global self-reconstruction) is
trained with the same options and seed (every option not listed below goes to train.py
unchanged) into ``<output-dir>/<variant>``, then evaluated on the same images into
``<output-dir>/<variant>/eval``. Written to ``<output-dir>``: ``ablation.md`` and
``ablation.json`` (the comparison table), ``comparison.png`` (target label | exemplar | each
variant | ground truth on the first evaluation rows) and ``attention/`` (the full model's
attention maps at scales 0-2). Finished variants are not retrained (their final checkpoint is
found); interrupted ones resume.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torchvision

from msca_fast import evaluate
from msca_fast.evaluation.comparison import comparison_grid, save_attention_figures
from msca_fast.evaluation.report import markdown_table, write_json
from msca_fast.evaluation.tasks import build_task
from msca_fast.training import cli as train_cli
from msca_fast.training.checkpoint import load_generator

# Table 1's variants: their names in the table, and what each adds to train.py's arguments.
VARIANTS = {
    "msca": ("full", ["--variant", "msca"]),
    "no_masking": ("w/o masking", ["--variant", "no_masking"]),
    "gap": ("GAP", ["--variant", "gap"]),
    "no_attention": ("w/o attention", ["--variant", "no_attention"]),
    "no_global": ("w/o global", ["--variant", "msca", "--lambda-global", "0"]),
}
COMPARISON_ROWS = 6


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m msca_fast.ablation", description=__doc__, allow_abbrev=False,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--output-dir", default="ablation")
    p.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    p.add_argument("--eval-num-images", type=int, default=100)
    p.add_argument("--eval-size", type=int, default=64)
    p.add_argument("--eval-tasks", nargs="+", choices=evaluate.TASKS)
    p.add_argument("--eval-metrics", nargs="+", default=["psnr", "lpips", "fid", "style"])
    p.add_argument("--eval-strict", action="store_true")
    return p


def option(argv: list[str], name: str, default: str | None) -> str | None:
    """The value of ``--name`` in a train.py argument list, else ``default``."""
    return argv[argv.index(name) + 1] if name in argv and argv.index(name) + 1 < len(argv) else default


def main(argv: list[str] | None = None) -> int:
    args, train_args = parser().parse_known_args(argv)
    for forbidden in ("--output-dir", "--variant", "--resume", "--lambda-global"):
        if forbidden in train_args:
            print(f"ablation: error: {forbidden} is set per variant by the ablation script", file=sys.stderr)
            return 2
    out = Path(args.output_dir)
    dataset = option(train_args, "--dataset", "synthetic")
    results, missing = {}, {}
    for variant in args.variants:
        run_dir = out / variant
        label, variant_args = VARIANTS[variant]
        print(f"== {variant}: training into {run_dir}")
        code = train_cli.main([*train_args, *variant_args, "--output-dir", str(run_dir), "--resume", "latest"])
        if code != 0:
            print(f"ablation: error: training {variant} failed (exit {code})", file=sys.stderr)
            return code
        eval_argv = [
            "--checkpoint", str(run_dir), "--dataset", dataset, "--output-dir", str(run_dir / "eval"),
            "--num-images", str(args.eval_num_images), "--size", str(args.eval_size),
            "--metrics", *args.eval_metrics,
        ]  # fmt: skip
        for name in ("--data-root", "--label-nc"):
            if option(train_args, name, None) is not None:
                eval_argv += [name, option(train_args, name, None)]
        if args.eval_tasks:
            eval_argv += ["--tasks", *args.eval_tasks]
        if args.eval_strict:
            eval_argv.append("--strict")
        print(f"== {variant}: evaluating")
        code = evaluate.main(eval_argv)
        if code != 0:
            print(f"ablation: error: evaluating {variant} failed (exit {code})", file=sys.stderr)
            return code
        payload = json.loads((run_dir / "eval" / "results.json").read_text())
        results[label] = next(iter(payload["results"].values()))
        missing.update(payload["missing"])
    table = markdown_table(results, missing)
    (out / "ablation.md").write_text(table)
    write_json(out / "ablation.json", {"variants": args.variants, "train_args": train_args, "results": results,
                                       "missing": missing})  # fmt: skip
    print(table)
    print(f"wrote {out / 'ablation.md'} and {out / 'ablation.json'}")
    if dataset == "synthetic":
        write_pictures(out, args)
    return 0


def write_pictures(out: Path, args: argparse.Namespace) -> None:
    """comparison.png and the full model's attention/ figures, on the first style-transfer rows
    of the evaluation scenes (synthetic data only: its truths are exact)."""
    from msca_fast.data.synthetic import SyntheticScenes

    scenes = SyntheticScenes(num_images=COMPARISON_ROWS + 1, size=args.eval_size, seed=evaluate.DEFAULT_SEED)
    items = [scenes[i] for i in range(len(scenes))]
    samples = build_task(
        "style-transfer", [it["image"] for it in items], [it["label"] for it in items], [it["name"] for it in items],
        scenes.num_classes, dataset=scenes,
    )[:COMPARISON_ROWS]  # fmt: skip
    generators = {VARIANTS[v][0]: load_generator(out / v) for v in args.variants}
    palette = torch.as_tensor(scenes.palette, dtype=torch.uint8)
    torchvision.utils.save_image(comparison_grid(generators, samples, palette), out / "comparison.png")
    print(f"wrote {out / 'comparison.png'} (columns: target label | exemplar | {' | '.join(generators)} | truth)")
    if "msca" in args.variants:
        paths = save_attention_figures(generators[VARIANTS["msca"][0]], samples[0], palette, out / "attention")
        print(f"wrote {', '.join(str(p) for p in paths)}")


if __name__ == "__main__":
    sys.exit(main())
