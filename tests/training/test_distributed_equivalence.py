"""Two training processes (gloo on the CPU, set up as torchrun sets them up) compute the
gradients one process computes on both of their batches together, in both stages.

Three processes run train.py's real code for one attention-pretraining iteration and one
adversarial iteration (G and D updates), recording the gradients after each
(tests/gradient_recorder.py): two ranks with one pair each, and one process alone with two
pairs per batch, which are the pairs of the two ranks (the sampler deals the epoch's order out
rank by rank). Every loss is a mean over the batch, so the mean of the ranks' gradients is the
single process's gradient: the all-reduce of pretraining (by hand) and of the adversarial stage
(DistributedDataParallel) must give every rank exactly that.

Batch statistics would break the equivalence (a BatchNorm sees one pair per rank but two in the
single process), so the SPADE layers use instance norm, as the discriminator does; and zero
padding, since with the presets' replicate padding the coarsest maps of a uniform patch are
constant, where instance norm's backward multiplies rounding noise by 1/sqrt(eps) per layer.

Tolerance: the trainer works in float32 (its batches are cast to float32), and one and two
processes add the same terms in different orders (a batch of two against two batches of one,
then the all-reduce), so the gradients differ by rounding: by at most 2e-5 of each model's
largest gradient when measured. The bugs this test is for (gradients not averaged, summed
instead of averaged, both ranks reading the same pairs, ranks starting from different weights)
move them by 50% of it or more. The test allows 1e-3 of it, 50 times away from both.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from repo_root import ROOT
from tiny_run import TINY_ARGS

RECORDER = ROOT / "tests" / "gradient_recorder.py"
PAIRS_PER_RANK = 1
ARGS = (
    *TINY_ARGS, "--num-images", "4", "--param-free-norm", "instance", "--padding-mode", "zeros",
    "--pretrain-steps", "1", "--steps", "1", "--g-every", "1",
)  # fmt: skip
RTOL = 1e-3
# The models each stage trains: their gradients after the stage's iteration are its own.
STAGE_MODELS = {"pretrain": ("generator", "head"), "adversarial": ("generator", "discriminator")}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(result: Path, out: Path, batch_size: int, rank: int | None, port: int) -> subprocess.Popen:
    """A recorder process: alone (``rank`` None) or rank ``rank`` of two."""
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]))
    if rank is not None:
        env.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    command = [sys.executable, str(RECORDER), str(result), str(out), *ARGS, "--batch-size", str(batch_size)]
    return subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """A folder with the records (see gradient_recorder) of "single" (two pairs a batch),
    "rank0" and "rank1" (one each) in <name>.pt, and the output folders "single" and "group"."""
    tmp = tmp_path_factory.mktemp("distributed")
    port = free_port()
    runs = {
        "single": start(tmp / "single.pt", tmp / "single", 2 * PAIRS_PER_RANK, None, port),
        "rank0": start(tmp / "rank0.pt", tmp / "group", PAIRS_PER_RANK, 0, port),
        "rank1": start(tmp / "rank1.pt", tmp / "group", PAIRS_PER_RANK, 1, port),
    }
    try:
        for name, process in runs.items():
            output, _ = process.communicate(timeout=300)
            assert process.returncode == 0, f"{name} failed:\n{output[-3000:]}"
    finally:
        for process in runs.values():
            if process.poll() is None:
                process.kill()
    return tmp


@pytest.fixture(scope="module")
def records(runs) -> dict[str, list[dict]]:
    """The per-iteration records of "single", "rank0" and "rank1"."""
    loaded = {name: torch.load(runs / f"{name}.pt", weights_only=True) for name in ("single", "rank0", "rank1")}
    for name, stages in loaded.items():
        assert [r["stage"] for r in stages] == list(STAGE_MODELS), name
    return loaded


def of_models(tensors: dict, models: tuple[str, ...]) -> dict:
    return {name: t for name, t in tensors.items() if name.split(".", 1)[0] in models}


@pytest.mark.parametrize("iteration, stage", list(enumerate(STAGE_MODELS)))
@pytest.mark.parametrize("rank", ["rank0", "rank1"])
def test_each_rank_has_the_gradients_of_one_process_on_both_batches(records, iteration, stage, rank):
    models = STAGE_MODELS[stage]
    expected = of_models(records["single"][iteration]["grads"], models)
    got = of_models(records[rank][iteration]["grads"], models)
    assert got.keys() == expected.keys(), f"{stage}: {rank} has gradients for other parameters"
    for model in models:
        names = [n for n in expected if n.startswith(model + ".")]
        largest = max(expected[n].abs().max().item() for n in names)
        assert largest > 0, f"{stage}: the single process left no {model} gradient"
        errors = {n: (got[n] - expected[n]).abs().max().item() / largest for n in names}
        worst = max(errors, key=errors.get)
        assert errors[worst] <= RTOL, (
            f"{stage}, {rank}: {worst}'s gradient is {errors[worst]:.2e} of the largest {model} gradient "
            f"away from one process's on both batches (allowed {RTOL:.0e})"
        )


@pytest.mark.parametrize("iteration, stage", list(enumerate(STAGE_MODELS)))
def test_ranks_hold_the_same_gradients_and_weights(records, iteration, stage):
    """The all-reduce hands every rank the same sum, so both ranks take the same step."""
    for kind in ("grads", "weights"):
        first, second = records["rank0"][iteration][kind], records["rank1"][iteration][kind]
        assert first.keys() == second.keys()
        differing = [name for name in first if not torch.equal(first[name], second[name])]
        assert not differing, f"after the {stage} iteration the ranks' {kind} differ: {differing[:3]}"


def test_the_logged_losses_are_the_means_over_both_ranks(runs):
    """Rank 0 logs each loss averaged over the ranks: the single process's loss on both batches."""

    def rows(folder: str) -> list[dict]:
        lines = (runs / folder / "losses.jsonl").read_text().splitlines()
        return [{k: v for k, v in json.loads(line).items() if k != "images_per_s"} for line in lines]

    single, group = rows("single"), rows("group")
    assert [row.keys() for row in group] == [row.keys() for row in single]
    for expected, got in zip(single, group):
        for key, value in expected.items():
            wanted = pytest.approx(value, rel=RTOL) if isinstance(value, float) else value
            assert got[key] == wanted, f"iteration {expected['iteration']}: {key}"
