"""Style and spatial interpolation (msca_fast.synthesis.interpolation and the ``interpolate`` and
``spatial`` commands): their ends are the single syntheses with exemplar a and b, and every
frame is the decoder run on the two exemplars' aligned features mixed as documented, derived
here from ``Generator.align`` and ``Generator.decode`` directly."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

import msca_fast.synthesize as synthesize_cli
from msca_fast import synthesis
from msca_fast.models.generator import AlignedFeatures

from synthesis_models import GREY_LEVEL, SIZE, grey_levels, read_png, synthesis_scenes, tile

LAYOUT, A, B = 0, 1, 2  # scenes


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> SimpleNamespace:
    """A generator and its checkpoint; the layout and the two exemplars as files and tensors,
    and the single syntheses with a and with b."""
    scenes = synthesis_scenes(tmp_path_factory.mktemp("interpolation"), 3)
    g, c1 = scenes.g, scenes.labels[LAYOUT]
    a, b = (scenes.photos[A], scenes.labels[A]), (scenes.photos[B], scenes.labels[B])
    only_a, only_b = synthesis.synthesize(g, c1, *a), synthesis.synthesize(g, c1, *b)
    assert (only_a - only_b).abs().mean() > 5 * GREY_LEVEL  # the exemplars give visibly different images
    with torch.no_grad():
        aligned = g.align(c1, *a), g.align(c1, *b)
    return SimpleNamespace(
        root=scenes.root, g=g, checkpoint=scenes.checkpoint, files=scenes.files,
        c1=c1, a=a, b=b, only_a=only_a, only_b=only_b, aligned=aligned,
    )  # fmt: skip


def _mixed(scenes, weights_of_b) -> torch.Tensor:
    """decode((1 - w_i) F_x1^(i)(a) + w_i F_x1^(i)(b), F_c1^(i)) with the generator's own align
    and decode; ``weights_of_b(i, height, width)`` gives scale i's weight."""
    aligned_a, aligned_b = scenes.aligned
    image = []
    for i, (fa, fb) in enumerate(zip(aligned_a.image, aligned_b.image)):
        w = weights_of_b(i, *fa.shape[-2:])
        image.append((1 - w) * fa + w * fb)
    with torch.no_grad():
        return scenes.g.decode(AlignedFeatures(image, aligned_a.labels))


def test_style_interpolation_runs_from_a_to_b_through_the_mixed_features(scenes):
    ts = [1.0, 0.25, 0.0, 0.5]  # out of order: frame k belongs to ts[k]
    frames = synthesis.interpolate_styles(scenes.g, scenes.c1, scenes.a, scenes.b, ts)
    assert len(frames) == len(ts)
    torch.testing.assert_close(frames[0], scenes.only_b, atol=1e-6, rtol=0)
    torch.testing.assert_close(frames[2], scenes.only_a, atol=1e-6, rtol=0)
    for k in (1, 3):
        expected = _mixed(scenes, lambda i, h, w: ts[k])
        torch.testing.assert_close(frames[k], expected, atol=1e-5, rtol=0)
    middle = frames[3]
    assert min((middle - scenes.only_a).abs().mean(), (middle - scenes.only_b).abs().mean()) > GREY_LEVEL


def test_spatial_interpolation_ramps_from_a_on_the_left_to_b_on_the_right(scenes):
    out = synthesis.spatial_interpolation(scenes.g, scenes.c1, scenes.a, scenes.b)

    def ramp(i, height, width):  # 0 in the first column to 1 in the last, at each scale's size
        return (torch.arange(width, dtype=torch.float32) / (width - 1)).expand(1, 1, height, width)

    torch.testing.assert_close(out, _mixed(scenes, ramp), atol=1e-5, rtol=0)
    left, right = slice(0, SIZE // 4), slice(-SIZE // 4, None)
    for columns, near, far in ((left, scenes.only_a, scenes.only_b), (right, scenes.only_b, scenes.only_a)):
        # the outer quarters look most like their own side's exemplar
        closeness = [(out[..., columns] - image[..., columns]).abs().mean() for image in (near, far)]
        assert closeness[0] < closeness[1]


def test_a_custom_weight_map_is_averaged_over_each_scales_cells(scenes):
    weight = torch.rand(SIZE, SIZE, generator=torch.Generator().manual_seed(4))

    def block_means(i, height, width):  # scale i's cell = a 2^i x 2^i block of pixels
        return weight.reshape(height, SIZE // height, width, SIZE // width).mean(dim=(1, 3))[None, None]

    out = synthesis.spatial_interpolation(scenes.g, scenes.c1, scenes.a, scenes.b, weight)
    torch.testing.assert_close(out, _mixed(scenes, block_means), atol=1e-5, rtol=0)


def test_the_interpolate_command_writes_the_strip_and_frames_of_its_files(scenes, capsys):
    files, strip, frames = scenes.files, scenes.root / "strip.png", scenes.root / "frames"
    argv = ["interpolate", "--checkpoint", scenes.checkpoint, "--device", "cpu", "--label", files.label(LAYOUT),
            "--exemplar", files.photo(A), files.photo(B), "--exemplar-label", files.label(A), files.label(B),
            "--steps", 3, "--output", strip, "--frames-dir", frames]  # fmt: skip
    assert synthesize_cli.main([str(a) for a in argv]) == 0, capsys.readouterr().err
    expected = [scenes.only_a, _mixed(scenes, lambda i, h, w: 0.5), scenes.only_b]
    written = read_png(strip)
    assert written.shape == (3, SIZE + 4, 5 * (SIZE + 2) + 2)  # exemplar a | t = 0, 0.5, 1 | exemplar b
    assert (tile(written, 0, 0, (SIZE, SIZE)) - grey_levels(scenes.a[0])).abs().max() <= 1
    assert (tile(written, 0, 4, (SIZE, SIZE)) - grey_levels(scenes.b[0])).abs().max() <= 1
    names = ["frame_000_t0.000.png", "frame_001_t0.500.png", "frame_002_t1.000.png"]
    assert sorted(p.name for p in frames.iterdir()) == names
    for k, (image, name) in enumerate(zip(expected, names)):
        assert (tile(written, 0, k + 1, (SIZE, SIZE)) - grey_levels(image)).abs().max() <= 1
        assert (read_png(frames / name) - grey_levels(image)).abs().max() <= 1


def test_the_spatial_command_writes_the_gradient_of_its_files(scenes, capsys):
    files, out = scenes.files, scenes.root / "spatial.png"
    argv = ["spatial", "--checkpoint", scenes.checkpoint, "--device", "cpu", "--label", files.label(LAYOUT),
            "--exemplar", files.photo(A), files.photo(B), "--exemplar-label", files.label(A), files.label(B),
            "--output", out]  # fmt: skip
    assert synthesize_cli.main([str(a) for a in argv]) == 0, capsys.readouterr().err
    expected = synthesis.spatial_interpolation(scenes.g, scenes.c1, scenes.a, scenes.b)
    assert (read_png(out) - grey_levels(expected)).abs().max() <= 1
