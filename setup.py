"""Builds msca_fast and its operator extension msca_fast._C.

    python setup.py build_ext --inplace        # in-place, for a checkout
    pip install --no-build-isolation -e .      # editable install against your torch

The C++ sources in csrc/ always build. CUDA sources (csrc/*.cu) build when nvcc and a CUDA
build of torch are present. The CUDA kernels also always build as host C++ over an emulation
of the CUDA execution model (csrc/emulation/), as msca_fast._C_cuda_emulated: the
"cuda_emulated" backend that tests them on the CPU. Environment switches:
    MSCA_FAST_SKIP_CUDA=1   never build the CUDA kernels
    MSCA_FAST_SKIP_EMULATION=1  skip msca_fast._C_cuda_emulated (minutes of host C++ that
                            only the CPU tests use; the GPU check sets it)
    FORCE_CUDA=1            build them or fail (no auto-detection)
    TORCH_CUDA_ARCH_LIST    target architectures (default "8.0;9.0+PTX": PTX lets newer GPUs JIT it)
    MAX_JOBS                parallel compile jobs (default 2)
"""

import glob
import os

from setuptools import find_packages, setup

# The nvcc on PATH may be a wrapper outside the toolkit; torch would then guess CUDA_HOME
# from it wrongly, so point at the toolkit before torch.utils.cpp_extension is imported.
if "CUDA_HOME" not in os.environ and os.path.exists("/usr/local/cuda/bin/nvcc"):
    os.environ["CUDA_HOME"] = "/usr/local/cuda"
os.environ.setdefault("MAX_JOBS", "2")

import torch  # noqa: E402
from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def _flag(name: str) -> bool:
    return os.environ.get(name, "0").lower() in ("1", "true", "yes", "on")


def _build_cuda(cuda_sources: list[str]) -> bool:
    if _flag("MSCA_FAST_SKIP_CUDA"):
        return False
    if _flag("FORCE_CUDA"):
        if CUDA_HOME is None:
            raise RuntimeError("FORCE_CUDA=1 but no CUDA toolkit was found: set CUDA_HOME to it")
        if torch.version.cuda is None:
            raise RuntimeError(f"FORCE_CUDA=1 but torch {torch.__version__} is a CPU-only build")
        return True
    return bool(cuda_sources) and CUDA_HOME is not None and torch.version.cuda is not None


def emulated_cuda_extension(cxx_flags: list[str]) -> CppExtension:
    """The kernels of csrc/msca_cuda.cu compiled for the CPU over the CUDA emulation."""
    return CppExtension(
        "msca_fast._C_cuda_emulated",
        [os.path.join("csrc", "emulation", "msca_cuda_emulated.cpp")],
        include_dirs=[os.path.join(HERE, "csrc"), os.path.join(HERE, "csrc", "emulation")],
        extra_compile_args={"cxx": cxx_flags},
        extra_link_args=["-fopenmp"],
    )


def extensions():
    cpp_sources = sorted(glob.glob(os.path.join("csrc", "*.cpp")))
    cuda_sources = sorted(glob.glob(os.path.join("csrc", "*.cu")))
    cxx_flags = ["-O3", "-fopenmp", "-Wno-psabi"]  # the C++ standard is the one torch asks for
    emulated = [] if _flag("MSCA_FAST_SKIP_EMULATION") else [emulated_cuda_extension(cxx_flags)]
    if _build_cuda(cuda_sources):
        os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "8.0;9.0+PTX")
        return emulated + [
            CUDAExtension(
                "msca_fast._C",
                cpp_sources + cuda_sources,
                include_dirs=[os.path.join(HERE, "csrc")],
                define_macros=[("MSCA_FAST_WITH_CUDA", "1")],
                extra_compile_args={"cxx": cxx_flags, "nvcc": ["-O3", "--expt-relaxed-constexpr"]},
                extra_link_args=["-fopenmp"],
            )
        ]
    return emulated + [
        CppExtension(
            "msca_fast._C",
            cpp_sources,
            include_dirs=[os.path.join(HERE, "csrc")],
            extra_compile_args={"cxx": cxx_flags},
            extra_link_args=["-fopenmp"],
        )
    ]


# The installed commands, each the same as ``python -m msca_fast.<module>`` (msca-train: train.py).
COMMANDS = {
    "msca-train": "train",
    "msca-evaluate": "evaluate",
    "msca-synthesize": "synthesize",
    "msca-ablation": "ablation",
    "msca-export": "export",
    "msca-demo": "demo",
    "msca-studio": "studio",
}

setup(
    name="msca-fast",
    version="0.1.0",
    description=(
        "Masked spatial-channel attention (ECCV 2020) as fused kernels, "
        "with the full example-guided synthesis system"
    ),
    packages=find_packages(include=["msca_fast", "msca_fast.*"]),
    python_requires=">=3.10",
    install_requires=["torch>=2.4", "torchvision>=0.19", "numpy>=1.24", "pillow>=9", "tqdm>=4.60"],
    extras_require={
        "test": ["pytest>=8", "pytest-benchmark>=4"],
        # The paper's metrics: LPIPS (calibrated VGG) and the FID Inception-v3 (msca_fast.metrics).
        "eval": ["lpips>=0.1.4", "torch-fidelity>=0.4.0"],
        # python -m msca_fast.studio: the web app and its server.
        "studio": ["starlette>=0.40", "uvicorn>=0.30"],
    },
    package_data={"msca_fast.serving": ["assets/*"]},
    entry_points={"console_scripts": [f"{name}=msca_fast.{module}:main" for name, module in COMMANDS.items()]},
    ext_modules=extensions(),
    cmdclass={"build_ext": BuildExtension},
)
