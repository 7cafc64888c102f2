import os

import numpy as np
import pytest

from lfdm.data.catalog import MHAD_CLASSES, MUG_CLASSES, NATOPS_CLASSES
from lfdm.data.datasets import load_frames
from lfdm.data.manifest import Manifest, ManifestError, read_manifest, write_manifest
from lfdm.data.readers import LayoutError, index_dataset
from lfdm.data.readers.natops import parse_segmentation
from tests.data.layouts import NATOPS_SEGMENTATION, make_mhad, make_mug, make_natops


def test_mug_sessions_indexed_once_each_and_split(tmp_path):
    make_mug(str(tmp_path))
    m = index_dataset("mug", str(tmp_path), progress=False)
    ids = sorted(r.video_id for r in m.records)
    assert ids == sorted(["001_anger_take000", "002_session0_happiness_take000",
                          "002_session1_happiness_take000", "002_session1_surprise_take003",
                          "008_fear_take001", "008_fear_take002"])
    assert len(set(ids)) == len(ids)                       # the official loader listed session0 twice
    by_id = m.by_id()
    assert by_id["002_session1_happiness_take000"].num_frames == 7
    assert by_id["002_session1_happiness_take000"].split == "test"
    assert by_id["008_fear_take001"].split == "train"
    assert by_id["008_fear_take001"].label_text == "fear" and by_id["008_fear_take001"].label == 2
    assert m.classes == list(MUG_CLASSES)
    assert not any(r.subject == "003" for r in m.records)  # not in the official split


def test_mhad_crop_split_and_labels(tmp_path):
    make_mhad(str(tmp_path))
    m = index_dataset("mhad", str(tmp_path), progress=False)
    by_id = m.by_id()
    assert set(by_id) == {"a1_s1_t1", "a3_s4_t2", "a27_s8_t1", "a5_s2_t4"}
    assert by_id["a1_s1_t1"].split == "train" and by_id["a3_s4_t2"].split == "test"
    assert by_id["a27_s8_t1"].label_text == "squat" == MHAD_CLASSES[26]
    assert by_id["a3_s4_t2"].label_text == "right hand wave"
    assert by_id["a1_s1_t1"].crop == (0, 480, 156, 492)
    frames = load_frames(by_id["a1_s1_t1"], [0, 5], 32).numpy()       # (2, 3, 32, 32)
    content = frames[:, :, :, 6:26]                                     # 480x336 -> 32x22 letterboxed
    assert content[:, 2].mean() > 0.9 and content[:, 0].max() < 0.2     # blue only, red cropped away
    assert frames[:, :, :, :4].max() < 0.05                             # black letterbox bars


def test_natops_segmentation_cuts_repetitions(tmp_path):
    make_natops(str(tmp_path))
    m = index_dataset("natops", str(tmp_path), progress=False)
    by_id = m.by_id()
    assert set(by_id) == {"g01s03p01", "g01s03p02", "g02s03p01", "g02s03p02",
                          "g01s05p01", "g01s05p02", "g02s05p01", "g02s05p02"}   # subject 1 dropped
    rep = by_id["g01s03p02"]
    assert (rep.frame_start, rep.num_frames, rep.split) == (7, 5, "train")
    assert by_id["g02s05p02"].split == "test" and by_id["g02s05p02"].num_frames == 9
    assert rep.label_text == "I Have Command" and by_id["g02s05p01"].label_text == NATOPS_CLASSES[1]
    assert rep.crop == (10, 239, 30, 290) and rep.fps == pytest.approx(20.0)
    levels = (load_frames(rep, [0, 4], 32)[:, :, 16, 16].mean(1) * 255).numpy()
    np.testing.assert_allclose(levels, [8 * 7, 8 * 11], atol=6)          # file frames 8 and 12 (1-based)


def test_natops_segmentation_parser(tmp_path):
    path = tmp_path / "segmentation.txt"
    path.write_text(NATOPS_SEGMENTATION)
    seg = parse_segmentation(str(path))
    assert seg[3][1] == [(3, 7), (8, 12)] and seg[5][2] == [(1, 3), (4, 12)]


def test_generic_manifest_csv(tmp_path, synthetic_dataset):
    _, synth = synthetic_dataset
    rows = ["uri,label,subject,split"] + [f"{r.uri},{r.label_text},{r.subject},{r.split}" for r in synth.records[:5]]
    (tmp_path / "my.csv").write_text("\n".join(rows) + "\n")
    m = index_dataset("manifest", str(tmp_path / "my.csv"), progress=False)
    assert len(m) == 5 and all(r.num_frames == 24 for r in m.records)
    write_manifest(m, str(tmp_path / "out.parquet"))
    again = read_manifest(str(tmp_path / "out.parquet"))
    assert again.records == m.records and again.classes == m.classes


def test_unknown_layout_and_empty_dataset(tmp_path):
    (tmp_path / "random_dir").mkdir()
    with pytest.raises(LayoutError, match="no MUG videos"):
        index_dataset("mug", str(tmp_path), progress=False)
    with pytest.raises(LayoutError, match="no UTD-MHAD videos"):
        index_dataset("mhad", str(tmp_path), progress=False)
    with pytest.raises(LayoutError, match="no NATOPS videos"):
        index_dataset("natops", str(tmp_path), progress=False)
    with pytest.raises(LayoutError, match="unknown dataset"):
        index_dataset("kinetics", str(tmp_path), progress=False)
    with pytest.raises(ManifestError, match="empty"):
        write_manifest(Manifest([], ["a"]), str(tmp_path / "m.parquet"))
    with pytest.raises(ManifestError, match="not found"):
        read_manifest(str(tmp_path / "nothing.parquet"))


def test_natops_missing_segmentation_is_named(tmp_path):
    make_natops(str(tmp_path))
    os.remove(tmp_path / "segmentation.txt")
    with pytest.raises(LayoutError, match="segmentation"):
        index_dataset("natops", str(tmp_path), progress=False)
