"""Evaluation building blocks: colour correction, retrieval, task construction, report formats."""

from __future__ import annotations

import json

import pytest
import torch

from msca_fast.data.synthetic import SyntheticScenes
from msca_fast.evaluation.color import lab_to_rgb, reinhard_transfer, rgb_to_lab
from msca_fast.evaluation.report import markdown_table, write_html, write_json
from msca_fast.evaluation.retrieval import histogram_intersection, label_histograms, retrieve_exemplars
from msca_fast.evaluation.tasks import build_task


def test_lab_round_trip_and_known_values():
    image = torch.rand(2, 3, 5, 7) * 2 - 1
    assert torch.allclose(lab_to_rgb(rgb_to_lab(image)), image, atol=1e-5)
    white = torch.ones(1, 3, 1, 1)
    assert torch.allclose(rgb_to_lab(white).flatten().float(), torch.tensor([100.0, 0.0, 0.0]), atol=1e-2)


def test_reinhard_transfer_matches_the_reference_statistics():
    gen = torch.Generator().manual_seed(0)
    source = torch.rand(1, 3, 16, 16, generator=gen) * 0.5 - 0.5
    reference = torch.rand(1, 3, 16, 16, generator=gen) * 0.6
    out = rgb_to_lab(reinhard_transfer(source, reference))
    ref = rgb_to_lab(reference)
    assert torch.allclose(out.mean((2, 3)), ref.mean((2, 3)), atol=0.5)
    assert torch.allclose(out.std((2, 3)), ref.std((2, 3)), rtol=0.05)
    assert torch.allclose(reinhard_transfer(reference, reference), reference, atol=1e-4)


def test_histogram_intersection_and_retrieval():
    labels = torch.zeros(3, 4, 4, dtype=torch.long)
    labels[1, :, 2:] = 1  # right half class 1
    labels[2, :, 2:] = 1  # the same layout but for one pixel of class 2
    labels[2, 0, 0] = 2
    h = label_histograms(labels, 3)
    assert torch.allclose(h.sum(1), torch.ones(3, dtype=torch.float64))
    scores = histogram_intersection(h)
    assert scores[0, 1] == 0.5 and scores[1, 2] == 15 / 16
    assert retrieve_exemplars(labels, 3) == [1, 2, 1]  # the most pixels in agreement wins
    with pytest.raises(ValueError, match="at least 2 images"):
        retrieve_exemplars(labels[:1], 3)


def test_tasks_pick_the_documented_exemplars_and_truths():
    scenes = SyntheticScenes(num_images=3, size=32, seed=7)
    items = [scenes[i] for i in range(3)]
    images, labels, names = [it["image"] for it in items], [it["label"] for it in items], [it["name"] for it in items]
    dup = build_task("duplicate", images, labels, names, scenes.num_classes)
    assert torch.equal(dup[0].exemplar_image, images[0]) and torch.equal(dup[0].truth, images[0])
    mirror = build_task("mirror", images, labels, names, scenes.num_classes)
    assert torch.equal(mirror[1].exemplar_image, images[1].flip(-1)) and torch.equal(mirror[1].truth, images[1])
    transfer = build_task("style-transfer", images, labels, names, scenes.num_classes, dataset=scenes)
    assert torch.equal(transfer[0].target_label, labels[0])  # labels depend only on the layout
    assert torch.equal(transfer[0].exemplar_image, images[1])
    assert not torch.equal(transfer[0].truth, images[0])  # the target layout in scene 1's style
    retrieve = build_task("retrieve", images, labels, names, scenes.num_classes)
    assert all(not torch.equal(s.exemplar_image, images[i]) for i, s in enumerate(retrieve))
    with pytest.raises(ValueError, match="needs the synthetic data set"):
        build_task("style-transfer", images, labels, names, scenes.num_classes, dataset=None)
    with pytest.raises(ValueError, match="task: expected one of"):
        build_task("copying", images, labels, names, scenes.num_classes)


def test_report_formats(tmp_path):
    results = {"full": {"duplicate": {"psnr": 21.5, "lpips": 0.25, "fid": None, "style": 0.001}}, "gap": {}}
    table = markdown_table(results, {"fid": "weights missing"})
    assert "| duplicate | PSNR ↑ | 21.50 | n/a |" in table
    assert "| duplicate | LPIPS ↓ | 0.2500 | n/a |" in table
    assert "fid: n/a (weights missing)" in table
    write_json(tmp_path / "r.json", {"results": results})
    assert json.loads((tmp_path / "r.json").read_text())["results"] == results
    write_html(tmp_path / "index.html", "t<1>", table, {"duplicate": ["samples/duplicate/0000.png"]})
    page = (tmp_path / "index.html").read_text()
    assert "t&lt;1&gt;" in page and "samples/duplicate/0000.png" in page
