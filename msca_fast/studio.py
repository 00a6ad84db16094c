"""``python -m msca_fast.studio``: paint a layout, pick an exemplar, see the output and the attention live.

    python train.py                                        # writes runs/cpu-demo
    python -m msca_fast.studio --checkpoint runs/cpu-demo  # then open the printed URL

Serves one page on 127.0.0.1 (``--port``): a canvas to paint the target layout with the model's
classes (brush, fill, undo, a held-out scene's layout or an uploaded label PNG to start from), a
gallery of held-out scenes as exemplars (or an uploaded photo with its label PNG), a second
exemplar for style interpolation (slider) or spatial interpolation, extrapolation to a canvas
twice as wide, the output updated as you paint, and for a clicked output pixel its region's
spatial attention over the exemplar and channel attention over the output. The page and its
API are :mod:`msca_fast.serving`; requests to the generator run one at a time.
"""

from __future__ import annotations

import argparse
import sys

from msca_fast.cli import new_parser, run_command

PROG = "python -m msca_fast.studio"


def build_parser() -> argparse.ArgumentParser:
    p = new_parser(PROG, __doc__)
    p.add_argument(
        "--checkpoint", required=True,
        help="a checkpoint file, a training run folder (its newest), or an exported .pt2 (plain synthesis only)",
    )  # fmt: skip
    p.add_argument("--host", default="127.0.0.1", help="the address to listen on (127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8765, help="the port (8765; 0 picks a free one)")
    p.add_argument("--gallery", type=int, default=24, help="held-out scenes offered as exemplars (24)")
    return p


def serve(args: argparse.Namespace) -> None:
    import socket

    import uvicorn

    from msca_fast.serving.app import build_app
    from msca_fast.serving.engine import StudioEngine

    if not 1 <= args.gallery <= 200:
        raise ValueError(f"--gallery: expected 1 to 200 scenes, got {args.gallery}")
    if not 0 <= args.port <= 65535:
        raise ValueError(f"--port: expected 0 to 65535, got {args.port}")
    engine = StudioEngine.open(args.checkpoint, gallery_size=args.gallery)
    listener = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((args.host, args.port))
    except OSError as error:
        raise ValueError(f"--port: cannot listen on {args.host}:{args.port} ({error.strerror})") from error
    host, port = listener.getsockname()[:2]
    print(f"msca-fast studio: serving {args.checkpoint} at http://{host}:{port}/  (Ctrl-C stops)", flush=True)
    server = uvicorn.Server(uvicorn.Config(build_app(engine), log_level="warning"))
    server.run(sockets=[listener])


def main(argv: list[str] | None = None) -> int:
    """Exit code: 0 stopped, 2 bad options or checkpoint, 130 Ctrl-C, 1 anything else."""
    return run_command(build_parser(), argv, serve)


if __name__ == "__main__":
    sys.exit(main())
