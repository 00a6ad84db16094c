"""Batched synthesis equals synthesis one item at a time: a batch of tensors through
``synthesis.synthesize``, and the folder modes of ``synthesize single`` (msca_fast.synthesis.batch),
where every output file must be its own pair's single synthesis."""

from __future__ import annotations

import functools
import shutil
from types import SimpleNamespace

import pytest
import torch

import msca_fast.synthesize as synthesize_cli
from msca_fast import synthesis

from synthesis_models import GREY_LEVEL, grey_levels, read_png, synthesis_scenes

pytestmark = pytest.mark.usefixtures("load_each_checkpoint_once")

# Folder contents by stem: the scene each file is. "c" has no exemplar and "d" no layout.
LAYOUT_FILES = {"a": 0, "b": 1, "c": 2}
EXEMPLAR_FILES = {"a": 3, "b": 2, "d": 0}


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> SimpleNamespace:
    """A generator and its checkpoint, four scenes, and folders of layouts, exemplars and
    exemplar labels named by stem (:data:`LAYOUT_FILES`, :data:`EXEMPLAR_FILES`)."""
    scenes = synthesis_scenes(tmp_path_factory.mktemp("batch"), 4)
    root, g, files = scenes.root, scenes.g, scenes.files
    folders = SimpleNamespace(layouts=root / "layouts", photos=root / "ex_photos", photo_labels=root / "ex_labels")
    for folder in vars(folders).values():
        folder.mkdir()
    for stem, scene in LAYOUT_FILES.items():
        shutil.copy(files.label(scene), folders.layouts / f"{stem}.png")
    for stem, scene in EXEMPLAR_FILES.items():
        shutil.copy(files.photo(scene), folders.photos / f"{stem}.png")
        shutil.copy(files.label(scene), folders.photo_labels / f"{stem}.png")

    @functools.cache
    def alone(layout: int, exemplar: int) -> torch.Tensor:
        """Scene ``layout``'s labels in scene ``exemplar``'s style, synthesized on their own."""
        return synthesis.synthesize(g, scenes.labels[layout], scenes.photos[exemplar], scenes.labels[exemplar])

    scenes.folders, scenes.alone = folders, alone
    return scenes


def _single(scenes, capsys, label, exemplar, exemplar_label, output) -> str:
    """Run ``synthesize single``; returns its stderr."""
    argv = ["single", "--checkpoint", scenes.checkpoint, "--device", "cpu", "--label", label,
            "--exemplar", exemplar, "--exemplar-label", exemplar_label, "--output", output]  # fmt: skip
    code = synthesize_cli.main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code == 0, err
    return err


def _assert_outputs(folder, expected: dict[str, torch.Tensor]) -> None:
    """``folder`` holds exactly ``<stem>.png`` for each stem, each the expected image."""
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{stem}.png" for stem in expected)
    for stem, image in expected.items():
        assert (read_png(folder / f"{stem}.png") - grey_levels(image)).abs().max() <= 1, stem


def test_a_batch_of_tensors_is_each_item_synthesized_alone(scenes):
    pairs = [(0, 3), (1, 2), (2, 1)]
    c1 = torch.cat([scenes.labels[i] for i, _ in pairs])
    x2 = torch.cat([scenes.photos[j] for _, j in pairs])
    c2 = torch.cat([scenes.labels[j] for _, j in pairs])
    batch = synthesis.synthesize(scenes.g, c1, x2, c2)
    for k, pair in enumerate(pairs):
        torch.testing.assert_close(batch[k : k + 1], scenes.alone(*pair), atol=1e-5, rtol=0)


def test_two_folders_pair_their_files_by_stem(scenes, capsys):
    out = scenes.root / "out_pairs"
    err = _single(scenes, capsys, scenes.folders.layouts, scenes.folders.photos, scenes.folders.photo_labels, out)
    assert "skipping 2 file(s)" in err and "c, d" in err
    _assert_outputs(out, {stem: scenes.alone(LAYOUT_FILES[stem], EXEMPLAR_FILES[stem]) for stem in ("a", "b")})
    assert (scenes.alone(0, 3) - scenes.alone(0, 2)).abs().mean() > 5 * GREY_LEVEL  # a wrong pairing shows


def test_a_folder_of_layouts_takes_one_exemplars_style(scenes, capsys):
    out = scenes.root / "out_layouts"
    _single(scenes, capsys, scenes.folders.layouts, scenes.files.photo(1), scenes.files.label(1), out)
    _assert_outputs(out, {stem: scenes.alone(scene, 1) for stem, scene in LAYOUT_FILES.items()})


def test_one_layout_takes_each_exemplars_style_named_by_the_exemplar(scenes, capsys):
    out = scenes.root / "out_exemplars"
    _single(scenes, capsys, scenes.files.label(0), scenes.folders.photos, scenes.folders.photo_labels, out)
    _assert_outputs(out, {stem: scenes.alone(0, scene) for stem, scene in EXEMPLAR_FILES.items()})
