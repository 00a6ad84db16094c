"""A generator exported with torch.export: the MSCA op stays the registered custom op, the file
loads in a fresh process and gives the eager generator's output; bad files and sizes are named."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from msca_fast import export as export_command
from msca_fast.synthesis.exported import MSCA_OP, export_generator, load_exported

from model_helpers import generator_inputs, label_map, tiny_generator
from repo_root import ROOT
from synthesis_models import responsive_generator, write_checkpoint

SIZE = (32, 48)

FRESH_PROCESS = """
import sys, torch
from msca_fast.synthesis.exported import load_exported
exported = load_exported(sys.argv[1])
c1, x2, c2 = torch.load(sys.argv[2], weights_only=True)
with torch.inference_mode():
    torch.save(exported(c1, x2, c2), sys.argv[3])
"""


@pytest.fixture(scope="module")
def exported_file(tmp_path_factory):
    torch.manual_seed(0)
    generator = tiny_generator(noise_channels=2).eval()
    path = export_generator(generator, tmp_path_factory.mktemp("export") / "g.pt2", size=SIZE)
    return generator, path


def test_the_program_calls_the_msca_op_once_per_scale(exported_file):
    generator, path = exported_file
    program = torch.export.load(path)
    calls = [node for node in program.graph.nodes if MSCA_OP in str(node.target)]
    assert len(calls) == len(generator.aligners) == 5


def test_a_fresh_process_reproduces_the_eager_output(exported_file, tmp_path):
    generator, path = exported_file
    c1, x2, c2 = generator_inputs(batch=1, size=SIZE, exemplar_size=SIZE, seed=4)
    torch.save((c1, x2, c2), tmp_path / "inputs.pt")
    subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS, str(path), str(tmp_path / "inputs.pt"), str(tmp_path / "out.pt")],
        cwd=ROOT, check=True, timeout=300,
    )  # fmt: skip
    with torch.no_grad():
        eager = generator(c1, x2, c2)
    exported = torch.load(tmp_path / "out.pt", weights_only=True)
    assert exported.shape == (1, 3, *SIZE)
    torch.testing.assert_close(exported, eager, rtol=1e-5, atol=1e-5)
    assert eager.std() > 0  # the comparison would be empty on a constant image


def test_inputs_of_another_shape_are_named(exported_file):
    _, path = exported_file
    exported = load_exported(path)
    c1, x2, c2 = generator_inputs(batch=1, size=(32, 32), exemplar_size=SIZE)
    with pytest.raises(ValueError, match=r"c1: the exported generator takes shape \(1, 5, 32, 48\)"):
        exported(c1, x2, c2)


def test_files_that_are_not_exports_are_named(tmp_path):
    with pytest.raises(ValueError, match="no such exported generator"):
        load_exported(tmp_path / "missing.pt2")
    (tmp_path / "junk.pt2").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a torch.export program"):
        load_exported(tmp_path / "junk.pt2")
    program = torch.export.export(torch.nn.Linear(2, 2), (torch.zeros(1, 2),))
    torch.export.save(program, tmp_path / "foreign.pt2")
    with pytest.raises(ValueError, match="not an msca-fast generator export"):
        load_exported(tmp_path / "foreign.pt2")


def test_the_command_exports_a_checkpoint(tmp_path, capsys):
    generator = responsive_generator()
    write_checkpoint(tmp_path / "run", generator, generator)
    output = str(tmp_path / "g.pt2")
    code = export_command.main(["--checkpoint", str(tmp_path / "run"), "--output", output, "--size", "32"])
    assert code == 0, capsys.readouterr().err
    exported = load_exported(tmp_path / "g.pt2")
    assert (exported.size, exported.batch, exported.num_classes) == ((32, 32), 1, generator.config.num_classes)
    classes = exported.num_classes
    c1, c2 = label_map(1, 32, 32, seed=1, num_classes=classes), label_map(1, 32, 32, seed=2, num_classes=classes)
    x2 = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(exported(c1, x2, c2), generator(c1, x2, c2), rtol=1e-5, atol=1e-5)


def test_the_command_names_a_bad_size(tmp_path, capsys):
    output = str(tmp_path / "g.pt2")
    code = export_command.main(["--checkpoint", str(tmp_path), "--output", output, "--size", "1", "2", "3"])
    assert code == 2
    assert capsys.readouterr().err.strip() == "export: error: --size: expected N or H W, got 3 numbers"
