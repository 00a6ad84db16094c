"""python -m msca_fast.evaluate and python -m msca_fast.ablation end to end on a tiny checkpoint."""

from __future__ import annotations

import importlib
import json
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from msca_fast import ablation, evaluate
from msca_fast.evaluation.metric_setup import missing_reason
from msca_fast.models.vgg import VGG19_SOURCE

from tiny_run import TINY_ARGS, tiny_checkpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("tiny_run"))


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """An empty hub cache and downloads that fail, so metric networks are missing."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def refuse(url, *args, **kwargs):
        raise OSError(f"test blocked a download of {url}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    for name in ("MSCA_FAST_VGG16_WEIGHTS", "MSCA_FAST_FID_INCEPTION_WEIGHTS", "MSCA_FAST_VGG19_WEIGHTS"):
        monkeypatch.delenv(name, raising=False)


def evaluate_quietly(argv):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # random-VGG warnings
        return evaluate.main(argv)


def test_evaluate_writes_table_json_and_html(checkpoint, tmp_path):
    out = tmp_path / "eval"
    argv = ["--checkpoint", str(checkpoint), "--num-images", "5", "--size", "32", "--output-dir", str(out),
            "--metrics", "psnr", "style", "--vgg-weights", "random", "--rows", "2"]  # fmt: skip
    assert evaluate_quietly(argv) == 0
    payload = json.loads((out / "results.json").read_text())
    results = payload["results"][checkpoint.name]
    assert set(results) == {"duplicate", "mirror", "retrieve", "style-transfer"}
    for values in results.values():
        assert 0 < values["psnr"] < 100 and values["style"] >= 0
        assert values["region_error_class_copy"] <= values["region_error_global"]
        assert 0 <= values["purity_area"] <= values["purity"] + 0.5 and 0 <= values["channel_entropy"] <= 1
    transfer = results["style-transfer"]
    assert transfer["sensitivity"] > 0 and "sensitivity" not in results["mirror"]
    assert -5 < transfer["region_score"] < 5 and transfer["psnr_class_copy"] > transfer["psnr_global"]
    assert "| style-transfer | PSNR ↑ |" in (out / "results.md").read_text()
    page = (out / "index.html").read_text()
    rows = list((out / "samples" / "mirror").glob("*.png"))
    assert len(rows) == 2 and all(f"samples/mirror/{p.name}" in page for p in rows)
    assert Image.open(rows[0]).size[0] > Image.open(rows[0]).size[1]  # one row of four tiles


def installed(module: str) -> bool:
    """Whether ``module`` (an optional package's) can be imported."""
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def test_missing_metric_networks_are_reported_not_faked(checkpoint, tmp_path, offline, capsys):
    out = tmp_path / "eval"
    argv = ["--checkpoint", str(checkpoint), "--num-images", "3", "--size", "32", "--output-dir", str(out),
            "--tasks", "duplicate", "--metrics", "psnr", "lpips", "fid", "style"]  # fmt: skip
    assert evaluate_quietly(argv) == 0
    payload = json.loads((out / "results.json").read_text())
    assert payload["results"][checkpoint.name]["duplicate"]["lpips"] is None
    assert set(payload["missing"]) == {"lpips", "fid", "style"}
    hub = tmp_path / "hub" / "checkpoints"
    # What each one-line reason must say: where to save the weights file and which flag takes its
    # path or, when the metric's optional package is not installed, how to install it.
    advice = {}
    inception = "weights-inception-2015-12-05-6726825d.pth"
    for metric, package, flag, file in [
        ("lpips", "lpips", "--lpips-weights", "vgg16-397923af.pth"),
        ("fid", "torch_fidelity.feature_extractor_inceptionv3", "--fid-weights", inception),
        ("style", None, "--vgg-weights", "vgg19-dcbb9e9d.pth"),
    ]:  # fmt: skip
        where_to_put = [f"as {hub / file}", f"{flag} PATH"]
        advice[metric] = where_to_put if package is None or installed(package) else ["pip install 'msca-fast[eval]'"]
        reason = payload["missing"][metric]
        assert "\n" not in reason and all(words in reason for words in advice[metric]), reason
        assert "=PATH" not in reason and not reason.endswith(":"), reason
    table = capsys.readouterr().out
    assert "lpips: n/a (" in table and all(words in table for words in advice["lpips"])
    assert evaluate_quietly([*argv, "--strict"]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "--strict" in line]  # one per missing metric
    assert lines[0].startswith("evaluate: error: --strict: lpips: ") and all(w in lines[0] for w in advice["lpips"])
    assert lines[1].startswith("--strict: fid: ") and lines[2].startswith("--strict: style: ") and len(lines) == 3
    assert "--vgg-weights PATH" in lines[2] and "backbone_weights" not in err


def test_a_missing_package_keeps_its_whole_advice_on_one_line():
    message = "LPIPS needs the 'lpips' package, which is not installed.\nInstall it: pip install lpips"
    assert missing_reason("lpips", message) == message.replace("\n", " ")
    message = VGG19_SOURCE.instructions("none given or cached, and the download failed (offline)")
    failed = "ImageNet VGG-19 weights are unavailable: none given or cached, and the download failed (offline)."
    assert message.startswith(failed + "\n")
    reason = missing_reason("style", message)
    assert reason.startswith(failed + " Save https://")
    assert "ways:" not in reason and reason.endswith("--vgg-weights PATH or in $MSCA_FAST_VGG19_WEIGHTS.")


def test_bad_inputs_exit_with_a_message(checkpoint, tmp_path, capsys):
    folder = tmp_path / "folder"
    (folder / "images").mkdir(parents=True)
    (folder / "labels").mkdir()
    Image.new("RGB", (20, 20)).save(folder / "images" / "a.png")
    Image.new("L", (20, 20)).save(folder / "labels" / "a.png")
    cases = [
        (["--checkpoint", str(tmp_path / "missing.pt")], "no such checkpoint"),
        (["--checkpoint", str(checkpoint), "--dataset", "folder", "--data-root", str(folder), "--label-nc", "3"],
         "trained with 12 classes"),
        (["--checkpoint", str(checkpoint), "--tasks", "style-transfer", "--dataset", "folder",
          "--data-root", str(folder), "--label-nc", "12"], "needs the synthetic data set"),
        (["--checkpoint", str(checkpoint), "--lpips-weights", str(tmp_path / "nope.pth")],
         f"lpips_weights: no such file {str(tmp_path / 'nope.pth')!r}"),
    ]  # fmt: skip
    for argv, message in cases:
        assert evaluate_quietly([*argv, "--output-dir", str(tmp_path / "e"), "--metrics", "psnr"]) == 2
        err = capsys.readouterr().err
        assert "evaluate: error:" in err and message in err and len(err.strip().splitlines()) == 1, err


def test_evaluates_a_folder_with_the_training_dataset_options(checkpoint, tmp_path):
    """--dontcare-label makes 11 stored classes plus don't-care the checkpoint's 12, as in training."""
    folder = tmp_path / "folder"
    (folder / "images").mkdir(parents=True)
    (folder / "labels").mkdir()
    for i in range(3):
        Image.new("RGB", (40, 40), (60 * i, 90, 30)).save(folder / "images" / f"s{i}.png")
        ids = np.full((40, 40), i, np.uint8)
        ids[:8] = 255
        Image.fromarray(ids).save(folder / "labels" / f"s{i}.png")
    argv = ["--checkpoint", str(checkpoint), "--dataset", "folder", "--data-root", str(folder), "--label-nc", "11",
            "--size", "32", "--tasks", "duplicate", "--metrics", "psnr",
            "--output-dir", str(tmp_path / "e")]  # fmt: skip
    assert evaluate_quietly(argv) == 2  # 11 classes: not the model's 12
    assert evaluate_quietly([*argv, "--dontcare-label", "255"]) == 0
    payload = json.loads((tmp_path / "e" / "results.json").read_text())
    assert payload["num_images"] == 3 and payload["results"][checkpoint.name]["duplicate"]["psnr"] > 0


def test_ablation_trains_and_compares_variants(tmp_path):
    argv = ["--output-dir", str(tmp_path), "--variants", "msca", "gap", "--eval-num-images", "3",
            "--eval-size", "32", "--eval-metrics", "psnr", "--eval-tasks", "duplicate",
            *TINY_ARGS, "--pretrain-steps", "0", "--steps", "1"]  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert ablation.main(argv) == 0
    table = (tmp_path / "ablation.md").read_text()
    assert "| task | measure | full | GAP |" in table and "| duplicate | attention purity ↑ |" in table
    results = json.loads((tmp_path / "ablation.json").read_text())["results"]
    assert results["full"]["duplicate"]["psnr"] != results["GAP"]["duplicate"]["psnr"]
    assert "purity" in results["full"]["duplicate"] and "purity" not in results["GAP"]["duplicate"]
    grid = Image.open(tmp_path / "comparison.png")
    assert grid.size[0] > 4 * 32 and grid.size[1] > 6 * 32  # 5 columns, 6 rows of 32x32 tiles
    assert sorted(p.name for p in (tmp_path / "attention").iterdir()) == [f"attention_s{i}.png" for i in range(3)]
    assert ablation.main(["--output-dir", str(tmp_path), "--variant", "gap"]) == 2
