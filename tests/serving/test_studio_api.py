"""The studio's API without a browser: every endpoint, its answers equal to the synthesis API's,
and bad requests refused with a 4xx status and one line."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("starlette", reason="the studio needs starlette (requirements.txt)")
pytest.importorskip("httpx2", reason="starlette's TestClient needs httpx2 (requirements.txt)")
from starlette.testclient import TestClient  # noqa: E402

from msca_fast.models.labels import one_hot  # noqa: E402
from msca_fast.serving.app import MAX_BODY, build_app  # noqa: E402
from msca_fast.serving.engine import StudioEngine, image_png  # noqa: E402
from msca_fast.synthesis import interpolate_styles, spatial_interpolation, synthesize  # noqa: E402

from synthesis_models import responsive_generator, write_checkpoint  # noqa: E402

SIZE = 64
CLASSES = 12


@pytest.fixture(scope="module")
def engine(tmp_path_factory) -> StudioEngine:
    run = tmp_path_factory.mktemp("run")
    generator = responsive_generator()
    write_checkpoint(run, generator, generator)
    return StudioEngine.open(run, gallery_size=4)


@pytest.fixture(scope="module")
def client(engine) -> TestClient:
    return TestClient(build_app(engine))


def png_url(array: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def decoded(url: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))


def layout_of(ids: torch.Tensor) -> dict:
    return {"height": ids.shape[0], "width": ids.shape[1], "ids": ids.flatten().tolist()}


def expected_png(image: torch.Tensor) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(image_png(image))))


def stripes(width: int = SIZE) -> torch.Tensor:
    ids = torch.full((SIZE, width), 7)  # grass
    ids[: SIZE // 3] = 0  # sky
    ids[SIZE // 3 : SIZE // 2] = 5  # water
    return ids


def test_the_page_and_its_assets_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and "<canvas id=\"canvas\"" in page.text
    for asset in ("studio.js", "studio.css"):
        assert client.get(f"/assets/{asset}").status_code == 200


def test_files_outside_the_assets_are_not_served(client):
    for path in ("/assets/../app.py", "/assets/%2e%2e/app.py", "/assets/../../training/config.py", "/app.py"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert "ASSETS" not in response.text


def test_info_names_the_classes_and_the_gallery(client):
    info = client.get("/api/info").json()
    assert info["size"] == [SIZE, SIZE]
    assert [c["name"] for c in info["classes"]][:3] == ["sky", "cloud", "mountain"]
    assert all(len(c["colour"]) == 7 and c["colour"].startswith("#") for c in info["classes"])
    assert len(info["gallery"]) == 4 and info["modes"] == ["style", "spatial", "extrapolate"]


def test_gallery_pictures_and_layouts(client, engine):
    image = client.get("/api/gallery/1/image.png")
    assert image.headers["content-type"] == "image/png"
    picture = np.asarray(Image.open(io.BytesIO(image.content)))
    np.testing.assert_array_equal(picture, expected_png(engine.gallery[1]["image"]))
    assert client.get("/api/gallery/1/label.png").status_code == 200
    layout = client.get("/api/layouts/2").json()
    assert layout["ids"] == engine.gallery[2]["label"].flatten().tolist()
    assert client.get("/api/layouts/9").status_code == 404
    assert client.get("/api/gallery/9/image.png").status_code == 404
    assert client.get("/api/gallery/1/other.png").status_code == 404


def test_synthesize_equals_the_synthesis_api(client, engine):
    ids = stripes()
    answer = client.post("/api/synthesize", json={"layout": layout_of(ids), "exemplar": 1})
    assert answer.status_code == 200, answer.text
    x2, c2 = engine.gallery_exemplar(1).image, engine.gallery_exemplar(1).labels
    with torch.inference_mode():
        direct = synthesize(engine.generator, one_hot(ids[None], CLASSES), x2, c2)
    np.testing.assert_array_equal(decoded(answer.json()["image"]), expected_png(direct))
    assert answer.json()["milliseconds"] > 0


def test_style_and_spatial_interpolation_equal_the_synthesis_api(client, engine):
    ids = stripes()
    a, b = engine.gallery_exemplar(0), engine.gallery_exemplar(3)
    c1 = one_hot(ids[None], CLASSES)
    body = {"layout": layout_of(ids), "exemplar": 0, "exemplar_b": 3, "mix": 0.25}
    with torch.inference_mode():
        mixed = interpolate_styles(engine.generator, c1, (a.image, a.labels), (b.image, b.labels), [0.25])[0]
        spatial = spatial_interpolation(engine.generator, c1, (a.image, a.labels), (b.image, b.labels))
    got = decoded(client.post("/api/synthesize", json=body).json()["image"])
    np.testing.assert_array_equal(got, expected_png(mixed))
    got = decoded(client.post("/api/synthesize", json={**body, "mode": "spatial"}).json()["image"])
    np.testing.assert_array_equal(got, expected_png(spatial))
    pure_a = decoded(client.post("/api/synthesize", json={**body, "mix": 0}).json()["image"])
    pure_b = decoded(client.post("/api/synthesize", json={**body, "mix": 1}).json()["image"])
    assert np.abs(pure_a.astype(int) - pure_b.astype(int)).mean() > 1  # the slider changes the picture


def test_extrapolation_paints_a_wider_canvas(client):
    body = {"layout": layout_of(stripes(2 * SIZE)), "exemplar": 0, "mode": "extrapolate"}
    answer = client.post("/api/synthesize", json=body)
    assert answer.status_code == 200, answer.text
    assert decoded(answer.json()["image"]).shape == (SIZE, 2 * SIZE, 3)


def test_an_uploaded_exemplar_works_like_the_same_gallery_scene(client, engine):
    item = engine.gallery[2]
    photo = ((item["image"].permute(1, 2, 0) + 1) * 127.5).round().clamp(0, 255).byte().numpy()
    upload = {"image": png_url(photo), "label": png_url(item["label"].byte().numpy())}
    ids = stripes()
    by_upload = client.post("/api/synthesize", json={"layout": layout_of(ids), "exemplar": upload})
    by_gallery = client.post("/api/synthesize", json={"layout": layout_of(ids), "exemplar": 2})
    assert by_upload.status_code == 200, by_upload.text
    upload_image, gallery_image = (decoded(r.json()["image"]).astype(int) for r in (by_upload, by_gallery))
    assert np.abs(upload_image - gallery_image).mean() < 1.0  # the same scene, through an 8-bit PNG


def test_attention_names_the_region_under_the_click(client, engine):
    ids = stripes()
    answer = client.post("/api/attention", json={"layout": layout_of(ids), "exemplar": 1, "scale": 1, "y": 60, "x": 5})
    assert answer.status_code == 200, answer.text
    maps = answer.json()
    assert 0 <= maps["region"] < maps["regions"] == engine.generator.config.num_regions[1]
    assert decoded(maps["spatial"]).shape == decoded(maps["channel"]).shape == (SIZE, SIZE, 3)


def test_label_upload_and_layout_download_round_trip(client):
    ids = stripes()
    layout = client.post("/api/label", json={"label": png_url(ids.byte().numpy())}).json()
    assert layout == layout_of(ids)
    download = client.post("/api/layout.png", json={"layout": layout})
    assert download.headers["content-type"] == "image/png"
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(download.content))), ids.numpy())


def post(client, path, body):
    response = client.post(path, content=body if isinstance(body, bytes) else json.dumps(body))
    return response.status_code, response.json()["error"]


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        ("/api/synthesize", b"{not json", 400, "body: expected JSON"),
        ("/api/synthesize", [1, 2], 400, "body: expected a JSON object"),
        ("/api/synthesize", {"exemplar": 0}, 422, "layout: missing"),
        ("/api/synthesize", {"layout": {"height": 32, "width": 32, "ids": []}, "exemplar": 0}, 422,
         "layout: expected the model's size 64x64, got 32x32"),
        ("/api/synthesize", {"layout": {"height": 64, "width": 64, "ids": [0] * 10}, "exemplar": 0}, 422,
         "layout.ids: expected 4096 class ids"),
        ("/api/synthesize", {"layout": {"height": 64, "width": 64, "ids": [0] * 4095 + [12]}, "exemplar": 0}, 422,
         "layout.ids: class id 12 at row 63, column 63 is not one of the model's 12 classes (0-11)"),
        ("/api/synthesize", {"layout": {"height": 64, "width": 64, "ids": [0] * 4095 + [-1]}, "exemplar": 0}, 422,
         "class id -1"),
        ("/api/synthesize", {"layout": {"height": 64, "width": 64, "ids": [0.5] * 4096}, "exemplar": 0}, 422,
         "layout.ids: expected integers only"),
        ("/api/synthesize", {"layout": {"height": 64, "width": 64, "ids": [0] * 4096}, "exemplar": 7}, 404,
         "exemplar: no gallery scene 7"),
        ("/api/synthesize", {"layout": {"height": 64, "width": 64, "ids": [0] * 4096}, "exemplar": 0, "mix": 2}, 422,
         "mix: expected a number from 0 to 1, got 2.0"),
        ("/api/synthesize", {"layout": {"height": 64, "width": 64, "ids": [0] * 4096}, "exemplar": 0, "mode": "x"},
         422, "mode: expected one of style, spatial, extrapolate"),
        ("/api/synthesize", {"layout": {"height": 64, "width": 64, "ids": [0] * 4096}, "exemplar": 0,
                             "mode": "spatial"}, 422, "exemplar_b: spatial interpolation needs a second exemplar"),
        ("/api/synthesize", {"layout": {"height": 64, "width": 64, "ids": [0] * 4096},
                             "exemplar": {"image": "data:text/plain;base64,aGk=", "label": ""}}, 415,
         "exemplar.image: expected a PNG or JPEG data URL"),
        ("/api/synthesize", {"layout": {"height": 64, "width": 64, "ids": [0] * 4096},
                             "exemplar": {"image": "data:image/png;base64,bm90IGFuIGltYWdl", "label": ""}}, 415,
         "exemplar.image: not a readable PNG or JPEG image"),
        ("/api/attention", {"layout": {"height": 64, "width": 64, "ids": [0] * 4096}, "exemplar": 0, "scale": 5,
                            "y": 0, "x": 0}, 422, "scale: expected an integer from 0 to 4, got 5"),
        ("/api/attention", {"layout": {"height": 64, "width": 64, "ids": [0] * 4096}, "exemplar": 0, "scale": 0,
                            "y": 64, "x": 0}, 422, "y: expected an integer from 0 to 63, got 64"),
        ("/api/label", {"label": 3}, 422, "label: expected a string, got int"),
    ],
)  # fmt: skip
def test_bad_requests_get_a_4xx_and_one_line(client, path, body, status, message):
    got_status, got_message = post(client, path, body)
    assert got_status == status
    assert message in got_message and "\n" not in got_message


def test_an_uploaded_label_of_the_wrong_size_or_kind_is_named(client):
    status, message = post(client, "/api/label", {"label": png_url(np.zeros((32, 48), np.uint8))})
    assert (status, message) == (422, "label: expected the canvas size 64x64, got 32x48")
    status, message = post(client, "/api/label", {"label": png_url(np.zeros((64, 64, 3), np.uint8))})
    assert status == 422 and message.startswith("label: expected a label map of class ids")
    status, message = post(client, "/api/label", {"label": png_url(np.full((64, 64), 40, np.uint8))})
    assert status == 422 and "class id 40" in message


def test_an_exemplar_label_of_another_size_than_its_photo_is_named(client):
    upload = {"image": png_url(np.zeros((64, 64, 3), np.uint8)), "label": png_url(np.zeros((32, 32), np.uint8))}
    status, message = post(client, "/api/synthesize", {"layout": layout_of(stripes()), "exemplar": upload})
    assert (status, message) == (422, "exemplar.label: expected the image's size 64x64, got 32x32")


def test_an_oversized_body_is_refused_before_it_is_parsed(client):
    status, message = post(client, "/api/synthesize", b" " * (MAX_BODY + 1))
    assert status == 413 and message.startswith("body: at most")


def test_an_exported_generator_is_served_for_plain_synthesis(engine, tmp_path):
    from msca_fast.synthesis.exported import export_generator

    path = export_generator(engine.generator, tmp_path / "g.pt2", size=(SIZE, SIZE), dataset="synthetic")
    exported = TestClient(build_app(StudioEngine.open(path, gallery_size=4)))
    assert exported.get("/api/info").json()["modes"] == ["style"]
    ids = stripes()
    body = {"layout": layout_of(ids), "exemplar": 1}
    with torch.inference_mode():
        x2, c2 = engine.gallery_exemplar(1).image, engine.gallery_exemplar(1).labels
        eager = synthesize(engine.generator, one_hot(ids[None], CLASSES), x2, c2)
    answer = exported.post("/api/synthesize", json=body)
    assert answer.status_code == 200, answer.text
    got = decoded(answer.json()["image"]).astype(int)
    assert np.abs(got - expected_png(eager).astype(int)).max() <= 1  # float rounding at a level boundary
    status, message = post(exported, "/api/synthesize", {**body, "exemplar_b": 2, "mode": "spatial"})
    assert status == 422 and message.startswith("mode: this studio serves an exported generator (.pt2)")
    status, message = post(exported, "/api/attention", {**body, "scale": 0, "y": 0, "x": 0})
    assert status == 422 and message.startswith("attention: this studio serves an exported generator")
