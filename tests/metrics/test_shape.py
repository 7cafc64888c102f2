"""Shape preservation scores on frames the synthetic renderer draws at known poses."""
import numpy as np
import pytest

from lfdm.data.synthetic_render import Subject, background, render_frame
from lfdm.metrics.shape import compare_shapes, object_mask, video_shape

SIZE = 64


def frame(subject: Subject, centre=(32.0, 32.0), radius=14.0, angle=0.0, seed=0) -> np.ndarray:
    bg = background(SIZE, np.random.default_rng(seed))
    return (render_frame(subject, bg, np.array(centre), radius, angle) * 255).round().astype(np.uint8)


@pytest.mark.parametrize("index", range(8))                 # every shape, colours and texture of the dataset
def test_the_object_mask_is_the_rendered_shape_on_its_background(index):
    subject = Subject.make(index)
    bg = background(SIZE, np.random.default_rng(index))
    empty = (bg * 255).round().astype(np.uint8)
    assert not object_mask(empty).any()                       # the grey background is never the object
    img = frame(subject, seed=index)
    truth = np.abs(img.astype(int) - empty.astype(int)).max(-1) > 20
    iou = (object_mask(img) & truth).sum() / (object_mask(img) | truth).sum()
    assert iou > 0.85, (subject.shape, iou)


@pytest.mark.parametrize("index", range(8))
def test_a_moved_scaled_turned_object_keeps_its_shape_and_drifts_by_its_scale(index):
    subject = Subject.make(index)
    source = object_mask(frame(subject))
    moved = object_mask(frame(subject, centre=(22.0, 40.0), radius=11.0, angle=1.2))
    score = compare_shapes(source, moved)
    assert score["shape_iou"] > 0.8, (subject.shape, score)
    assert abs(score["area_drift"] - abs(np.log((11 / 14) ** 2))) < 0.12


def test_blobs_ghosts_and_vanishing_objects_score_low():
    subject = Subject.make(4)                                # the cross
    assert subject.shape == "cross"
    source = object_mask(frame(subject))
    yy, xx = np.mgrid[:SIZE, :SIZE]
    blob = (yy - 32) ** 2 + (xx - 32) ** 2 <= source.sum() / np.pi      # a disc of the same area
    assert compare_shapes(source, blob)["shape_iou"] < 0.75
    ghost = source | object_mask(frame(subject, centre=(32.0, 52.0)))   # the object moved, its start left behind
    assert compare_shapes(source, ghost)["shape_iou"] < 0.6
    assert compare_shapes(source, np.zeros_like(source)) is None
    video = np.stack([frame(subject)] * 3 + [frame(subject, centre=(200.0, 200.0))])   # gone by the end
    result = video_shape(video, video[0], frames=(0.5, 1.0))
    assert result["frames_without_object"] == 1 and result["shape_iou"] == pytest.approx(0.5, abs=0.01)
