"""The CPU renderer on analytic meshes whose pictures are known, and the fast rasteriser against
its slow twin."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from streamrecon.types import Mesh
from streamrecon.testing.shapes import box, uv_sphere
from streamrecon.mesh.coords import crop_to_image_points as crop_to_image, image_to_crop_points as image_to_crop
from streamrecon.eval.render import (CropCamera, rasterize,
                                rasterize_reference, render_mesh)


RECT = (100.0, 40.0, 300.0, 300.0)
CAM = CropCamera(RECT, (400, 520))


def test_sphere_silhouette_area_and_position_image_view():
    v, f = uv_sphere(radius=0.6, centre=(0.2, -0.1, 0.0))
    r = render_mesh(Mesh(v, f, frame="crop"), CAM, "image")
    radius_px = 0.6 * RECT[2] / 2
    area = np.pi * radius_px ** 2
    assert abs(r.silhouette.sum() - area) / area < 0.01
    rows, cols = np.nonzero(r.silhouette)
    cx, cy = crop_to_image([[0.2, -0.1, 0.0]], RECT)[0, :2]
    assert abs(cols.mean() + 0.5 - cx) < 0.5 and abs(rows.mean() + 0.5 - cy) < 0.5
    # Nearest point of the sphere: the centre's depth minus the radius, in pixels.
    assert np.nanmin(r.depth) == pytest.approx(-radius_px, abs=0.05 * radius_px / 10)


def test_sphere_silhouette_area_crop_view():
    v, f = uv_sphere(radius=0.5)
    r = render_mesh(Mesh(v, f, frame="crop"), CAM, "crop", crop_size=256)
    area = np.pi * (0.5 * 128) ** 2
    assert abs(r.silhouette.sum() - area) / area < 0.01
    assert np.nanmin(r.depth) == pytest.approx(-0.5, abs=2e-3)  # crop-frame units
    # Headlight shading is brightest facing the camera; the centre normal points at the viewer.
    assert r.shaded[128, 128] == pytest.approx(1.0, abs=1e-3)
    assert np.allclose(r.normals[128, 128], [0, 0, -1], atol=2e-2)
    # The rightmost covered pixel of the middle row has a normal pointing right (+x).
    right = np.flatnonzero(r.silhouette[128]).max()
    assert r.normals[128, right, 0] > 0.9
    # The top row of the disc points up: -y in the raster frame.
    top = np.flatnonzero(r.silhouette[:, 128]).min()
    assert r.normals[top, 128, 1] < -0.9


def test_box_depth_is_exact_and_silhouette_is_its_pixel_centres():
    lo, hi = (-0.537, -0.313, -0.5), (0.413, 0.627, 0.25)  # edges off pixel centres
    v, f = box(lo, hi)
    for view, size in (("crop", 200), ("image", None)):
        r = render_mesh(Mesh(v, f, frame="crop"), CAM, view, crop_size=size or 512, smooth=False)
        raster_lo = CAM.to_raster(np.array([lo]), "crop", view, size or 512)[0]
        raster_hi = CAM.to_raster(np.array([hi]), "crop", view, size or 512)[0]
        h, w = r.silhouette.shape
        jc, ic = np.arange(w) + 0.5, np.arange(h) + 0.5
        xs = (jc >= min(raster_lo[0], raster_hi[0])) & (jc <= max(raster_lo[0], raster_hi[0]))
        ys = (ic >= min(raster_lo[1], raster_hi[1])) & (ic <= max(raster_lo[1], raster_hi[1]))
        expected = ys[:, None] & xs[None, :]
        assert np.array_equal(r.silhouette, expected), view
        want = -0.5 if view == "crop" else -0.5 * RECT[2] / 2
        assert np.allclose(r.depth[expected], want, rtol=0, atol=1e-5 * abs(want)), view
        assert np.isnan(r.depth[~expected]).all()
        # Flat shading: the front face faces the camera, full brightness everywhere on it.
        assert np.allclose(r.shaded[expected], 1.0, atol=1e-5)


def test_tilted_plane_depth_is_linear():
    # One quad z = 0.3 x + 0.1 y - 0.2 over the whole crop: depth must follow the plane exactly.
    v = np.array([[-1, -1, 0], [1, -1, 0], [1, 1, 0], [-1, 1, 0]], float)
    v[:, 2] = 0.3 * v[:, 0] + 0.1 * v[:, 1] - 0.2
    r = render_mesh(Mesh(v, [[0, 1, 2], [0, 2, 3]], frame="crop"), CAM, "crop", crop_size=64)
    c = (np.arange(64) + 0.5) / 64 * 2 - 1
    x, y = c[None, :], -c[:, None]
    assert r.silhouette.all()
    assert np.allclose(r.depth, 0.3 * x + 0.1 * y - 0.2, atol=1e-5)


def test_image_frame_mesh_renders_like_its_crop_frame_twin():
    v, f = uv_sphere(radius=0.4, centre=(-0.3, 0.2, 0.1), n_lat=24, n_lon=48)
    a = render_mesh(Mesh(v, f, frame="crop"), CAM, "image")
    b = render_mesh(Mesh(crop_to_image(v, RECT), f, frame="image"), CAM, "image")
    assert np.array_equal(a.silhouette, b.silhouette)
    assert np.allclose(a.depth, b.depth, atol=1e-3, equal_nan=True)
    c = render_mesh(Mesh(crop_to_image(v, RECT), f, frame="image"), CAM, "crop", crop_size=300)
    # With crop_size == rect width the crop view is the image view shifted by the rect origin.
    shifted = CropCamera(RECT, (400, 520)).crop_image(a.silhouette, crop_size=300)
    assert np.array_equal(c.silhouette, shifted)


def test_winding_does_not_change_the_picture():
    v, f = uv_sphere(radius=0.5, n_lat=20, n_lon=40)
    a = render_mesh(Mesh(v, f, frame="crop"), CAM, "crop", crop_size=96)
    b = render_mesh(Mesh(v, f[:, ::-1], frame="crop"), CAM, "crop", crop_size=96)
    assert np.array_equal(a.silhouette, b.silhouette)
    assert np.allclose(a.normals, b.normals, atol=1e-5)
    assert np.allclose(a.shaded, b.shaded, atol=1e-5)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 40))
def test_fast_rasterizer_matches_slow_twin(seed, n):
    rng = np.random.default_rng(seed)
    h, w = 23, 31
    centres = rng.uniform([-3, -3, -1], [w + 3, h + 3, 1], size=(n, 1, 3))
    v = (centres + rng.normal(scale=[6, 6, 0.5], size=(n, 3, 3))).reshape(-1, 3)
    f = np.arange(3 * n).reshape(n, 3)
    fast = rasterize(v, f, h, w, max_pairs=97)  # tiny chunks: exercises the chunked z-buffer
    slow = rasterize_reference(v, f, h, w)
    assert np.array_equal(fast.face_index, slow.face_index)
    assert np.array_equal(fast.depth, slow.depth)
    assert np.allclose(fast.bary, slow.bary, atol=1e-6)


def test_closed_mesh_has_no_cracks():
    # A fan of thin triangles around a centre: every pixel centre inside the polygon is covered.
    k = 257
    ang = np.linspace(0, 2 * np.pi, k, endpoint=False)
    rim = np.stack([20 + 15.3 * np.cos(ang), 20 + 15.3 * np.sin(ang), np.zeros(k)], 1)
    v = np.concatenate([[[20.0, 20.0, 0.0]], rim])
    f = np.stack([np.zeros(k, int), 1 + np.arange(k), 1 + (np.arange(k) + 1) % k], 1)
    r = rasterize(v, f, 40, 40)
    ii, jj = np.mgrid[:40, :40] + 0.5
    inner = (jj - 20) ** 2 + (ii - 20) ** 2 < 15.0 ** 2
    assert r.mask[inner].all()


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-1e3, 1e3), min_size=3, max_size=3),
       st.tuples(st.floats(-500, 500), st.floats(-500, 500), st.floats(1, 2000)))
def test_crop_image_round_trip(p, r):
    rect = (r[0], r[1], r[2], r[2])
    q = image_to_crop(crop_to_image([p], rect), rect)[0]
    assert np.allclose(q, p, atol=1e-6 * (1 + np.abs(p).max()))


def test_crop_to_image_matches_the_documented_formula():
    p = np.array([[-1, 1, 0.0], [1, -1, 1.0], [0, 0, -0.5]])
    rx, ry, rw, rh = RECT
    out = crop_to_image(p, RECT)
    assert np.allclose(out[0], [rx, ry, 0])  # top-left corner of the rect
    assert np.allclose(out[1], [rx + rw, ry + rh, rw / 2])
    assert np.allclose(out[2], [rx + rw / 2, ry + rh / 2, -rw / 4])


def test_bad_inputs_raise_value_errors_naming_the_argument():
    with pytest.raises(ValueError, match="vertices"):
        rasterize(np.zeros((3, 2)), [[0, 1, 2]], 4, 4)
    with pytest.raises(ValueError, match="faces"):
        rasterize(np.zeros((3, 3)), [[0, 1, 3]], 4, 4)
    with pytest.raises(ValueError, match="rect"):
        CropCamera((0, 0, -1, 5), (4, 4))
    with pytest.raises(ValueError, match="view"):
        CAM.to_raster(np.zeros((1, 3)), "crop", "side")


def test_empty_mesh_renders_background():
    r = render_mesh(Mesh(np.zeros((0, 3)), np.zeros((0, 3)), frame="image"), CAM, "image")
    assert not r.silhouette.any() and np.isnan(r.depth).all() and not r.shaded.any()


def test_non_finite_and_degenerate_triangles_cover_nothing():
    v = np.array([[1, 1, 0], [9, 1, 0], [1, 9, 0], [np.nan, 2, 0], [5, 5, np.inf], [2, 2, 0], [4, 4, 0], [6, 6, 0]], float)
    f = np.array([[0, 1, 3], [0, 1, 4], [5, 6, 7]])  # NaN x, infinite z, collinear
    r = rasterize(v, f, 12, 12)
    assert not r.mask.any()
    r = rasterize(v, np.array([[0, 1, 2]] + f.tolist()), 12, 12)
    assert r.mask.any() and set(np.unique(r.face_index)) == {-1, 0}
