"""Triton kernels of the fused MSCA op (DESIGN.md section 3) and the configurations they launch with.

Per batch element b (one letter per dimension, as in :mod:`msca_fast.reference`)::

    Z = [Fx2; Fc2] (N+M2, P2)   S = phi Z (K, P2)        alpha = softmax over P2
    V = Fx2 alpha^T (N, K)      T = psi Fc1 + b (K, P1)  beta = softmax over K
    out = (V * g) beta (N, P1)

Kernels, in launch order:

    forward   msca_fwd_kernel_aggregate   grid (N chunks, P2 splits, B): flash-decoding over the
                                          exemplar pixels -> per-split (m, l, acc) partials
              msca_fwd_kernel_combine     grid (N chunks, B): partials -> V (B,N,K), lse (B,K)
              msca_fwd_kernel_distribute  grid (P1 tiles, B): beta in registers, out = Vt beta
    backward  msca_bwd_kernel_sweep_a     grid (P1 splits, B): dFc1 and per-split dVt, dpsi, dbias
              msca_bwd_kernel_sweep_b     grid (P2 splits, B): dFx2, dFc2 and per-split dphi

Feature maps are read and written as (B, C, P) with arbitrary strides (so channels_last and
other dense layouts need no copy); weights are contiguous; V, lse and every partial are
float32. Each backward program loops over the tiles of its split and adds its products into
its own slot of the partial sums (see sweep A). K is padded to BK, a power of two >= 16
(tl.dot's minimum for 16-bit inputs), and the padded regions are masked out of both
softmaxes. Offsets inside one batch element are int32 (the backend refuses a batch element
of 2**31 elements or more); batch offsets are int64.

With 16-bit inputs, a float32 value computed in a kernel (beta, V * g, dT, dS, dV) is not
rounded to 16 bits before a dot: against a 16-bit operand it enters as hi + lo (_dot_fx,
_dot_xf), against another such value the dot is float32. Only the forward's exp(S - m) is
rounded, as the reference rounds alpha. In float16, dS is scaled by a power of two per tile.

Import it through :mod:`msca_fast.backends.triton_backend`, which builds the kernels in the
mode triton itself was imported in (GPU compiler, or CPU interpreter under TRITON_INTERPRET=1);
``INTERPRETED`` says which.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
from dataclasses import dataclass, field

import triton
import triton.language as tl

# True when the kernels are built for triton's CPU interpreter rather than the GPU compiler.
INTERPRETED: bool = bool(triton.knobs.runtime.interpret)

# --- launch configurations: the one list shared by the launcher and the compile test ----------

K_PADDINGS = (16, 32)  # BK: K rounded up to one of these; larger K is refused (the paper uses 8 and 16)
MAX_K = K_PADDINGS[-1]
FP32_DOT_PRECISIONS = ("ieee", "tf32")  # "ieee" unless the caller opts in to tf32


# How a launch multiplies: exact float32 on the CUDA cores ("fp32"), or on the tensor cores
# ("tf32" for float32 inputs opted in, "16-bit" for float16 and bfloat16 inputs). Their
# register needs differ, so each has its own launch configurations.
DOT_KINDS = ("fp32", "tf32", "16-bit")


def dot_kind(dtype: str, fp32_precision: str) -> str:
    """The dot kind of inputs of triton dtype ``dtype`` ("fp32", "fp16", "bf16")."""
    if dtype == "fp32":
        return "fp32" if fp32_precision == "ieee" else "tf32"
    return "16-bit"


ALL_LAUNCHES = tuple(itertools.product(DOT_KINDS, K_PADDINGS))


@dataclass(frozen=True)
class LaunchConfig:
    """One autotune candidate: constexpr block sizes, warps and pipeline stages, and the
    (dot kind, BK) pairs it is a candidate for."""

    meta: dict = field(default_factory=dict)
    num_warps: int = 4
    num_stages: int = 2
    only: tuple[tuple[str, int], ...] = ALL_LAUNCHES

    def as_triton(self) -> triton.Config:
        return triton.Config(dict(self.meta), num_warps=self.num_warps, num_stages=self.num_stages)

    def serves(self, kind: str | None, bk: int) -> bool:
        """kind None: a kernel without dots on the inputs (combine), served for every BK."""
        return any((kind is None or kind == k) and bk == b for k, b in self.only)


# Pixels per tile, fixed per kernel (not autotuned: the split length depends on it and is
# chosen before the launch).
GPU_BLOCK_P = {"aggregate": 64, "combine": None, "distribute": 128, "sweep_a": 64, "sweep_b": 64}
INTERPRETER_BLOCK_P = 16

def _launches(kinds: tuple[str, ...], bks: tuple[int, ...] = K_PADDINGS) -> tuple[tuple[str, int], ...]:
    return tuple(itertools.product(kinds, bks))


# Candidates that compile without spilling a register for sm_80 and sm_90, contiguous and
# channels_last (tests/backends/test_triton_compile.py), two per (dot kind, BK); which is fastest
# awaits a GPU. Exact float32 dots run on the CUDA cores and want smaller chunks.
GPU_CONFIGS = {
    "aggregate": (
        LaunchConfig({"BLOCK_N": 64, "BLOCK_C": 32}, num_warps=4, num_stages=2, only=_launches(("16-bit",))),
        LaunchConfig({"BLOCK_N": 128, "BLOCK_C": 32}, num_warps=8, num_stages=2, only=_launches(("16-bit", "tf32"))),
        LaunchConfig({"BLOCK_N": 64, "BLOCK_C": 32}, num_warps=8, num_stages=2, only=_launches(("tf32",))),
        LaunchConfig({"BLOCK_N": 32, "BLOCK_C": 16}, num_warps=8, num_stages=1, only=_launches(("fp32",))),
        LaunchConfig({"BLOCK_N": 32, "BLOCK_C": 32}, num_warps=8, num_stages=2, only=_launches(("fp32",))),
    ),
    "combine": (LaunchConfig({"BLOCK_N": 64}, num_warps=4, num_stages=1),),
    "distribute": (
        LaunchConfig({"BLOCK_N": 64, "BLOCK_C": 32}, num_warps=4, num_stages=2),
        LaunchConfig({"BLOCK_N": 128, "BLOCK_C": 32}, num_warps=8, num_stages=2),
    ),
    "sweep_a": (
        LaunchConfig(
            {"BLOCK_N": 32, "BLOCK_C": 16}, num_warps=4, num_stages=1,
            only=_launches(("fp32",)) + _launches(("tf32", "16-bit"), (16,)),
        ),
        LaunchConfig(
            {"BLOCK_N": 32, "BLOCK_C": 32}, num_warps=8, num_stages=1,
            only=_launches(("fp32", "tf32")) + _launches(("16-bit",), (16,)),
        ),
        LaunchConfig({"BLOCK_N": 32, "BLOCK_C": 16}, num_warps=8, num_stages=1, only=_launches(("tf32",), (32,))),
        LaunchConfig({"BLOCK_N": 16, "BLOCK_C": 16}, num_warps=8, num_stages=1, only=_launches(("16-bit",), (32,))),
        LaunchConfig({"BLOCK_N": 16, "BLOCK_C": 32}, num_warps=8, num_stages=1, only=_launches(("16-bit",), (32,))),
    ),
    "sweep_b": (
        LaunchConfig({"BLOCK_N": 16, "BLOCK_C": 16}, num_warps=4, num_stages=1),
        LaunchConfig({"BLOCK_N": 32, "BLOCK_C": 32}, num_warps=8, num_stages=1),
    ),
}

# Small blocks so that the tests' small shapes still cross chunk, tile and split borders.
INTERPRETER_CONFIG = LaunchConfig({"BLOCK_N": 16, "BLOCK_C": 16}, num_warps=1, num_stages=1)

# Constexprs that only the host chooses (the rest come from LaunchConfig.meta).
HOST_CONSTEXPRS = {
    "aggregate": ("BK", "BLOCK_P", "DOT_PRECISION", "UPCAST_DOTS"),
    "combine": ("BK",),
    "distribute": ("BK", "BLOCK_P", "DOT_PRECISION", "UPCAST_DOTS"),
    "sweep_a": ("BK", "BLOCK_P", "DOT_PRECISION", "UPCAST_DOTS"),
    "sweep_b": ("BK", "BLOCK_P", "DOT_PRECISION", "UPCAST_DOTS"),
}
# Partial sums a kernel adds into (tl.atomic_add): zeroed before each run the autotuner times.
ACCUMULATED = {
    "aggregate": (), "combine": (), "distribute": (), "sweep_a": ("part_dvt", "part_dpsi"), "sweep_b": ("part_dphi",)
}
# The argument whose dtype is the inputs' (None: the kernel reads float32 partials only).
INPUT_ARGUMENT = {"aggregate": "fx2", "combine": None, "distribute": "fc1", "sweep_a": "grad_out", "sweep_b": "fx2"}
_TRITON_DTYPES = {"torch.float32": "fp32", "torch.float16": "fp16", "torch.bfloat16": "bf16"}


def candidates(kernel: str, kind: str | None, bk: int) -> list[LaunchConfig]:
    """GPU_CONFIGS of ``kernel`` that serve dot kind ``kind`` (None: any) and BK ``bk``."""
    return [config for config in GPU_CONFIGS[kernel] if config.serves(kind, bk)]


# The GPU candidate each kernel launches with in the interpreter, or None for
# INTERPRETER_CONFIG and INTERPRETER_BLOCK_P (see gpu_configs_interpreted).
_interpreted_gpu_choice: int | None = None


def block_p(kernel: str) -> int:
    """Pixels per tile of ``kernel`` (GPU or interpreter)."""
    if INTERPRETED and _interpreted_gpu_choice is None:
        return INTERPRETER_BLOCK_P
    return GPU_BLOCK_P[kernel]


@contextlib.contextmanager
def gpu_configs_interpreted(choice: int):
    """Interpreter only: launch with the GPU's tile sizes and candidate ``choice`` of those
    serving each launch (their last where there are fewer), so that the numerics of what a
    GPU runs are checked without one."""
    if not INTERPRETED:
        raise RuntimeError("gpu_configs_interpreted: the kernels were built for the GPU")
    saved = _interpreted_gpu_choice
    _use_interpreted_configs(choice)
    try:
        yield
    finally:
        _use_interpreted_configs(saved)


def _use_interpreted_configs(choice: int | None) -> None:
    global _interpreted_gpu_choice
    _interpreted_gpu_choice = choice
    for name, tuner in KERNELS.items():
        configs = [INTERPRETER_CONFIG] if choice is None else GPU_CONFIGS[name]
        tuner.configs = [config.as_triton() for config in configs]
        tuner.cache.clear()


def _launch_kind(kernel: str, args: dict) -> tuple[str | None, int]:
    """(dot kind, BK) of a launch of ``kernel`` with keyword arguments ``args``."""
    argument = INPUT_ARGUMENT[kernel]
    if argument is None:
        return None, args["BK"]
    return dot_kind(_TRITON_DTYPES[str(args[argument].dtype)], args["DOT_PRECISION"]), args["BK"]


def _prune(kernel: str, configs: list, named_args: dict, **kwargs) -> list:
    """The autotuner's candidates for one launch: the GPU_CONFIGS serving its dot kind and
    BK (in the interpreter under gpu_configs_interpreted: the chosen one of them)."""
    if INTERPRETED and _interpreted_gpu_choice is None:
        return configs
    kind, bk = _launch_kind(kernel, {**named_args, **kwargs})
    serving = [c.as_triton().all_kwargs() for c in candidates(kernel, kind, bk)]
    found = [config for config in configs if config.all_kwargs() in serving]
    if INTERPRETED:
        found = found[min(_interpreted_gpu_choice, len(found) - 1) :][:1]
    return found


def dot_constexprs(dtype: str, fp32_precision: str, interpreted: bool = INTERPRETED) -> dict:
    """DOT_PRECISION and UPCAST_DOTS for inputs of triton dtype ``dtype`` ("fp32", "fp16", "bf16")."""
    return {
        "DOT_PRECISION": fp32_precision if dtype == "fp32" else "ieee",
        "UPCAST_DOTS": interpreted and dtype == "bf16",
    }


@dataclass(frozen=True)
class Variant:
    """One compiled form of one kernel, less what the launch arguments specialise (ints equal
    to 1, divisibility by 16): the constexprs, warps and stages it launches with."""

    kernel: str
    dtype: str  # triton's name of the input dtype
    precision: str  # the fp32 dot precision the host was set to
    constexprs: dict
    num_warps: int
    num_stages: int


def gpu_variants() -> list[Variant]:
    """Every variant the backend can launch on a GPU: kernel x input dtype x fp32 dot
    precision x BK x the candidates serving them. The combine kernel reads float32 partials
    only."""
    found = []
    for kernel in KERNELS:
        dtypes = ("fp32",) if kernel == "combine" else ("fp32", "fp16", "bf16")
        for dtype in dtypes:
            precisions = FP32_DOT_PRECISIONS if dtype == "fp32" and kernel != "combine" else ("ieee",)
            for precision, bk in itertools.product(precisions, K_PADDINGS):
                host = {"BK": bk, "BLOCK_P": GPU_BLOCK_P[kernel], **dot_constexprs(dtype, precision, False)}
                constexprs = {name: host[name] for name in HOST_CONSTEXPRS[kernel]}
                kind = None if kernel == "combine" else dot_kind(dtype, precision)
                for config in candidates(kernel, kind, bk):
                    found.append(
                        Variant(
                            kernel, dtype, precision, {**constexprs, **config.meta}, config.num_warps, config.num_stages
                        )
                    )
    return found


def _autotune(kernel: str, key: list[str]):
    """Autotuned over the GPU candidates serving each launch; the key holds the dot precision
    because the candidates depend on it (and the dtypes, which the autotuner adds itself)."""
    configs = [INTERPRETER_CONFIG] if INTERPRETED else list(GPU_CONFIGS[kernel])
    if "DOT_PRECISION" in HOST_CONSTEXPRS[kernel]:
        key = key + ["DOT_PRECISION"]
    return triton.autotune(
        configs=[c.as_triton() for c in configs],
        key=key,
        prune_configs_by={"early_config_prune": functools.partial(_prune, kernel)},
        reset_to_zero=list(ACCUMULATED[kernel]) or None,
    )


# --- shared pieces ------------------------------------------------------------------------------


@triton.jit
def _dot(a, b, acc, DOT_PRECISION: tl.constexpr, UPCAST_DOTS: tl.constexpr):
    """acc + a @ b, float32 ``acc``. The interpreter stores bfloat16 as uint16 and would
    multiply the bit patterns; UPCAST_DOTS (interpreter only) multiplies in float32 instead,
    which is what the tensor cores compute for 16-bit inputs."""
    if UPCAST_DOTS:
        a = a.to(tl.float32)
        b = b.to(tl.float32)
    return tl.dot(a, b, acc=acc, input_precision=DOT_PRECISION)


@triton.jit
def _dot_fx(a, b, acc, DOT_PRECISION: tl.constexpr, UPCAST_DOTS: tl.constexpr):
    """acc + a @ b for a float32 ``a`` computed in the kernel and ``b`` in the input dtype.

    For 16-bit ``b``, ``a`` is split into hi + lo in that dtype and both are multiplied: the
    products are exact and accumulate in float32, so ``a`` keeps about twice the 16-bit
    precision instead of being rounded to it (which cost up to 3x the reference's error)."""
    if b.dtype == tl.float32:
        acc = _dot(a, b, acc, DOT_PRECISION, UPCAST_DOTS)
    else:
        a_hi = a.to(b.dtype)
        a_lo = (a - a_hi.to(tl.float32)).to(b.dtype)
        acc = _dot(a_lo, b, _dot(a_hi, b, acc, DOT_PRECISION, UPCAST_DOTS), DOT_PRECISION, UPCAST_DOTS)
    return acc


@triton.jit
def _dot_xf(a, b, acc, DOT_PRECISION: tl.constexpr, UPCAST_DOTS: tl.constexpr):
    """acc + a @ b for ``a`` in the input dtype and a float32 ``b`` computed in the kernel (see _dot_fx)."""
    if a.dtype == tl.float32:
        acc = _dot(a, b, acc, DOT_PRECISION, UPCAST_DOTS)
    else:
        b_hi = b.to(a.dtype)
        b_lo = (b - b_hi.to(tl.float32)).to(a.dtype)
        acc = _dot(a, b_lo, _dot(a, b_hi, acc, DOT_PRECISION, UPCAST_DOTS), DOT_PRECISION, UPCAST_DOTS)
    return acc


@triton.jit
def _power_of_two_scale(x, TARGET_EXPONENT: tl.constexpr):
    """(s, 1/s), both exact powers of two: s brings max |x| into [2^TARGET_EXPONENT,
    2^(TARGET_EXPONENT+1)); s = 1 where x is all zero."""
    top = tl.max(tl.max(tl.abs(x), 1), 0)
    exponent = ((top.to(tl.int32, bitcast=True) >> 23) & 0xFF) - 127
    shift = tl.where(top > 0, TARGET_EXPONENT - exponent, 0)
    shift = tl.minimum(tl.maximum(shift, -126), 126)
    return ((shift + 127) << 23).to(tl.float32, bitcast=True), ((127 - shift) << 23).to(tl.float32, bitcast=True)


@triton.jit
def _exemplar_logits_t(
    p_x,
    p_c,
    phi,
    o_p,
    m_p,
    o_k,
    m_k,
    N,
    M,
    s_xc,
    s_xp,
    s_cc,
    s_cp,
    BK: tl.constexpr,
    BLOCK_P: tl.constexpr,
    BLOCK_C: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
    UPCAST_DOTS: tl.constexpr,
):
    """S^T [BLOCK_P, BK] = Z^T phi^T at pixels o_p of one batch element, Z = [Fx2; Fc2].

    p_x, p_c: that element's Fx2 (N, P) and Fc2 (M, P); phi (K, N+M) contiguous.
    Rows of masked pixels are 0 (the caller masks them out of the softmax).
    """
    b_s = tl.zeros([BLOCK_P, BK], dtype=tl.float32)
    for c0 in range(0, N, BLOCK_C):
        o_c = c0 + tl.arange(0, BLOCK_C)
        m_c = o_c < N
        # [BLOCK_P, BLOCK_C]
        b_z = tl.load(p_x + o_p[:, None] * s_xp + o_c[None, :] * s_xc, mask=m_p[:, None] & m_c[None, :], other=0.0)
        # [BLOCK_C, BK]
        b_w = tl.load(phi + o_k[None, :] * (N + M) + o_c[:, None], mask=m_c[:, None] & m_k[None, :], other=0.0)
        b_s = _dot(b_z, b_w, b_s, DOT_PRECISION, UPCAST_DOTS)
    for c0 in range(0, M, BLOCK_C):
        o_c = c0 + tl.arange(0, BLOCK_C)
        m_c = o_c < M
        b_z = tl.load(p_c + o_p[:, None] * s_cp + o_c[None, :] * s_cc, mask=m_p[:, None] & m_c[None, :], other=0.0)
        b_w = tl.load(phi + o_k[None, :] * (N + M) + N + o_c[:, None], mask=m_c[:, None] & m_k[None, :], other=0.0)
        b_s = _dot(b_z, b_w, b_s, DOT_PRECISION, UPCAST_DOTS)
    return b_s


@triton.jit
def _target_attention(
    p_c,
    psi,
    psi_bias,
    o_p,
    m_p,
    o_k,
    m_k,
    M,
    s_cc,
    s_cp,
    BK: tl.constexpr,
    BLOCK_P: tl.constexpr,
    BLOCK_C: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
    UPCAST_DOTS: tl.constexpr,
):
    """beta [BK, BLOCK_P] in float32: softmax over the K regions of psi Fc1 + b at pixels o_p.

    p_c: one batch element's Fc1 (M, P); psi (K, M) contiguous; psi_bias (K,).
    Padded regions get weight 0; columns of masked pixels are valid but meaningless.
    """
    b_t = tl.zeros([BK, BLOCK_P], dtype=tl.float32)
    for c0 in range(0, M, BLOCK_C):
        o_c = c0 + tl.arange(0, BLOCK_C)
        m_c = o_c < M
        # [BK, BLOCK_C] @ [BLOCK_C, BLOCK_P]
        b_w = tl.load(psi + o_k[:, None] * M + o_c[None, :], mask=m_k[:, None] & m_c[None, :], other=0.0)
        b_c = tl.load(p_c + o_c[:, None] * s_cc + o_p[None, :] * s_cp, mask=m_c[:, None] & m_p[None, :], other=0.0)
        b_t = _dot(b_w, b_c, b_t, DOT_PRECISION, UPCAST_DOTS)
    b_t += tl.load(psi_bias + o_k, mask=m_k, other=0.0).to(tl.float32)[:, None]
    b_t = tl.where(m_k[:, None], b_t, float("-inf"))
    b_e = tl.exp(b_t - tl.max(b_t, 0)[None, :])
    return b_e / tl.sum(b_e, 0)[None, :]


# --- forward --------------------------------------------------------------------------------


@_autotune("aggregate", key=["N", "M", "K"])
@triton.jit
def msca_fwd_kernel_aggregate(
    fx2,
    fc2,
    phi,
    part_m,
    part_l,
    part_acc,
    N,
    M,
    K,
    P,
    split_len,
    s_xb,
    s_xc,
    s_xp,
    s_cb,
    s_cc,
    s_cp,
    BK: tl.constexpr,
    BLOCK_P: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_C: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
    UPCAST_DOTS: tl.constexpr,
):
    """Pass 1 over one split of the exemplar pixels, for one chunk of the N image channels.

    fx2 (B,N,P), fc2 (B,M,P) strided; phi (K,N+M). Writes the split's running max
    part_m (B,S,BK), sum part_l (B,S,BK) and unnormalised V part_acc (B,S,N,BK), float32.
    Every N chunk recomputes the split's logits; only chunk 0 writes m and l.
    """
    i_n, i_s, i_b = tl.program_id(0), tl.program_id(1), tl.program_id(2).to(tl.int64)
    num_splits = tl.num_programs(1)
    o_k = tl.arange(0, BK)
    m_k = o_k < K
    o_n = i_n * BLOCK_N + tl.arange(0, BLOCK_N)
    m_n = o_n < N
    p_x = fx2 + i_b * s_xb
    p_c = fc2 + i_b * s_cb

    b_m = tl.full([BK], float("-inf"), dtype=tl.float32)
    b_l = tl.zeros([BK], dtype=tl.float32)
    b_acc = tl.zeros([BLOCK_N, BK], dtype=tl.float32)
    p_start = i_s * split_len
    p_end = tl.minimum(p_start + split_len, P)
    for p0 in range(p_start, p_end, BLOCK_P):
        o_p = p0 + tl.arange(0, BLOCK_P)
        m_p = o_p < p_end
        # [BLOCK_P, BK]
        b_s = _exemplar_logits_t(
            p_x, p_c, phi, o_p, m_p, o_k, m_k, N, M, s_xc, s_xp, s_cc, s_cp,
            BK, BLOCK_P, BLOCK_C, DOT_PRECISION, UPCAST_DOTS,
        )
        b_s = tl.where(m_p[:, None], b_s, float("-inf"))
        # Every tile holds at least one pixel, so b_m_new is finite and b_scale is 0 at first.
        b_m_new = tl.maximum(b_m, tl.max(b_s, 0))
        b_scale = tl.exp(b_m - b_m_new)
        b_a = tl.exp(b_s - b_m_new[None, :])
        b_l = b_l * b_scale + tl.sum(b_a, 0)
        # [BLOCK_N, BLOCK_P] @ [BLOCK_P, BK]
        b_x = tl.load(p_x + o_n[:, None] * s_xc + o_p[None, :] * s_xp, mask=m_n[:, None] & m_p[None, :], other=0.0)
        b_acc = _dot(b_x, b_a.to(b_x.dtype), b_acc * b_scale[None, :], DOT_PRECISION, UPCAST_DOTS)
        b_m = b_m_new

    o_slot = i_b * num_splits + i_s
    tl.store(part_acc + (o_slot * N + o_n[:, None]) * BK + o_k[None, :], b_acc, mask=m_n[:, None])
    if i_n == 0:
        tl.store(part_m + o_slot * BK + o_k, b_m)
        tl.store(part_l + o_slot * BK + o_k, b_l)


@_autotune("combine", key=["N", "K"])
@triton.jit
def msca_fwd_kernel_combine(
    part_m,
    part_l,
    part_acc,
    v,
    lse,
    N,
    K,
    num_splits,
    BK: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    """Pass 1's reduction over the splits: V (B,N,K) = sum_s acc_s e^(m_s - m) / l and
    lse (B,K) = m + log l, with m the largest m_s and l = sum_s l_s e^(m_s - m). float32."""
    i_n, i_b = tl.program_id(0), tl.program_id(1).to(tl.int64)
    o_k = tl.arange(0, BK)
    m_k = o_k < K
    o_n = i_n * BLOCK_N + tl.arange(0, BLOCK_N)
    m_n = o_n < N

    b_m = tl.full([BK], float("-inf"), dtype=tl.float32)
    for i_s in range(0, num_splits):
        b_m = tl.maximum(b_m, tl.load(part_m + (i_b * num_splits + i_s) * BK + o_k))
    b_l = tl.zeros([BK], dtype=tl.float32)
    b_acc = tl.zeros([BLOCK_N, BK], dtype=tl.float32)
    for i_s in range(0, num_splits):
        o_slot = i_b * num_splits + i_s
        b_w = tl.exp(tl.load(part_m + o_slot * BK + o_k) - b_m)
        b_l += tl.load(part_l + o_slot * BK + o_k) * b_w
        b_part = tl.load(part_acc + (o_slot * N + o_n[:, None]) * BK + o_k[None, :], mask=m_n[:, None], other=0.0)
        b_acc += b_part * b_w[None, :]

    tl.store(v + (i_b * N + o_n[:, None]) * K + o_k[None, :], b_acc / b_l[None, :], mask=m_n[:, None] & m_k[None, :])
    if i_n == 0:
        tl.store(lse + i_b * K + o_k, b_m + tl.log(b_l), mask=m_k)


@_autotune("distribute", key=["N", "M", "K"])
@triton.jit
def msca_fwd_kernel_distribute(
    fc1,
    psi,
    psi_bias,
    v,
    gate,
    out,
    N,
    M,
    K,
    P,
    s_cb,
    s_cc,
    s_cp,
    s_ob,
    s_oc,
    s_op,
    BK: tl.constexpr,
    BLOCK_P: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_C: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
    UPCAST_DOTS: tl.constexpr,
):
    """Pass 2 for one tile of target pixels: out (B,N,P) = (V * g) beta.

    fc1 (B,M,P) and out strided; psi (K,M), psi_bias (K,), gate (B,K) in the input dtype;
    v (B,N,K) float32. Reads the tile of Fc1 once and writes the tile of out once.
    """
    i_t, i_b = tl.program_id(0), tl.program_id(1).to(tl.int64)
    o_p = i_t * BLOCK_P + tl.arange(0, BLOCK_P)
    m_p = o_p < P
    o_k = tl.arange(0, BK)
    m_k = o_k < K
    # [BK, BLOCK_P]
    b_beta = _target_attention(
        fc1 + i_b * s_cb, psi, psi_bias, o_p, m_p, o_k, m_k, M, s_cc, s_cp,
        BK, BLOCK_P, BLOCK_C, DOT_PRECISION, UPCAST_DOTS,
    )
    b_g = tl.load(gate + i_b * K + o_k, mask=m_k, other=0.0).to(tl.float32)
    for n0 in range(0, N, BLOCK_N):
        o_n = n0 + tl.arange(0, BLOCK_N)
        m_n = o_n < N
        # [BLOCK_N, BK]
        b_v = tl.load(v + (i_b * N + o_n[:, None]) * K + o_k[None, :], mask=m_n[:, None] & m_k[None, :], other=0.0)
        # Both operands stay float32 (rounding them to a 16-bit dtype would add two roundings
        # to the one the output takes); with K <= 32 the float32 dot is cheap.
        b_o = tl.zeros([BLOCK_N, BLOCK_P], dtype=tl.float32)
        b_o = _dot(b_v * b_g[None, :], b_beta, b_o, DOT_PRECISION, UPCAST_DOTS)
        tl.store(
            out + i_b * s_ob + o_n[:, None] * s_oc + o_p[None, :] * s_op,
            b_o.to(out.dtype.element_ty),
            mask=m_n[:, None] & m_p[None, :],
        )


# --- backward -------------------------------------------------------------------------------


@_autotune("sweep_a", key=["N", "M", "K"])
@triton.jit
def msca_bwd_kernel_sweep_a(
    grad_out,
    fc1,
    psi,
    psi_bias,
    v,
    gate,
    dfc1,
    part_dvt,
    part_dpsi,
    part_dbias,
    N,
    M,
    K,
    P,
    split_len,
    s_gb,
    s_gc,
    s_gp,
    s_cb,
    s_cc,
    s_cp,
    s_db,
    s_dc,
    s_dp,
    BK: tl.constexpr,
    BLOCK_P: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_C: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
    UPCAST_DOTS: tl.constexpr,
):
    """Backward sweep A over one split of the target pixels (grid (S, B)), tile by tile.

    Recomputes beta; dVt = dOut beta^T, dbeta = Vt^T dOut, dT = beta (dbeta - sum_k beta dbeta),
    dFc1 = psi^T dT (written, strided like dfc1), and the split's partial sums, float32:
    part_dvt (B,S,N,K) and part_dpsi (B,S,K,M) = dT Fc1^T, which must start at zero, and
    part_dbias (B,S,K) = sum_p dT.
    """
    i_s, i_b = tl.program_id(0), tl.program_id(1).to(tl.int64)
    o_slot = i_b * tl.num_programs(0) + i_s
    o_k = tl.arange(0, BK)
    m_k = o_k < K
    p_c = fc1 + i_b * s_cb
    b_g = tl.load(gate + i_b * K + o_k, mask=m_k, other=0.0).to(tl.float32)
    b_dbias = tl.zeros([BK], dtype=tl.float32)
    p_start = i_s * split_len
    p_end = tl.minimum(p_start + split_len, P)
    for p0 in range(p_start, p_end, BLOCK_P):
        o_p = p0 + tl.arange(0, BLOCK_P)
        m_p = o_p < p_end
        # [BK, BLOCK_P]
        b_beta = _target_attention(
            p_c, psi, psi_bias, o_p, m_p, o_k, m_k, M, s_cc, s_cp,
            BK, BLOCK_P, BLOCK_C, DOT_PRECISION, UPCAST_DOTS,
        )
        b_beta_t = tl.trans(b_beta)
        b_dbeta = tl.zeros([BK, BLOCK_P], dtype=tl.float32)
        for n0 in range(0, N, BLOCK_N):
            o_n = n0 + tl.arange(0, BLOCK_N)
            m_n = o_n < N
            # [BLOCK_N, BLOCK_P]
            b_do = tl.load(
                grad_out + i_b * s_gb + o_n[:, None] * s_gc + o_p[None, :] * s_gp,
                mask=m_n[:, None] & m_p[None, :],
                other=0.0,
            )
            # [BK, BLOCK_N]
            b_vt = tl.load(v + (i_b * N + o_n[None, :]) * K + o_k[:, None], mask=m_k[:, None] & m_n[None, :], other=0.0)
            b_dbeta = _dot_fx(b_vt * b_g[:, None], b_do, b_dbeta, DOT_PRECISION, UPCAST_DOTS)
            # [BLOCK_N, BK]. This program alone adds to its slot, tile after tile, in one
            # thread per element: the sum is deterministic, and it stays in L2.
            b_dvt = _dot_xf(b_do, b_beta_t, tl.zeros([BLOCK_N, BK], dtype=tl.float32), DOT_PRECISION, UPCAST_DOTS)
            tl.atomic_add(
                part_dvt + (o_slot * N + o_n[:, None]) * K + o_k[None, :], b_dvt,
                mask=m_n[:, None] & m_k[None, :], sem="relaxed",
            )

        b_dt = b_beta * (b_dbeta - tl.sum(b_beta * b_dbeta, 0)[None, :])
        b_dt = tl.where(m_p[None, :], b_dt, 0.0)
        b_dbias += tl.sum(b_dt, 1)
        for c0 in range(0, M, BLOCK_C):
            o_c = c0 + tl.arange(0, BLOCK_C)
            m_c = o_c < M
            # [BLOCK_C, BK] @ [BK, BLOCK_P]
            b_w_t = tl.load(psi + o_k[None, :] * M + o_c[:, None], mask=m_c[:, None] & m_k[None, :], other=0.0)
            b_dc = _dot_xf(b_w_t, b_dt, tl.zeros([BLOCK_C, BLOCK_P], dtype=tl.float32), DOT_PRECISION, UPCAST_DOTS)
            tl.store(
                dfc1 + i_b * s_db + o_c[:, None] * s_dc + o_p[None, :] * s_dp,
                b_dc.to(dfc1.dtype.element_ty),
                mask=m_c[:, None] & m_p[None, :],
            )
            # [BK, BLOCK_P] @ [BLOCK_P, BLOCK_C]
            b_c_t = tl.load(
                p_c + o_c[None, :] * s_cc + o_p[:, None] * s_cp, mask=m_p[:, None] & m_c[None, :], other=0.0
            )
            b_dpsi = _dot_fx(b_dt, b_c_t, tl.zeros([BK, BLOCK_C], dtype=tl.float32), DOT_PRECISION, UPCAST_DOTS)
            tl.atomic_add(
                part_dpsi + (o_slot * K + o_k[:, None]) * M + o_c[None, :], b_dpsi,
                mask=m_k[:, None] & m_c[None, :], sem="relaxed",
            )
    tl.store(part_dbias + o_slot * K + o_k, b_dbias, mask=m_k)


@_autotune("sweep_b", key=["N", "M", "K"])
@triton.jit
def msca_bwd_kernel_sweep_b(
    fx2,
    fc2,
    phi,
    lse,
    dv,
    delta,
    dfx2,
    dfc2,
    part_dphi,
    N,
    M,
    K,
    P,
    split_len,
    s_xb,
    s_xc,
    s_xp,
    s_cb,
    s_cc,
    s_cp,
    s_dxb,
    s_dxc,
    s_dxp,
    s_dcb,
    s_dcc,
    s_dcp,
    BK: tl.constexpr,
    BLOCK_P: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_C: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
    UPCAST_DOTS: tl.constexpr,
):
    """Backward sweep B over one split of the exemplar pixels (grid (S, B)), tile by tile.

    Recomputes alpha = exp(S - lse); dalpha = dV^T Fx2, dS = alpha (dalpha - delta),
    dFx2 = phi_x^T dS + dV alpha, dFc2 = phi_c^T dS (written, strided like dfx2 / dfc2) and
    the split's partial sum part_dphi (B,S,N+M,K) = Z dS^T, float32, which must start at zero.
    lse (B,K), dv (B,N,K) = dVt * g and delta (B,K) = sum_n dV V are float32.
    """
    i_s, i_b = tl.program_id(0), tl.program_id(1).to(tl.int64)
    o_slot = i_b * tl.num_programs(0) + i_s
    o_k = tl.arange(0, BK)
    m_k = o_k < K
    p_x = fx2 + i_b * s_xb
    p_c = fc2 + i_b * s_cb
    b_lse = tl.load(lse + i_b * K + o_k, mask=m_k, other=0.0)
    b_delta = tl.load(delta + i_b * K + o_k, mask=m_k, other=0.0)
    p_start = i_s * split_len
    p_end = tl.minimum(p_start + split_len, P)
    for p0 in range(p_start, p_end, BLOCK_P):
        o_p = p0 + tl.arange(0, BLOCK_P)
        m_p = o_p < p_end
        # [BLOCK_P, BK]
        b_s = _exemplar_logits_t(
            p_x, p_c, phi, o_p, m_p, o_k, m_k, N, M, s_xc, s_xp, s_cc, s_cp,
            BK, BLOCK_P, BLOCK_C, DOT_PRECISION, UPCAST_DOTS,
        )
        b_a = tl.where(m_p[:, None] & m_k[None, :], tl.exp(b_s - b_lse[None, :]), 0.0)

        b_da = tl.zeros([BLOCK_P, BK], dtype=tl.float32)
        for n0 in range(0, N, BLOCK_N):
            o_n = n0 + tl.arange(0, BLOCK_N)
            m_n = o_n < N
            # [BLOCK_P, BLOCK_N] @ [BLOCK_N, BK]
            b_x_t = tl.load(
                p_x + o_n[None, :] * s_xc + o_p[:, None] * s_xp, mask=m_p[:, None] & m_n[None, :], other=0.0
            )
            b_dv = tl.load(
                dv + (i_b * N + o_n[:, None]) * K + o_k[None, :], mask=m_n[:, None] & m_k[None, :], other=0.0
            )
            b_da = _dot_xf(b_x_t, b_dv, b_da, DOT_PRECISION, UPCAST_DOTS)
        b_ds = b_a * (b_da - b_delta[None, :])
        if fx2.dtype.element_ty == tl.float16:
            # dS carries alpha ~ 1/P, subnormal in float16 (below 2^-14) at large exemplars:
            # scale the tile by a power of two before its 16-bit split and undo it on the
            # float32 dot results. Per tile, from its largest |dS|, so no alpha can overflow.
            ds_scale, ds_unscale = _power_of_two_scale(b_ds, 14)
        else:
            ds_scale, ds_unscale = 1.0, 1.0
        b_ds = b_ds * ds_scale

        # Image channels: dFx2 gets both the logits' and the aggregation's share.
        for c0 in range(0, N, BLOCK_C):
            o_c = c0 + tl.arange(0, BLOCK_C)
            m_c = o_c < N
            # [BK, BLOCK_C]
            b_w = tl.load(phi + o_k[:, None] * (N + M) + o_c[None, :], mask=m_k[:, None] & m_c[None, :], other=0.0)
            b_dv_t = tl.load(
                dv + (i_b * N + o_c[None, :]) * K + o_k[:, None], mask=m_k[:, None] & m_c[None, :], other=0.0
            )
            # [BLOCK_P, BLOCK_C]
            b_dz = _dot_fx(b_ds, b_w, tl.zeros([BLOCK_P, BLOCK_C], dtype=tl.float32), DOT_PRECISION, UPCAST_DOTS)
            b_dz = _dot(b_a, b_dv_t, b_dz * ds_unscale, DOT_PRECISION, UPCAST_DOTS)
            tl.store(
                dfx2 + i_b * s_dxb + o_c[None, :] * s_dxc + o_p[:, None] * s_dxp,
                b_dz.to(dfx2.dtype.element_ty),
                mask=m_p[:, None] & m_c[None, :],
            )
            # [BLOCK_C, BLOCK_P] @ [BLOCK_P, BK], added to this program's own slot (see sweep A)
            b_z = tl.load(p_x + o_c[:, None] * s_xc + o_p[None, :] * s_xp, mask=m_c[:, None] & m_p[None, :], other=0.0)
            b_dphi = _dot_xf(b_z, b_ds, tl.zeros([BLOCK_C, BK], dtype=tl.float32), DOT_PRECISION, UPCAST_DOTS)
            b_dphi *= ds_unscale
            tl.atomic_add(
                part_dphi + (o_slot * (N + M) + o_c[:, None]) * K + o_k[None, :], b_dphi,
                mask=m_c[:, None] & m_k[None, :], sem="relaxed",
            )
        # Exemplar label channels.
        for c0 in range(0, M, BLOCK_C):
            o_c = c0 + tl.arange(0, BLOCK_C)
            m_c = o_c < M
            b_w = tl.load(phi + o_k[:, None] * (N + M) + N + o_c[None, :], mask=m_k[:, None] & m_c[None, :], other=0.0)
            b_dz = _dot_fx(b_ds, b_w, tl.zeros([BLOCK_P, BLOCK_C], dtype=tl.float32), DOT_PRECISION, UPCAST_DOTS)
            b_dz *= ds_unscale
            tl.store(
                dfc2 + i_b * s_dcb + o_c[None, :] * s_dcc + o_p[:, None] * s_dcp,
                b_dz.to(dfc2.dtype.element_ty),
                mask=m_p[:, None] & m_c[None, :],
            )
            b_z = tl.load(p_c + o_c[:, None] * s_cc + o_p[None, :] * s_cp, mask=m_c[:, None] & m_p[None, :], other=0.0)
            b_dphi = _dot_xf(b_z, b_ds, tl.zeros([BLOCK_C, BK], dtype=tl.float32), DOT_PRECISION, UPCAST_DOTS)
            b_dphi *= ds_unscale
            tl.atomic_add(
                part_dphi + (o_slot * (N + M) + N + o_c[:, None]) * K + o_k[None, :], b_dphi,
                mask=m_c[:, None] & m_k[None, :], sem="relaxed",
            )


KERNELS = {
    "aggregate": msca_fwd_kernel_aggregate,
    "combine": msca_fwd_kernel_combine,
    "distribute": msca_fwd_kernel_distribute,
    "sweep_a": msca_bwd_kernel_sweep_a,
    "sweep_b": msca_bwd_kernel_sweep_b,
}
