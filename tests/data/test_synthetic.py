import numpy as np

from lfdm.data.motion_classifier import UNKNOWN, classify, estimate_motion
from lfdm.data.sampling import clip_indices
from lfdm.data.synthetic import CLASSES, SyntheticSpec, write_synthetic_dataset
from lfdm.io.video import read_frames
from lfdm.metrics.accuracy import per_class_accuracy


def test_synthetic_dataset_layout_and_determinism(tmp_path, synthetic_dataset):
    root, manifest = synthetic_dataset
    assert len(manifest) == 4 * len(CLASSES)
    assert {r.split for r in manifest.records if r.subject == "s03"} == {"test"}
    assert manifest.classes == list(CLASSES)
    again = write_synthetic_dataset(str(tmp_path), SyntheticSpec(num_subjects=4, test_subjects=1,
                                                                 videos_per_class=1), progress=False)
    a = read_frames(manifest.records[5].uri)
    b = read_frames(again.records[5].uri)
    assert np.array_equal(a, b)


def test_motion_classifier_is_accurate_on_real_synthetic_videos(tmp_path):
    manifest = write_synthetic_dataset(str(tmp_path), SyntheticSpec(num_subjects=6, test_subjects=2,
                                                                    videos_per_class=2, seed=7),
                                       progress=False)
    predicted = [classify(read_frames(r.uri)) for r in manifest.records]
    result = per_class_accuracy(predicted, [r.label for r in manifest.records], CLASSES)
    assert result["n"] == 6 * 2 * len(CLASSES)
    assert result["accuracy"] >= 0.95, result


def test_motion_classifier_on_subsampled_clips_and_other_sizes(tmp_path):
    manifest = write_synthetic_dataset(str(tmp_path), SyntheticSpec(num_subjects=3, test_subjects=1,
                                                                    videos_per_class=1, image_size=96,
                                                                    num_frames=30, seed=3), progress=False)
    rng = np.random.default_rng(0)
    predicted = [classify(read_frames(r.uri, clip_indices(r.num_frames, 16, "random", rng)))
                 for r in manifest.records]
    assert per_class_accuracy(predicted, [r.label for r in manifest.records], CLASSES)["accuracy"] >= 0.95


def test_motion_classifier_reports_a_vanished_subject():
    gray = np.full((8, 32, 32, 3), 120, np.uint8)
    assert classify(gray) == UNKNOWN
    assert estimate_motion(gray).label_text == "unknown"
