"""One command-line pattern: thin parsers over train(config), evaluate(config), ablate(config)
and synthesize_files(command, config, ...), every model option on train.py's command line, and
the errors every command reports alike."""

from __future__ import annotations

import argparse
import runpy
import signal
import sys

import pytest
import torch

from msca_fast import ablation, cli, demo, evaluate, synthesize
from msca_fast import train as train_cli
from msca_fast.data.catalog import DatasetOptions
from msca_fast.evaluation.ablation import AblationConfig
from msca_fast.evaluation.config import EvalConfig
from msca_fast.models.config import ModelConfig
from msca_fast.synthesis.commands import run_extrapolate, run_interpolate
from msca_fast.synthesis.session import SynthesisConfig
from msca_fast.training import checkpoint as ckpt
from msca_fast.training.config import MODEL_OPTIONS, TrainConfig, make_config
from msca_fast.training.interrupt import StopRequested
from msca_fast.training.trainer import model_config_for

from repo_root import ROOT
from tiny_run import train_tiny

COMMANDS = {"train.py": train_cli, "evaluate": evaluate, "synthesize": synthesize, "ablation": ablation, "demo": demo}

# A value other than the cpu-demo preset's for every model option, as train.py arguments.
MODEL_ARGUMENTS = {
    "alignment": (["--variant", "gap"], "gap"),
    "msca_backend": (["--msca-backend", "reference"], "reference"),
    "attention_logit_scale": (["--attention-logit-scale", "3.5"], 3.5),
    "num_regions": (["--num-regions", "2", "3", "4", "5", "6"], (2, 3, 4, 5, 6)),
    "image_feature_channels": (["--image-feature-channels", "8", "8", "8", "8", "8"], (8,) * 5),
    "label_feature_channels": (["--label-feature-channels", "4", "4", "4", "4", "4"], (4,) * 5),
    "ngf": (["--ngf", "8"], 8),
    "spade_hidden": (["--spade-hidden", "12"], 12),
    "param_free_norm": (["--param-free-norm", "instance"], "instance"),
    "padding_mode": (["--padding-mode", "zeros"], "zeros"),
    "label_slope": (["--label-slope", "0.1"], 0.1),
    "noise_channels": (["--noise-channels", "3"], 3),
    "vgg_weights": (["--vgg-weights", "random"], "random"),
    "ndf": (["--ndf", "8"], 8),
    "num_discriminators": (["--num-discriminators", "1"], 1),
    "discriminator_layers": (["--discriminator-layers", "3"], 3),
    "discriminator_norm": (["--discriminator-norm", "instance"], "instance"),
}


def train_config(*argv: str) -> TrainConfig:
    return train_cli.config_from_args(train_cli.build_parser().parse_args(list(argv)))


def test_every_model_option_has_a_flag():
    assert set(MODEL_ARGUMENTS) == set(MODEL_OPTIONS)


@pytest.mark.parametrize("option", list(MODEL_ARGUMENTS))
def test_each_model_flag_reaches_the_model_config(option):
    argv, value = MODEL_ARGUMENTS[option]
    default = getattr(make_config("cpu-demo").model, option)
    assert value != default
    cfg = train_config(*argv)
    assert getattr(cfg.model, option) == value
    assert getattr(model_config_for(cfg, 12), option) == value


def test_loss_weights_and_ema_decay_have_flags():
    cfg = train_config("--lambda-feat", "2.5", "--lambda-vgg", "0.5", "--ema-decay", "0.99")
    assert (cfg.lambda_feat, cfg.lambda_vgg, cfg.ema_decay) == (2.5, 0.5, 0.99)
    assert (make_config("cpu-demo").lambda_feat, make_config("cpu-demo").lambda_vgg) == (10.0, 10.0)


def test_python_train_py_is_the_cpu_demo_run_it_was():
    """The model and training options of the cpu-demo run RESULTS.md measures (texture settings
    of 2026-12-03 included)."""
    cfg = train_config()
    assert cfg == make_config("cpu-demo")
    expected = ModelConfig(
        num_classes=12, ngf=16, ndf=16, spade_hidden=32, image_feature_channels=(16, 32, 32, 64, 64),
        label_feature_channels=(16, 16, 32, 32, 32), attention_logit_scale=20.0, padding_mode="replicate",
        noise_channels=8, vgg_weights="auto",
    )  # fmt: skip
    assert model_config_for(cfg, 12) == expected
    assert (cfg.steps, cfg.pretrain_steps, cfg.lr_g, cfg.lambda_l1, cfg.l1_pool, cfg.output_dir) == (
        250, 300, 1e-3, 20.0, 4, "runs/cpu-demo"
    )


def test_paper_presets_train_the_papers_network():
    for preset in ("256", "512"):
        assert model_config_for(make_config(preset), 183) == ModelConfig(num_classes=183)


def test_flat_options_reach_model_or_training_and_unknown_ones_are_named():
    cfg = make_config("cpu-demo", ngf=8, lambda_l1=0.0, num_regions=[1, 2, 3, 4, 5])
    assert cfg.model.ngf == 8 and cfg.lambda_l1 == 0.0 and cfg.model.num_regions == (1, 2, 3, 4, 5)
    with pytest.raises(ValueError, match=r"unknown training options \['num_classes'\]"):
        make_config("cpu-demo", num_classes=3)
    with pytest.raises(TypeError, match="model: expected a ModelConfig"):
        TrainConfig(model={"ngf": 8})


def test_train_config_dict_leaves_the_model_to_model_config():
    saved = make_config("cpu-demo").to_dict()
    assert "model" not in saved and not set(MODEL_OPTIONS) & set(saved)
    assert saved["data"] == DatasetOptions().to_dict() and saved["patch_sizes"] == [64]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--num-regions", "8", "16"], "train.py: error: argument --num-regions: expected 5 arguments"),
        (["--num-regions", "0", "1", "1", "1", "1"], "train.py: error: num_regions: expected a positive int, got 0"),
        (["--label-slope", "1.5"], "train.py: error: label_slope: expected a number in [0, 1), got 1.5"),
        (["--discriminator-norm", "batch"], "argument --discriminator-norm: invalid choice: 'batch'"),
    ],
)
def test_bad_model_options_give_one_line_and_exit_2(tmp_path, capsys, argv, message):
    assert train_cli.main(["--output-dir", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err.splitlines()[-1] and "Traceback" not in err
    assert not any(tmp_path.iterdir())  # nothing trained


def test_model_options_from_the_command_line_are_built_and_saved_once(tmp_path):
    assert train_tiny(tmp_path, "--pretrain-steps", "0", "--steps", "1", "--num-regions", "2", "3", "3", "3", "3") == 0
    state = ckpt.load_checkpoint(tmp_path)
    assert state["model_config"]["num_regions"] == [2, 3, 3, 3, 3]
    assert not set(MODEL_OPTIONS) & set(state["train_config"]) and "model" not in state["train_config"]
    g = ckpt.load_generator(tmp_path)
    assert [a.msca.num_regions for a in g.aligners] == [2, 3, 3, 3, 3]


def test_checkpoints_whose_train_config_holds_model_options_still_resume(tmp_path):
    """Before ModelConfig moved into TrainConfig, train_config repeated nine model fields."""
    assert train_tiny(tmp_path, "--pretrain-steps", "0", "--steps", "1") == 0
    state = ckpt.load_checkpoint(tmp_path)
    old = {name: state["model_config"][name] for name in ("ngf", "ndf", "spade_hidden", "alignment", "vgg_weights")}
    state["train_config"].update(old)
    torch.save(state, ckpt.latest_checkpoint(tmp_path))
    assert train_tiny(tmp_path, "--pretrain-steps", "0", "--steps", "2", "--resume") == 0
    assert ckpt.load_checkpoint(tmp_path)["step"] == 2


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_has_the_same_shape(name, capsys):
    module = COMMANDS[name]
    parser = module.build_parser()
    assert isinstance(parser, argparse.ArgumentParser) and cli.short_name(parser.prog) == name
    assert name == "demo" or callable(module.config_from_args)  # the demo has no config, only --out
    assert module.__name__ == ("msca_fast.train" if name == "train.py" else f"msca_fast.{name}")  # one place
    assert module.main(["--help"]) == 0
    assert "--debug" in capsys.readouterr().out
    assert module.main(["--no-such-option"]) == 2
    assert "error:" in capsys.readouterr().err


def test_evaluate_defaults_are_eval_configs():
    config = evaluate.config_from_args(evaluate.build_parser().parse_args(["--checkpoint", "run"]))
    assert config == EvalConfig(checkpoint="run")
    config = evaluate.config_from_args(
        evaluate.build_parser().parse_args(["--checkpoint", "run", "--metrics", "psnr", "--size", "32"])
    )
    assert config == EvalConfig(checkpoint="run", metrics=("psnr",), size=32)
    with pytest.raises(ValueError, match="size: expected at least 16"):
        EvalConfig(checkpoint="run", size=8)


def test_synthesize_options_split_into_config_and_command_keywords():
    args = synthesize.build_parser().parse_args(
        ["interpolate", "--checkpoint", "run", "--label", "l.png", "--exemplar", "a.jpg", "b.jpg", "--output", "o.png",
         "--size", "40", "24", "--dontcare-label", "none"]
    )  # fmt: skip
    command, config, options = synthesize.config_from_args(args)
    assert command == "interpolate"
    assert config == SynthesisConfig(checkpoint="run", size=(40, 24), dontcare_label=None)
    assert options == {"label": "l.png", "exemplar": ["a.jpg", "b.jpg"], "output": "o.png"}  # steps: the default


def test_synthesize_help_shows_the_command_functions_defaults():
    assert cli.default_text(run_interpolate, "steps") == "default 5"
    sub = synthesize.build_parser()._subparsers._group_actions[0].choices
    assert "default 128" in sub["extrapolate"].format_help()
    assert cli.default_text(run_extrapolate, "stride") == "default 128"


def test_ablation_builds_each_variant_from_one_train_config(tmp_path):
    args = ablation.build_parser().parse_args(
        ["--output-dir", str(tmp_path), "--variants", "gap", "no_global", "--eval-size", "32", "--ngf", "8",
         "--dataset", "folder", "--data-root", "d", "--label-nc", "3", "--dontcare-label", "255"]
    )  # fmt: skip
    config = ablation.config_from_args(args)
    assert isinstance(config, AblationConfig) and config.variants == ("gap", "no_global")
    assert config.train == train_config("--ngf", "8", "--dataset", "folder", "--data-root", "d", "--label-nc", "3",
                                        "--dontcare-label", "255")  # fmt: skip
    gap, no_global = config.training("gap"), config.training("no_global")
    assert (gap.model.alignment, gap.lambda_global, gap.resume) == ("gap", 1.0, "latest")
    assert (no_global.model.alignment, no_global.lambda_global) == ("msca", 0.0)
    assert gap.output_dir == str(tmp_path / "gap") and gap.model == config.train.model.replace(alignment="gap")
    per_variant = ("output_dir", "resume", "lambda_global")
    assert {k: v for k, v in no_global.to_dict().items() if k not in per_variant} == {
        k: v for k, v in config.train.to_dict().items() if k not in per_variant
    }
    evaluation = config.evaluation(tmp_path / "gap")
    assert evaluation.data == DatasetOptions("folder", data_root="d", label_nc=3, dontcare_label=255, num_images=100)
    assert evaluation.size == 32


@pytest.mark.parametrize("flag", ["--variant", "--lambda-global", "--resume"])
def test_ablation_refuses_what_it_sets_per_variant(flag, capsys):
    assert ablation.main([flag, "1"]) == 2
    assert f"unrecognized arguments: {flag}" in capsys.readouterr().err


def test_errors_are_reported_alike(capsys):
    parser = cli.new_parser("python -m msca_fast.example", None)

    def fail(error: BaseException):
        def action(args):
            raise error

        return action

    assert cli.run_command(parser, [], fail(ValueError("size: expected a positive int, got 0"))) == 2
    assert capsys.readouterr().err == "example: error: size: expected a positive int, got 0\n"
    assert cli.run_command(parser, [], fail(FileNotFoundError("no such file 'x'"))) == 2
    assert cli.run_command(parser, [], fail(KeyboardInterrupt())) == 130
    assert cli.run_command(parser, [], fail(StopRequested(signal.SIGTERM))) == 143
    capsys.readouterr()
    assert cli.run_command(parser, [], fail(RuntimeError("kernel\nfailed"))) == 1
    err = capsys.readouterr().err
    assert err == "example: error: unexpected RuntimeError: kernel failed (rerun with --debug for the traceback)\n"
    with pytest.raises(RuntimeError, match="kernel"):
        cli.run_command(parser, ["--debug"], fail(RuntimeError("kernel")))


def test_train_py_runs_the_cli_main(monkeypatch):
    called = []
    monkeypatch.setattr(train_cli, "main", lambda: called.append(True) or 0)
    monkeypatch.setattr(sys, "argv", ["train.py"])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_path(str(ROOT / "train.py"), run_name="__main__")
    assert exit_.value.code == 0 and called == [True]
