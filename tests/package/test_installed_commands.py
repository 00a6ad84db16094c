"""`pip install .` declares a console script for every command, and the wheel holds the compiled op."""

from __future__ import annotations

import configparser
import importlib
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

from repo_root import ROOT


def command_modules() -> set[str]:
    """The package's commands: the top-level modules with a ``main(argv)`` (see msca_fast/cli.py)."""
    return {p.stem for p in (ROOT / "msca_fast").glob("*.py") if "\ndef main(argv" in p.read_text()}


def entry_points(folder: Path) -> dict[str, str]:
    parser = configparser.ConfigParser()
    parser.read(folder / "entry_points.txt")
    return dict(parser["console_scripts"])


@pytest.fixture(scope="module")
def declared_scripts(tmp_path_factory) -> dict[str, str]:
    """console_scripts as setup.py declares them (egg_info: metadata only, nothing compiled)."""
    base = tmp_path_factory.mktemp("egg")
    subprocess.run(
        [sys.executable, "setup.py", "-q", "egg_info", "--egg-base", str(base)],
        cwd=ROOT, check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    return entry_points(next(base.glob("*.egg-info")))


def test_every_command_has_a_console_script(declared_scripts):
    targets = {target.split(":")[0] for target in declared_scripts.values()}
    assert targets == {f"msca_fast.{module}" for module in command_modules()}
    assert declared_scripts["msca-train"] == "msca_fast.train:main"
    assert all(name.startswith("msca-") for name in declared_scripts)


def test_each_script_runs_its_command(declared_scripts, capsys):
    for name, target in declared_scripts.items():
        module, function = target.split(":")
        main = getattr(importlib.import_module(module), function)
        assert main(["--help"]) == 0, name
        assert "usage:" in capsys.readouterr().out, name


@pytest.mark.heavy
def test_the_wheel_installs_the_scripts_and_the_extension(tmp_path):
    """pip builds a wheel from a copy of the sources (CPU kernels only, a few minutes), installs
    it into a fresh venv, and that venv's msca-train --help runs outside the checkout."""
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".git", ".venv", "build", "*.so", "runs", "mutants"))
    env = {**os.environ, "MSCA_FAST_SKIP_CUDA": "1", "MSCA_FAST_SKIP_EMULATION": "1"}
    pip = [sys.executable, "-m", "pip"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), str(source)],
        check=True, capture_output=True, env=env, timeout=1200,
    )  # fmt: skip
    wheel = next((tmp_path / "dist").glob("msca_fast-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        assert any(n.startswith("msca_fast/_C.") and n.endswith(".so") for n in names)
        assert "msca_fast/serving/assets/studio.js" in names
        scripts = next(n for n in names if n.endswith("entry_points.txt"))
        assert "msca-train = msca_fast.train:main" in archive.read(scripts).decode()
    # A fresh venv that sees this interpreter's packages (torch) through a .pth file, as an
    # install next to an existing torch would; the wheel goes into the venv itself.
    venv.create(tmp_path / "venv", with_pip=True)
    python = tmp_path / "venv" / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True, timeout=120,
    ).stdout.strip()  # fmt: skip
    (Path(site) / "outer.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([python, "-m", "pip", "install", "--no-deps", "-q", str(wheel)], check=True, timeout=600)
    result = subprocess.run(
        [tmp_path / "venv" / "bin" / "msca-train", "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert "--preset" in result.stdout
    located = subprocess.run(
        [python, "-c", "import msca_fast._C, msca_fast; print(msca_fast.__file__)"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert located.returncode == 0, located.stderr
    assert located.stdout.startswith(site)
