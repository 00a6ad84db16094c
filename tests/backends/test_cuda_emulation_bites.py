"""The emulation of the CUDA execution model catches what a GPU would get wrong.

- Mutant sweep: every numbered barrier MSCA_BARRIER(id) of csrc/msca_cuda_kernels.cuh
  (the ids are read from the source) is removed in turn, and the op, forward and backward
  on shapes that reach every kernel with several tiles and chunks, must then fail: an
  emulation error (a race shows as results that differ between schedules), NaN (poison
  read), or a result off the reference.
- Self-tests: small kernels (csrc/emulation/emulation_self_test.h) that break one rule
  each are stopped with their reason, races only another order of threads shows are
  caught under the schedules, shared memory has poisoned guard zones, errors raised inside
  a thread fail the call and leave the process usable, launches are limited as the
  driver limits them.

Both run on one test-only build of the emulated library (-DMSCA_EMULATION_SELF_TEST
-DMSCA_BARRIER_MUTANTS, ops torch.ops.msca_emulation_self_test), compiled here with
torch.utils.cpp_extension.load (about a minute on two cores, cached between runs in
torch's extension directory).
"""

import contextlib
import os
import re

import pytest
import torch

from msca_fast import _extension
from msca_fast.reference import msca_reference

from helpers import call, rel_rms
from helpers import inputs_for_shape as inputs_for
from repo_root import ROOT

pytestmark = [
    pytest.mark.cuda_emulated,
    pytest.mark.skipif(not _extension.emulation_loaded(), reason=f"{_extension.emulation_load_error}"),
]

CSRC = str(ROOT / "csrc")
OP_ARGS = ("fx2", "fc2", "fc1", "phi_weight", "psi_weight", "psi_bias", "gate")  # the raw ops' order
# Orders of a block's threads the mutants run under (each call under all three, compared).
MUTANT_SCHEDULES = "ascending,descending,random:1"
# float64 kernels against the float64 reference: 1e-15 when intact.
MUTANT_TOLERANCE = 1e-9
# (B, N, M2, M1, K, H2, W2, H1, W1): on the emulated 3-SM device, exemplar and target of 9
# tiles give blocks of 2 or 3 tiles (the last one partial) in every sweep; the first with
# gate and bias (KP = 8), the second without (KP = 16, B = 2); the third, images of 25 and
# 35 pixels, splits each pixel's channel sums over 32 threads (tiles of 8 pixels).
MUTANT_SHAPES = {
    "gate_and_bias": ((1, 11, 5, 6, 8, 41, 53, 37, 61), True),
    "neither": ((2, 6, 3, 4, 9, 30, 61, 33, 47), False),
    "small_images": ((1, 7, 3, 5, 6, 5, 5, 7, 5), True),
}


def barrier_ids():
    """The ids n of the MSCA_BARRIER(n) in the CUDA kernels, in source order."""
    with open(os.path.join(CSRC, "msca_cuda_kernels.cuh")) as f:
        return [int(n) for n in re.findall(r"\bMSCA_BARRIER\((\d+)\)", f.read())]


@pytest.fixture(scope="module")
def emulation():
    """The test-only build's ops, with its settings restored after each use."""
    from torch.utils.cpp_extension import load

    load(
        name="msca_emulation_self_test",
        sources=[os.path.join(CSRC, "emulation", "msca_cuda_emulated.cpp")],
        extra_include_paths=[CSRC, os.path.join(CSRC, "emulation")],
        extra_cflags=[
            "-O1",
            "-fopenmp",
            "-DMSCA_EMULATION_SELF_TEST",
            "-DMSCA_BARRIER_MUTANTS",
            "-DMSCA_EMULATED_NAMESPACE=msca_emulation_self_test",
        ],
        extra_ldflags=["-fopenmp"],
        verbose=False,
    )
    return torch.ops.msca_emulation_self_test


@contextlib.contextmanager
def schedules(ops, names):
    """Every call of ``ops`` runs under the schedules ``names`` in this context."""
    previous = ops.schedules()
    ops.set_schedules(names)
    try:
        yield
    finally:
        ops.set_schedules(previous)


@contextlib.contextmanager
def barrier_removed(ops, barrier):
    ops.skip_barrier(barrier)
    try:
        yield
    finally:
        ops.skip_barrier(0)


def mutant_case(name):
    """(inputs, upstream gradient, the reference's output and gradients) for MUTANT_SHAPES[name]."""
    shape, gate_and_bias = MUTANT_SHAPES[name]
    inp = inputs_for(shape)
    if not gate_and_bias:
        inp.update(psi_bias=None, gate=None)
    grad_out = torch.randn(
        shape[0], shape[1], shape[7], shape[8], dtype=torch.float64, generator=torch.Generator().manual_seed(1)
    )
    leaves = {n: t.clone().requires_grad_() if t is not None else None for n, t in inp.items()}
    out = call(msca_reference, leaves)
    out.backward(grad_out)
    expected = {"out": out.detach(), **{n: leaves[n].grad for n in OP_ARGS if leaves[n] is not None}}
    return inp, grad_out, expected


@pytest.fixture(scope="module")
def mutant_cases():
    return {name: mutant_case(name) for name in MUTANT_SHAPES}


def how_it_fails(ops, case):
    """Why the op's forward and backward on ``case`` are not the reference's, or None."""
    inp, grad_out, expected = case
    args = [inp[n] for n in OP_ARGS]
    try:
        out, v, lse = ops.msca_forward(*args)
        grads = ops.msca_backward(grad_out, *args, v, lse)
    except RuntimeError as exc:
        return f"stopped: {str(exc).splitlines()[0]}"
    results = {"out": out, **dict(zip(OP_ARGS, grads))}
    for name, want in expected.items():
        if not torch.isfinite(results[name]).all():
            return f"{name} has NaN"
        if rel_rms(results[name], want) > MUTANT_TOLERANCE:
            return f"{name} is off the reference by {rel_rms(results[name], want):.2g}"
    return None


def test_barrier_ids_are_found_and_unique():
    ids = barrier_ids()
    assert ids, "no MSCA_BARRIER(n) in csrc/msca_cuda_kernels.cuh"
    assert len(set(ids)) == len(ids), f"barrier ids used twice: {sorted(i for i in set(ids) if ids.count(i) > 1)}"
    assert 0 not in ids, "id 0 means 'skip none' to the mutant build"


def test_the_mutant_build_with_every_barrier_matches_the_reference(emulation, mutant_cases):
    with schedules(emulation, MUTANT_SCHEDULES):
        for name, case in mutant_cases.items():
            assert how_it_fails(emulation, case) is None, name


@pytest.mark.parametrize("barrier", barrier_ids())
def test_removing_any_barrier_fails(emulation, mutant_cases, barrier):
    with schedules(emulation, MUTANT_SCHEDULES), barrier_removed(emulation, barrier):
        failures = {name: how_it_fails(emulation, case) for name, case in mutant_cases.items()}
        assert emulation.barrier_skips() > 0, f"no thread reached barrier {barrier}: the shapes miss its kernel"
    assert any(failures.values()), f"barrier {barrier} removed, and every case still passes"


@pytest.mark.parametrize(
    "kernel, message",
    [
        ("divergent_barriers", "wait at barriers on lines"),
        ("exit_before_barrier", "is not reached by 1 threads"),
        ("partial_warp_shuffle", "is not reached by every lane of its warp"),
        ("wrong_shuffle_mask", r"shuffle with mask 65535 in a warp whose lanes are 4294967295 at thread \(0,0,0\)"),
        ("shared_overrun", r"shared memory written out of bounds by block \(0,0,0\) of .*shared_overrun: .*byte 256,"),
        ("shared_underrun", r"shared memory written out of bounds by block \(0,0,0\) of .*shared_underrun: .*byte -1,"),
    ],
)
def test_broken_rules_are_stopped_with_their_reason(emulation, kernel, message):
    with pytest.raises(RuntimeError, match=message):
        emulation.self_test(kernel)


def test_an_error_inside_a_thread_fails_the_call_and_not_the_process(emulation):
    """The shuffle's mask is checked on the thread's own (fiber) stack: the error must
    reach the caller, and the library must work afterwards."""
    with pytest.raises(RuntimeError, match="shuffle with mask"):
        emulation.self_test("wrong_shuffle_mask")
    assert torch.equal(emulation.self_test("with_barrier")[:64], (torch.arange(64.0) + 1) % 64)
    inp, grad_out, expected = mutant_case("neither")
    out, _, _ = emulation.msca_forward(*(inp[n] for n in OP_ARGS))
    assert rel_rms(out, expected["out"]) < MUTANT_TOLERANCE


def test_shared_memory_read_before_it_is_written_is_nan(emulation):
    with schedules(emulation, "ascending"):
        assert torch.isnan(emulation.self_test("missing_barrier")[:64]).any()
        assert torch.equal(emulation.self_test("with_barrier")[:64], (torch.arange(64.0) + 1) % 64)


def test_a_race_ascending_order_hides_is_caught_under_the_schedules(emulation):
    """Each thread reads what the thread below it wrote, with no barrier between: in
    ascending order the writer always goes first."""
    hidden = torch.cat([torch.zeros(1), torch.arange(63.0)])
    with schedules(emulation, "ascending"):
        assert torch.equal(emulation.self_test("mirror_race")[:64], hidden)
    with schedules(emulation, "descending"):
        assert torch.isnan(emulation.self_test("mirror_race")[1:64]).all()
    for names in ("ascending,descending", "ascending,random:1"):
        with (
            schedules(emulation, names),
            pytest.raises(RuntimeError, match="output 0 of self_test differs under schedules ascending and"),
        ):
            emulation.self_test("mirror_race")


def test_schedules_order_the_turns(emulation):
    """turn_order: out[t] is the turn thread t took in the first barrier interval,
    out[64 + t] in the second."""

    def turns(name):
        with schedules(emulation, name):
            out = emulation.self_test("turn_order")
        return out[:64], out[64:128]

    ascending, descending = torch.arange(64.0), torch.arange(63.0, -1, -1)
    assert all(torch.equal(t, ascending) for t in turns("ascending"))
    assert all(torch.equal(t, descending) for t in turns("descending"))
    first, second = turns("random:1")
    for t in (first, second):
        assert torch.equal(t.sort().values, ascending)  # a permutation
        assert not torch.equal(t, ascending) and not torch.equal(t, descending)
    assert not torch.equal(first, second), "the random order is drawn again for each interval"
    assert all(torch.equal(a, b) for a, b in zip(turns("random:1"), (first, second))), "deterministic from the seed"
    assert not torch.equal(turns("random:2")[0], first)


def test_shared_memory_is_surrounded_by_poison(emulation):
    assert torch.isnan(emulation.self_test("guard_read")[:64]).all()


def test_max_and_min_pass_on_nan_from_either_operand(emulation):
    nan = float("nan")
    expected = torch.tensor([nan, nan, nan, nan, 2.0, 2.0, 1.0, 1.0])
    assert torch.equal(emulation.self_test("nan_max_min")[:8].isnan(), expected.isnan())
    assert torch.equal(emulation.self_test("nan_max_min")[4:8], expected[4:])


def test_warp_shuffles_exchange_within_each_warp(emulation):
    assert torch.equal(emulation.self_test("warp_sum")[:64], torch.full((64,), 496.0))


@pytest.mark.parametrize(
    "grid, block",
    [
        ((2**31, 1, 1), (1, 1, 1)),
        ((1, 65536, 1), (1, 1, 1)),
        ((1, 1, 65536), (1, 1, 1)),
        ((0, 1, 1), (1, 1, 1)),
        ((1, 1, 1), (1, 1, 65)),
        ((1, 1, 1), (1025, 1, 1)),
        ((1, 1, 1), (32, 32, 2)),
    ],
)
def test_launches_past_the_driver_limits_are_refused(emulation, grid, block):
    with pytest.raises(RuntimeError, match="invalid configuration argument"):
        emulation.launch_grid(list(grid), list(block))


@pytest.mark.parametrize(
    "grid, block",
    [
        ((1, 65535, 1), (1, 1, 1)),
        ((1, 1, 65535), (1, 1, 1)),
        ((2, 1, 1), (1, 1, 64)),
        ((2, 1, 1), (1024, 1, 1)),
    ],
)
def test_launches_at_the_driver_limits_run_every_block(emulation, grid, block):
    blocks = grid[0] * grid[1] * grid[2]
    assert torch.equal(emulation.launch_grid(list(grid), list(block)), torch.ones(blocks))


def test_settings_reject_bad_values(emulation):
    with pytest.raises(RuntimeError, match="schedules: expected a comma-separated list"):
        emulation.set_schedules("ascending,sideways")
    with pytest.raises(RuntimeError, match="count: expected an SM count"):
        emulation.set_multiprocessor_count(0)


def test_shared_memory_past_the_device_limit_is_refused_before_any_launch():
    inp = inputs_for((1, 3000, 2, 2, 32, 3, 3, 2, 2), torch.float32)  # 3000 x 32 floats: 384 KiB
    with pytest.raises(RuntimeError, match="shared memory"):
        torch.ops.msca_fast_emulated.msca_forward(*(inp[n] for n in OP_ARGS))
