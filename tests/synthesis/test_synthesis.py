"""Synthesis and content manipulation (msca_fast.synthesis) and its command line, on a tiny
checkpoint trained for two iterations on the synthetic scenes (12 classes)."""

from __future__ import annotations

import copy
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

import msca_fast.synthesize as cli
from msca_fast import synthesis
from msca_fast.data.image_io import load_image
from msca_fast.data.synthetic import SyntheticScenes
from msca_fast.models.alignment import GAPAlignment
from msca_fast.models.labels import one_hot
from msca_fast.synthesis.figures import PADDING
from msca_fast.training.checkpoint import load_checkpoint, load_generator
from msca_fast.visuals import save_picture

from tiny_run import tiny_checkpoint

pytestmark = pytest.mark.usefixtures("load_each_checkpoint_once")

SIZE = 32  # the tiny model's training size
NUM_CLASSES = 12


def grid_size(rows: int, columns: int, tile: tuple[int, int]) -> tuple[int, int]:
    """(H', W') of a rows x columns figure of ``tile``-sized tiles: PADDING around and between them."""
    return rows * (tile[0] + PADDING) + PADDING, columns * (tile[1] + PADDING) + PADDING


def _save_label(ids: np.ndarray, path: Path) -> Path:
    Image.fromarray(ids.astype(np.uint8)).save(path)  # 2-D uint8 -> mode "L"
    return path


def _save_small_checkpoint(state: dict, path: Path) -> Path:
    """The parts of a checkpoint synthesis reads, re-saved (with whatever edits the test made)."""
    keep = ("model_config", "train_config", "generator", "generator_ema", "vgg19_source")
    torch.save({k: state[k] for k in keep if k in state}, path)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> SimpleNamespace:
    """A tiny checkpoint, four synthetic scenes as photo + label PNGs, and broken files."""
    root = tmp_path_factory.mktemp("synthesis")
    checkpoint = tiny_checkpoint(root / "run")
    scenes = SyntheticScenes(num_images=4, size=SIZE, seed=3)
    (root / "labels").mkdir()
    (root / "photos").mkdir()
    for i in range(4):
        item = scenes[i]
        _save_label(item["label"].numpy(), root / "labels" / f"scene{i}.png")
        save_picture(item["image"], root / "photos" / f"scene{i}.png")
    label = lambda i: root / "labels" / f"scene{i}.png"  # noqa: E731
    photo = lambda i: root / "photos" / f"scene{i}.png"  # noqa: E731

    big_ids = np.array(Image.open(label(1)).resize((48, 48), Image.Resampling.NEAREST))  # scene 1's labels
    bad_ids = np.array(Image.open(label(0)))
    bad_ids[:4, :4], bad_ids[-4:, -4:] = 12, 200
    dontcare_ids = np.where(bad_ids == 12, 255, np.minimum(bad_ids, 10))  # classes 0..10 and a don't-care 255
    corrupt = root / "corrupt.png"
    corrupt.write_bytes(Image.open(photo(0)).tobytes()[:100])
    not_checkpoint = root / "not_a_checkpoint.pt"
    not_checkpoint.write_bytes(b"definitely not a torch file")
    foreign = root / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    state = load_checkpoint(checkpoint)
    other_config = copy.deepcopy(state)
    other_config["model_config"]["ngf"] = 8
    gap = copy.deepcopy(state)
    gap["model_config"]["alignment"] = "gap"
    for key in ("generator", "generator_ema"):
        gap[key] = {k: v for k, v in gap[key].items() if not k.startswith("aligners.")}
    rgb_label = root / "rgb_label.png"
    Image.fromarray(np.zeros((SIZE, SIZE, 3), np.uint8)).save(rgb_label)
    parser_module = root / "my_parser.py"
    parser_module.write_text(
        "import torch\n"
        "def segment(image):\n"
        "    return torch.full(image.shape[-2:], 7, dtype=torch.int64)\n"
        "def wrong_shape(image):\n"
        "    return torch.zeros(5, 5, dtype=torch.int64)\n"
    )
    empty_run = root / "empty_run"
    empty_run.mkdir()
    return SimpleNamespace(
        root=root,
        checkpoint=checkpoint,
        label=label,
        photo=photo,
        labels_dir=root / "labels",
        bad_ids=_save_label(bad_ids, root / "bad_ids.png"),
        dontcare=_save_label(dontcare_ids, root / "dontcare.png"),
        small_label=_save_label(np.zeros((8, 8)), root / "small_label.png"),
        big_label=_save_label(big_ids, root / "big_label.png"),
        rgb_label=rgb_label,
        corrupt=corrupt,
        not_checkpoint=not_checkpoint,
        foreign=foreign,
        other_config=_save_small_checkpoint(other_config, root / "other_config.pt"),
        gap=_save_small_checkpoint(gap, root / "gap.pt"),
        parser_module=parser_module,
        empty_run=empty_run,
    )


@pytest.fixture(scope="module")
def g(files):
    return load_generator(files.checkpoint)


def _labels(path: Path) -> torch.Tensor:
    return one_hot(torch.from_numpy(np.array(Image.open(path)).astype(np.int64))[None], NUM_CLASSES)


def _exemplar(files, i: int) -> synthesis.Exemplar:
    return load_image(files.photo(i))[None], _labels(files.label(i))


def _png(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        assert image.mode == "RGB"
        return np.asarray(image)


def _run(argv: list, capsys) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _single(files, **changes) -> list:
    """``single`` argv with some options replaced (None drops the option)."""
    options = {
        "--checkpoint": files.checkpoint,
        "--label": files.label(0),
        "--exemplar": files.photo(1),
        "--exemplar-label": files.label(1),
        "--output": files.root / "out" / "error.png",
    }
    options.update({f"--{k.replace('_', '-')}": v for k, v in changes.items()})
    argv = ["single"]
    for option, value in options.items():
        if value is not None:
            argv += [option, *(value if isinstance(value, list) else [value])]
    return argv


# --- the Python API -------------------------------------------------------------------------


def test_style_interpolation_ends_are_the_single_exemplar_syntheses(files, g):
    c1, a, b = _labels(files.label(0)), _exemplar(files, 1), _exemplar(files, 2)
    frames = synthesis.interpolate_styles(g, c1, a, b, [0.0, 0.5, 1.0])
    only_a, only_b = synthesis.synthesize(g, c1, *a), synthesis.synthesize(g, c1, *b)
    assert len(frames) == 3 and all(f.shape == (1, 3, SIZE, SIZE) for f in frames)
    torch.testing.assert_close(frames[0], only_a, atol=1e-6, rtol=0)
    torch.testing.assert_close(frames[2], only_b, atol=1e-6, rtol=0)
    assert not torch.allclose(frames[1], only_a) and not torch.allclose(frames[1], only_b)
    assert (only_a - only_b).abs().max() > 1e-4  # the two exemplars do give different images


def test_spatial_interpolation_goes_from_a_on_the_left_to_b_on_the_right(files, g):
    c1, a, b = _labels(files.label(0)), _exemplar(files, 1), _exemplar(files, 2)
    out = synthesis.spatial_interpolation(g, c1, a, b)
    only_a, only_b = synthesis.synthesize(g, c1, *a), synthesis.synthesize(g, c1, *b)
    assert out.shape == (1, 3, SIZE, SIZE) and out.abs().max() <= 1
    left, right = (slice(None), slice(None), slice(None), 0), (slice(None), slice(None), slice(None), -1)
    assert (out[left] - only_a[left]).abs().mean() < 0.2 * (out[left] - only_b[left]).abs().mean()
    assert (out[right] - only_b[right]).abs().mean() < 0.2 * (out[right] - only_a[right]).abs().mean()
    # constant weights are the single-exemplar syntheses exactly
    zeros, ones = torch.zeros(SIZE, SIZE), torch.ones(SIZE, SIZE)
    torch.testing.assert_close(synthesis.spatial_interpolation(g, c1, a, b, zeros), only_a, atol=1e-6, rtol=0)
    torch.testing.assert_close(synthesis.spatial_interpolation(g, c1, a, b, ones), only_b, atol=1e-6, rtol=0)


def test_horizontal_ramp_is_exact_at_the_edges():
    ramp = synthesis.horizontal_ramp(3, 5)
    assert ramp.shape == (1, 1, 3, 5)
    assert ramp[..., 0].eq(0).all() and ramp[..., -1].eq(1).all()


def test_extrapolation_fills_a_larger_canvas(files, g):
    canvas = torch.cat([_labels(files.label(0)), _labels(files.label(3))], dim=3)[..., :, 8:]  # 32 x 56
    canvas = torch.cat([canvas, canvas[:, :, :16]], dim=2)  # 48 x 56
    out = synthesis.extrapolate(g, canvas, _exemplar(files, 1), patch=SIZE, stride=16, batch_size=3)
    assert out.shape == (1, 3, 48, 56)
    assert torch.isfinite(out).all() and out.abs().max() <= 1


def test_extrapolation_of_a_single_patch_is_plain_synthesis(files, g):
    c1, exemplar = _labels(files.label(0)), _exemplar(files, 1)
    out = synthesis.extrapolate(g, c1, exemplar, patch=SIZE, stride=SIZE)
    torch.testing.assert_close(out, synthesis.synthesize(g, c1, *exemplar), atol=1e-6, rtol=1e-6)


def test_blending_windows_cover_the_canvas_seamlessly():
    assert synthesis.patch_starts(512, 256, 128) == [0, 128, 256]
    assert synthesis.patch_starts(600, 256, 128) == [0, 128, 256, 344]
    window = synthesis.hann_window(16)
    assert window.min() > 0 and window.max() <= 1
    total = torch.zeros(48, 48)  # half-overlapping windows sum to one away from the border
    for top in range(0, 33, 8):
        for left in range(0, 33, 8):
            total[top : top + 16, left : left + 16] += window
    torch.testing.assert_close(total[8:40, 8:40], torch.ones(32, 32))


def test_style_swap_grid_size(files, g):
    labels = [_labels(files.label(i)) for i in range(2)]
    grid = synthesis.style_swap_grid(g, labels, [_exemplar(files, 3)])
    assert grid.shape == (3, *grid_size(2, 3, (SIZE, SIZE)))  # (1 + exemplars) x (1 + layouts)
    assert grid.min() >= -1 and grid.max() <= 1


def test_attention_figure_size_and_ablation_error(files, g):
    c1, (x2, c2) = _labels(files.label(0)), _exemplar(files, 1)
    for scale, regions in ((0, 8), (2, 16)):
        figure = synthesis.attention_figure(g, c1, x2, c2, scale=scale)
        assert figure.shape == (3, *grid_size(1 + 2 * (regions // 8), 8, (SIZE, SIZE)))
    gap = copy.deepcopy(g)
    gap.aligners[0] = GAPAlignment()
    gap.config = gap.config.replace(alignment="gap")
    with pytest.raises(ValueError, match="no attention maps"):
        synthesis.attention_figure(gap, c1, x2, c2, scale=0)


# --- the command line -----------------------------------------------------------------------


def test_cli_single(files, capsys):
    out = files.root / "out" / "single.png"
    code, stdout, _ = _run(
        ["single", "--checkpoint", files.checkpoint, "--label", files.label(0), "--exemplar", files.photo(1),
         "--exemplar-label", files.label(1), "--output", out, "--size", 40, 24],
        capsys,
    )  # fmt: skip
    assert code == 0 and str(out) in stdout
    assert _png(out).shape == (40, 24, 3)


def test_cli_single_raw_weights_resized_exemplar_and_run_folder(files, capsys):
    out = files.root / "out" / "raw.png"
    code, _, err = _run(
        ["single", "--checkpoint", files.checkpoint.parent, "--raw-weights", "--label", files.label(0),
         "--exemplar", files.photo(1), "--exemplar-label", files.big_label, "--exemplar-size", SIZE, "--output", out],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    assert _png(out).shape == (SIZE, SIZE, 3)


def test_cli_single_with_an_exemplar_parser(files, capsys):
    out = files.root / "out" / "parsed.png"
    code, _, err = _run(
        ["single", "--checkpoint", files.checkpoint, "--label", files.label(0), "--exemplar", files.photo(1),
         "--exemplar-parser", f"{files.parser_module}:segment", "--output", out],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    assert out.is_file()


def test_cli_dontcare_id_is_the_last_class(files, capsys):
    argv = _single(files, label=files.dontcare, output=files.root / "out" / "dontcare.png")
    code, _, err = _run(argv, capsys)
    assert code != 0 and "class ids 255" in err  # the synthetic scenes have no don't-care id
    code, _, err = _run([*argv, "--dontcare-label", 255], capsys)
    assert code == 0, err


def test_cli_folder_mode_pairs_by_stem(files, capsys):
    exemplars, exemplar_labels, out = files.root / "ex", files.root / "ex_labels", files.root / "out" / "batch"
    exemplars.mkdir()
    exemplar_labels.mkdir()
    for i in (1, 2, 3):  # scene0 has no exemplar: skipped with a warning
        (exemplars / f"scene{i}.png").write_bytes(files.photo((i + 1) % 4).read_bytes())
        (exemplar_labels / f"scene{i}.png").write_bytes(files.label((i + 1) % 4).read_bytes())
    code, stdout, err = _run(
        ["single", "--checkpoint", files.checkpoint, "--label", files.labels_dir, "--exemplar", exemplars,
         "--exemplar-label", exemplar_labels, "--output", out],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["scene1.png", "scene2.png", "scene3.png"]
    assert "scene0" in err and stdout.count("wrote") == 3
    assert all(_png(p).shape == (SIZE, SIZE, 3) for p in out.iterdir())


def test_cli_folder_of_layouts_with_one_exemplar(files, capsys):
    out = files.root / "out" / "one_exemplar"
    code, _, err = _run(
        ["single", "--checkpoint", files.checkpoint, "--label", files.labels_dir, "--exemplar", files.photo(2),
         "--exemplar-label", files.label(2), "--output", out],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == [f"scene{i}.png" for i in range(4)]


def test_cli_interpolate(files, capsys):
    out, frames = files.root / "out" / "strip.png", files.root / "out" / "frames"
    code, _, err = _run(
        ["interpolate", "--checkpoint", files.checkpoint, "--label", files.label(0),
         "--exemplar", files.photo(1), files.photo(2), "--exemplar-label", files.label(1), files.label(2),
         "--steps", 3, "--output", out, "--frames-dir", frames],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    assert _png(out).shape == (*grid_size(1, 5, (SIZE, SIZE)), 3)  # exemplar a | 3 steps | exemplar b
    assert len(list(frames.glob("*.png"))) == 3


def test_cli_spatial(files, capsys):
    out = files.root / "out" / "spatial.png"
    code, _, err = _run(
        ["spatial", "--checkpoint", files.checkpoint, "--label", files.label(0),
         "--exemplar", files.photo(1), files.photo(2), "--exemplar-label", files.label(1), files.label(2),
         "--output", out],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    assert _png(out).shape == (SIZE, SIZE, 3)


def test_cli_extrapolate(files, capsys):
    out = files.root / "out" / "extrapolated.png"
    code, _, err = _run(
        ["extrapolate", "--checkpoint", files.checkpoint, "--canvas-label", files.label(3), "--size", 64,
         "--exemplar", files.photo(1), "--exemplar-label", files.label(1), "--patch", SIZE, "--stride", 16,
         "--output", out],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    assert _png(out).shape == (64, 64, 3)


def test_cli_swap_grid(files, capsys):
    out = files.root / "out" / "grid.png"
    scenes = [0, 1]
    code, _, err = _run(
        ["swap-grid", "--checkpoint", files.checkpoint, "--labels", *map(files.label, scenes),
         "--exemplars", *map(files.photo, scenes), "--exemplar-labels", *map(files.label, scenes), "--output", out],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    assert _png(out).shape == (*grid_size(3, 3, (SIZE, SIZE)), 3)


def test_cli_attention(files, capsys):
    out = files.root / "out" / "attention.png"
    code, _, err = _run(
        ["attention", "--checkpoint", files.checkpoint, "--label", files.label(0), "--exemplar", files.photo(1),
         "--exemplar-label", files.label(1), "--scale", 1, "--output", out],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    assert _png(out).shape == (*grid_size(5, 8, (SIZE, SIZE)), 3)  # header + 2 x (alpha row, beta row)


BAD_INPUTS = {
    "missing checkpoint": (lambda f: _single(f, checkpoint=f.root / "nope.pt"), "no such checkpoint"),
    "run folder without checkpoints": (lambda f: _single(f, checkpoint=f.empty_run), "no checkpoint_*.pt"),
    "not a checkpoint": (lambda f: _single(f, checkpoint=f.not_checkpoint), "not a checkpoint file"),
    "foreign torch file": (lambda f: _single(f, checkpoint=f.foreign), "not an msca-fast training checkpoint"),
    "other configuration": (lambda f: _single(f, checkpoint=f.other_config), "does not fit"),
    "missing label": (lambda f: _single(f, label=f.root / "nope.png"), "no such label map"),
    "missing exemplar": (lambda f: _single(f, exemplar=f.root / "nope.jpg"), "no such exemplar image"),
    "corrupt exemplar": (lambda f: _single(f, exemplar=f.corrupt), "cannot read"),
    "corrupt label": (lambda f: _single(f, label=f.corrupt), "cannot read"),
    "colour label map": (lambda f: _single(f, label=f.rgb_label), "one class id per pixel"),
    "label ids out of range": (lambda f: _single(f, label=f.bad_ids), "bad_ids.png': class ids 12, 200"),
    "exemplar label ids out of range": (lambda f: _single(f, exemplar_label=f.bad_ids), "class ids 12, 200"),
    "exemplar label size": (lambda f: _single(f, exemplar_label=f.big_label), "--exemplar-size"),
    "no exemplar label": (lambda f: _single(f, exemplar_label=None), "--exemplar-parser MODULE:CALLABLE"),
    "parser not found": (lambda f: _single(f, exemplar_label=None, exemplar_parser="no_such_mod:f"), "cannot import"),
    "parser output": (
        lambda f: _single(f, exemplar_label=None, exemplar_parser=f"{f.parser_module}:wrong_shape"),
        "expected the image's size",
    ),
    "label too small": (lambda f: _single(f, label=f.small_label), "at least 16"),
    "bad size": (lambda f: _single(f, size=[1, 2, 3]), "--size: expected N"),
    "unknown output format": (lambda f: _single(f, output=f.root / "out.unknown"), "cannot write"),
    "folder mode into a file": (lambda f: _single(f, label=f.labels_dir, output=f.label(0)), "must be a folder"),
    "missing option": (lambda f: _single(f, output=None), "required: --output"),
    "ablation has no attention": (
        lambda f: ["attention", "--checkpoint", f.gap, "--label", f.label(0), "--exemplar", f.photo(1),
                   "--exemplar-label", f.label(1), "--output", f.root / "out" / "x.png"],
        "no attention maps",
    ),  # fmt: skip
    "patch larger than the canvas": (
        lambda f: ["extrapolate", "--checkpoint", f.checkpoint, "--canvas-label", f.label(0), "--exemplar",
                   f.photo(1), "--exemplar-label", f.label(1), "--patch", 64, "--output", f.root / "out" / "x.png"],
        "patch: expected",
    ),  # fmt: skip
    "one step": (
        lambda f: ["interpolate", "--checkpoint", f.checkpoint, "--label", f.label(0), "--exemplar", f.photo(1),
                   f.photo(2), "--exemplar-label", f.label(1), f.label(2), "--steps", 1, "--output", f.root / "x.png"],
        "--steps",
    ),  # fmt: skip
    "swap grid label count": (
        lambda f: ["swap-grid", "--checkpoint", f.checkpoint, "--labels", f.label(0), "--exemplars", f.photo(1),
                   f.photo(2), "--exemplar-labels", f.label(1), "--output", f.root / "x.png"],
        "one per exemplar",
    ),  # fmt: skip
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_cli_bad_input_gives_one_line_error(files, capsys, case):
    make_argv, expected = BAD_INPUTS[case]
    code, _, err = _run(make_argv(files), capsys)
    assert code != 0
    assert "Traceback" not in err
    last_line = err.strip().splitlines()[-1]
    assert expected in last_line and "error:" in last_line
