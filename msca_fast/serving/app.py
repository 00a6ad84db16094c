"""The studio's web app (Starlette): the page and its assets, and a JSON API over
:class:`~msca_fast.serving.engine.StudioEngine`.

    GET  /                         the page
    GET  /assets/<file>            its script and style sheet (this package's assets/ only)
    GET  /api/info                 classes (id, name, colour), canvas size, gallery, modes
    GET  /api/gallery/<i>/image.png, /api/gallery/<i>/label.png   a gallery scene
    GET  /api/layouts/<i>          a gallery scene's layout {"height", "width", "ids"}
    POST /api/synthesize           {layout, exemplar, [exemplar_b, mix, mode]} -> {image, milliseconds}
    POST /api/attention            {layout, exemplar, scale, y, x} -> {region, regions, spatial, channel}
    POST /api/label                {label: PNG data URL} -> a layout (the upload checked against the canvas)
    POST /api/layout.png           {layout} -> the layout as a PNG of class ids (a download)

Bad requests get a 4xx status and ``{"error": "<one line>"}``; bodies over :data:`MAX_BODY`
bytes are refused (413) before they are read whole.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import torch
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from msca_fast.serving.engine import NoSuchScene, StudioEngine, StudioError, image_png, png_bytes
from msca_fast.serving.payloads import (
    NUM_SCALES,
    BadRequest,
    decode_picture,
    field,
    label_ids,
    parse_exemplar,
    parse_index,
    parse_layout,
    parse_mode,
    parse_unit,
)

ASSETS = Path(__file__).parent / "assets"
MAX_BODY = 8 * 1024 * 1024


def data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": " ".join(message.split())}, status_code=status)


async def read_json(request: Request) -> object:
    """The body as JSON, refused with 413 past MAX_BODY bytes (declared or streamed)."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY):
        raise BadRequest(413, f"body: at most {MAX_BODY} bytes, got {declared}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise BadRequest(413, f"body: at most {MAX_BODY} bytes")
        chunks.append(chunk)
    try:
        return json.loads(b"".join(chunks))
    except (UnicodeDecodeError, json.JSONDecodeError) as problem:
        raise BadRequest(400, f"body: expected JSON ({problem})") from problem


def build_app(engine: StudioEngine) -> Starlette:
    """The app serving ``engine``; requests to the generator run one at a time (the engine's lock)."""
    from starlette.concurrency import run_in_threadpool

    def handled(work):
        async def endpoint(request: Request) -> Response:
            try:
                return await work(request)
            except BadRequest as problem:
                return error(problem.status, str(problem))
            except NoSuchScene as problem:
                return error(404, str(problem))
            except StudioError as problem:
                return error(422, str(problem))

        return endpoint

    async def page(request: Request) -> Response:
        return FileResponse(ASSETS / "index.html")

    async def info(request: Request) -> Response:
        return JSONResponse(engine.info())

    async def gallery_picture(request: Request) -> Response:
        what = request.path_params["what"]
        if what not in ("image", "label"):
            raise BadRequest(404, f"gallery picture: expected image.png or label.png, got {what}.png")
        return Response(engine.gallery_png(request.path_params["index"], what), media_type="image/png")

    async def layout(request: Request) -> Response:
        ids = engine.layout_ids(request.path_params["index"])
        return JSONResponse({"height": engine.size[0], "width": engine.size[1], "ids": ids})

    async def synthesize(request: Request) -> Response:
        body = await read_json(request)
        mode = parse_mode(body)
        grid = parse_layout(body, engine, wide=mode == "extrapolate")
        exemplar = parse_exemplar(body, engine)
        exemplar_b = parse_exemplar(body, engine, "exemplar_b", required=False)
        mix = parse_unit(body, "mix")
        image, milliseconds = await run_in_threadpool(engine.synthesize, grid, exemplar, mode, exemplar_b, mix)
        return JSONResponse({"image": data_url(image_png(image)), "milliseconds": round(milliseconds, 1)})

    async def attention(request: Request) -> Response:
        body = await read_json(request)
        grid = parse_layout(body, engine)
        exemplar = parse_exemplar(body, engine)
        scale = parse_index(body, "scale", NUM_SCALES)
        y, x = parse_index(body, "y", grid.shape[0]), parse_index(body, "x", grid.shape[1])
        maps = await run_in_threadpool(engine.attention, grid, exemplar, scale, y, x)
        return JSONResponse({
            "region": maps["region"], "regions": maps["regions"],
            "spatial": data_url(image_png(maps["spatial"])), "channel": data_url(image_png(maps["channel"])),
        })  # fmt: skip

    async def label(request: Request) -> Response:
        body = await read_json(request)
        ids = label_ids("label", decode_picture("label", field(body, "label", str)), engine.num_classes)
        if tuple(ids.shape) != engine.size:
            raise BadRequest(
                422, f"label: expected the canvas size {engine.size[0]}x{engine.size[1]}, "
                f"got {ids.shape[0]}x{ids.shape[1]}",
            )  # fmt: skip
        return JSONResponse({"height": engine.size[0], "width": engine.size[1], "ids": ids.flatten().tolist()})

    async def layout_png(request: Request) -> Response:
        body = await read_json(request)
        grid = parse_layout(body, engine, wide=True)
        return Response(
            png_bytes(grid.to(torch.uint8).numpy()), media_type="image/png",
            headers={"Content-Disposition": 'attachment; filename="layout.png"'},
        )  # fmt: skip

    routes = [
        Route("/", page),
        Route("/api/info", handled(info)),
        Route("/api/gallery/{index:int}/{what}.png", handled(gallery_picture)),
        Route("/api/layouts/{index:int}", handled(layout)),
        Route("/api/synthesize", handled(synthesize), methods=["POST"]),
        Route("/api/attention", handled(attention), methods=["POST"]),
        Route("/api/label", handled(label), methods=["POST"]),
        Route("/api/layout.png", handled(layout_png), methods=["POST"]),
        Mount("/assets", app=StaticFiles(directory=ASSETS), name="assets"),
    ]
    return Starlette(routes=routes)
