"""Every GPU variant of the Triton kernels, compiled ahead of time for sm_80 and sm_90 as the
runtime would compile it: no GPU needed.

At a launch, Triton specialises the binary to its arguments: an int equal to 1 becomes a
constant and ints and pointers divisible by 16 are marked so, which changes vectorisation,
registers and spills. So each variant is compiled from the arguments the backend itself
passes (recorded from triton_backend._forward / _backward on meta tensors of a problem shaped
like the generator's, contiguous and channels_last), through Triton's own binder, and must
neither spill nor use more shared memory than a block may.

Compilation runs in spawned worker processes that import triton without TRITON_INTERPRET (this
process interprets when it has no GPU). Triton's cache makes repeated runs quick.
"""

import contextlib
import multiprocessing
import os
import re
import subprocess
import tempfile

import pytest
import torch

pytest.importorskip("triton")

from msca_fast.backends import triton_backend  # noqa: E402

pytestmark = pytest.mark.skipif(triton_backend.import_error is not None, reason=f"{triton_backend.import_error}")

ARCHS = {80: 166912, 90: 232448}  # compute capability -> shared memory a block may use (bytes)
KERNEL_NAMES = list(triton_backend.kernels.KERNELS) if triton_backend.kernels is not None else []
LAYOUTS = ("contiguous", "channels_last")
TORCH_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
# The generator's kind of problem: channels and pixel counts multiples of 16 (finest scales:
# N = 64..256, M = 32..64). K is each variant's BK, so that K % 16 == 0 is specialised too.
SHAPE = {"batch": 2, "n": 128, "m2": 64, "m1": 64, "h2": 32, "w2": 48, "h1": 32, "w1": 32}
SMS = 132  # an H100's / H200's; the grid and split lengths the launcher derives from it


# --- in the worker processes ---------------------------------------------------------------------


def recorded_launches(dtype: torch.dtype, precision: str, k: int, layout: str) -> dict[str, dict]:
    """kernel name -> the keyword arguments triton_backend passes it, for a forward and a
    backward of SHAPE on meta tensors (pointers look 16-byte aligned, as CUDA allocations are)."""
    b, n, m2, m1 = SHAPE["batch"], SHAPE["n"], SHAPE["m2"], SHAPE["m1"]
    fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    meta = {"device": "meta", "dtype": dtype}

    def feature_map(c, h, w):
        return torch.empty(b, c, h, w, **meta).contiguous(memory_format=fmt)

    fx2, fc2 = feature_map(n, SHAPE["h2"], SHAPE["w2"]), feature_map(m2, SHAPE["h2"], SHAPE["w2"])
    fc1 = feature_map(m1, SHAPE["h1"], SHAPE["w1"])
    phi, psi = torch.empty(k, n + m2, **meta), torch.empty(k, m1, **meta)
    psi_bias, gate = torch.empty(k, **meta), torch.empty(b, k, **meta)

    launches = {}
    saved = triton_backend._launch, triton_backend._multiprocessors, triton_backend._fp32_dot_precision
    triton_backend._launch = lambda kernel, grid, **args: launches.setdefault(kernel, args)
    triton_backend._multiprocessors = lambda device: SMS
    triton_backend.set_fp32_dot_precision(precision)
    try:
        out, v, lse = triton_backend._forward(fx2, fc2, fc1, phi, psi, psi_bias, gate)
        triton_backend._backward(torch.empty_like(out), fx2, fc2, fc1, phi, psi, psi_bias, gate, v, lse)
    finally:
        triton_backend._launch, triton_backend._multiprocessors, triton_backend._fp32_dot_precision = saved
    return launches


def _resource_usage(cubin: bytes) -> dict[str, int]:
    """REG, STACK, SHARED, LOCAL of the one kernel in ``cubin``, read by triton's cuobjdump."""
    import triton

    cuobjdump = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        command = [cuobjdump, "--dump-resource-usage", f.name]
        report = subprocess.run(command, capture_output=True, text=True, check=True)
    found = dict(re.findall(r"\b(REG|STACK|SHARED|LOCAL):(\d+)", report.stdout))
    assert found.keys() >= {"REG", "STACK", "SHARED", "LOCAL"}, report.stdout
    return {name: int(value) for name, value in found.items()}


def compile_variant(index: int, layout: str, arch: int) -> dict:
    """Compiles gpu_variants()[index] for sm_<arch> with the arguments the backend launches it
    with, specialised by Triton's own binder exactly as JITFunction.run does. -> what was
    compiled, its resource usage and its specialised signature."""
    import triton
    from triton import knobs
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource, make_backend
    from triton.runtime.jit import create_function_from_signature

    kernels = triton_backend.kernels
    assert not kernels.INTERPRETED, "compile workers must import triton without TRITON_INTERPRET=1"
    variant = kernels.gpu_variants()[index]
    args = recorded_launches(TORCH_DTYPES[variant.dtype], variant.precision, variant.constexprs["BK"], layout)
    args = args[variant.kernel]
    host = {name: value for name, value in args.items() if name in kernels.HOST_CONSTEXPRS[variant.kernel]}
    assert host.items() <= variant.constexprs.items(), f"the backend launched {host}, the variant has {variant}"

    config = triton.Config(
        {name: variant.constexprs[name] for name in variant.constexprs.keys() - host.keys()},
        num_warps=variant.num_warps,
        num_stages=variant.num_stages,
    )
    kwargs = {**args, **config.all_kwargs(), "debug": knobs.runtime.debug,
              "instrumentation_mode": knobs.compilation.instrumentation_mode}
    fn = kernels.KERNELS[variant.kernel].fn
    target = GPUTarget("cuda", arch, 32)
    backend = make_backend(target)
    binder = create_function_from_signature(fn.signature, fn.params, backend)
    bound_args, specialization, options = binder(**kwargs)
    options, signature, constexprs, attrs = fn._pack_args(backend, kwargs, bound_args, specialization, options)
    compiled = triton.compile(ASTSource(fn, signature, constexprs, attrs), target=target, options=options.__dict__)
    assert compiled.asm["cubin"], "no cubin"
    names = list(fn.arg_names)
    return {
        "what": f"{variant.kernel} {variant.dtype} {variant.precision} {variant.constexprs} "
        f"warps={variant.num_warps} stages={variant.num_stages} {layout} sm_{arch}",
        "usage": _resource_usage(compiled.asm["cubin"]),
        "dynamic_shared": compiled.metadata.shared,
        "ones": sorted(names[path[0]] for path, value in constexprs.items()
                       if value == 1 and names[path[0]] not in variant.constexprs),
        "divisible": sorted(names[path[0]] for path, value in attrs.items() if ["tt.divisibility", 16] in value),
    }


# --- in the test process ---------------------------------------------------------------------------


@contextlib.contextmanager
def _environment_without(name):
    saved = os.environ.pop(name, None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ[name] = saved


@pytest.fixture(scope="module")
def compile_pool():
    """Processes, not threads (compilation holds the GIL), spawned fresh (forking after MLIR
    threads have started is unsafe) and without TRITON_INTERPRET, so that their triton
    compiles. multiprocessing.Pool starts its workers at once, inside the context."""
    with _environment_without("TRITON_INTERPRET"):
        pool = multiprocessing.get_context("spawn").Pool(min(2, os.cpu_count() or 1))
    with pool:
        yield pool


def test_variants_cover_every_launch_configuration():
    kernels = triton_backend.kernels
    variants = kernels.gpu_variants()
    assert triton_backend.MAX_K == kernels.K_PADDINGS[-1]
    for name in KERNEL_NAMES:
        mine = [v for v in variants if v.kernel == name]
        distinct = {(v.dtype, tuple(sorted(v.constexprs.items())), v.num_warps, v.num_stages) for v in mine}
        assert len(distinct) == len(mine), f"{name}: duplicate variants"
        assert {v.constexprs["BK"] for v in mine} == set(kernels.K_PADDINGS), name
        assert {v.dtype for v in mine} == ({"fp32"} if name == "combine" else {"fp32", "fp16", "bf16"}), name
        for kind, bk in kernels.ALL_LAUNCHES:
            serving = kernels.candidates(name, None if name == "combine" else kind, bk)
            assert serving, f"{name}: nothing serves {kind}, BK {bk}"
        for config in kernels.GPU_CONFIGS[name]:
            assert any(
                config.meta.items() <= v.constexprs.items()
                and (v.num_warps, v.num_stages) == (config.num_warps, config.num_stages)
                for v in mine
            ), f"{name}: {config} never compiled"
    fp32 = [v for v in variants if v.dtype == "fp32" and v.kernel != "combine"]
    assert {v.constexprs["DOT_PRECISION"] for v in fp32} == {"ieee", "tf32"}
    assert not any(v.constexprs.get("UPCAST_DOTS") for v in variants)


@pytest.mark.parametrize("arch", list(ARCHS), ids=[f"sm_{a}" for a in ARCHS])
@pytest.mark.parametrize("kernel", KERNEL_NAMES)
def test_every_gpu_variant_compiles_as_launched(compile_pool, kernel, arch):
    """Catches what the interpreter accepts but the GPU compiler does not (dot sizes, layouts,
    dtype rules), register spills and shared memory beyond what a block may use."""
    variants = triton_backend.kernels.gpu_variants()
    tasks = [(i, layout, arch) for i, v in enumerate(variants) if v.kernel == kernel for layout in LAYOUTS]
    results = compile_pool.starmap(compile_variant, tasks, chunksize=1)
    assert len(results) == len(tasks)
    problems = []
    for result in results:
        usage = result["usage"]
        if usage["STACK"] or usage["LOCAL"]:
            problems.append(f"{result['what']}: spills ({usage})")
        if usage["SHARED"] + result["dynamic_shared"] > ARCHS[arch]:
            problems.append(f"{result['what']}: {usage['SHARED']} + {result['dynamic_shared']} bytes of shared memory")
    assert not problems, "\n".join(problems)
    # The binaries are the run-time ones: unit strides become constants, the rest are marked
    # divisible by 16 (SHAPE's are), and the two layouts differ.
    by_layout = {layout: [r for (_, lay, _), r in zip(tasks, results) if lay == layout] for layout in LAYOUTS}
    for found in by_layout.values():
        for result in found:
            assert result["divisible"], result["what"]
            if kernel != "combine":
                assert result["ones"], result["what"]
    if kernel != "combine":
        assert by_layout["contiguous"][0]["ones"] != by_layout["channels_last"][0]["ones"]
