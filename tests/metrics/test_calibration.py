"""Calibrated FVD / KVD on Gaussian features with known order, and the robust flow colour scale."""
import numpy as np
import pytest

from lfdm.io.flow_vis import grid_flow_to_color, robust_flow_scale
from lfdm.metrics.calibration import calibrate, ratio
from lfdm.metrics.fvd import fvd_kvd
from lfdm.metrics.summary import calibration_rows, markdown


def test_ratio_places_the_model_between_the_references():
    assert ratio(5.0, 2.0, 8.0) == pytest.approx(0.5)
    assert ratio(2.0, 2.0, 8.0) == 0.0 and ratio(8.0, 2.0, 8.0) == 1.0
    assert ratio(1.0, 2.0, 8.0) < 0                      # closer than other real video: allowed, not clipped
    assert ratio(3.0, 4.0, 4.0) is None                   # references not separated: no scale


def test_calibration_orders_real_model_and_static_features():
    rng = np.random.default_rng(0)
    dim, n = 8, 400
    real, other_real = rng.normal(size=(n, dim)), rng.normal(size=(n, dim))
    model = rng.normal(size=(n, dim)) * 1.2 + 0.3                         # near real, not equal
    static = rng.normal(size=(n, dim)) * 0.2 + 2.0                        # far: little spread, shifted
    result = {**fvd_kvd(real, model), "fvd_interval": None}
    cal = calibrate(real, result, {"real_vs_real": other_real, "static": static})
    assert cal["real_vs_real"]["fvd"] < result["fvd"] < cal["static"]["fvd"]
    assert cal["real_vs_real"]["kvd"] < result["kvd"] < cal["static"]["kvd"]
    assert 0 < cal["fvd_ratio"] < 1 and 0 < cal["kvd_ratio"] < 1
    expected = (result["kvd"] - cal["real_vs_real"]["kvd"]) / (cal["static"]["kvd"] - cal["real_vs_real"]["kvd"])
    assert cal["kvd_ratio"] == pytest.approx(expected)
    assert cal["static"]["n_gen"] == n and cal["real_vs_real"]["n_real"] == n
    rows = calibration_rows({**result, "calibration": cal})
    assert [r[0] for r in rows][:3] == ["model (generated)", "real vs real (other real clips)",
                                        "static (source frame repeated)"]
    assert rows[-1][2] == f"{cal['kvd_ratio']:.2f}"


def test_results_markdown_carries_the_calibrated_table_and_how_to_read_it():
    rng = np.random.default_rng(1)
    real = rng.normal(size=(50, 4))
    result = {**fvd_kvd(real, real + 0.5), "fvd_interval": None, "sfvd_mean": 1.0, "sfvd_std": 0.0,
              "excluded": {"counts": {"real_corrupt": 0, "generated_corrupt": 0, "generated_missing": 0}}}
    result["calibration"] = calibrate(real, result, {"real_vs_real": real + 0.1, "static": real + 3})
    text = markdown(result)
    assert "| calibrated | FVD | KVD | n_real | n |" in text and "still image" in text


def test_robust_flow_scale_ignores_a_stray_vector():
    size = 16
    xs = np.linspace(-1, 1, size)
    identity = np.stack(np.meshgrid(xs, xs), -1)[None].repeat(4, 0)       # (K, h, w, 2)
    flows = identity.copy()
    flows[:, 4:8, 4:8, 0] += 3 * 2 / (size - 1)                           # an object moving 3 flow pixels
    flows[0, 0, 0] += 40 * 2 / (size - 1)                                 # one vector at a border, 40 pixels
    scale = robust_flow_scale(flows)
    assert 2.5 < scale < 3.5
    object_colour = grid_flow_to_color(flows, max_radius=scale)[1, 5, 5].astype(int)
    naive_colour = grid_flow_to_color(flows)[1, 5, 5].astype(int)           # scaled by the stray vector
    assert object_colour.min() < 40 and naive_colour.min() > 200            # saturated vs nearly white
