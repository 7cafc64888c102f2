import os

import numpy as np
import pytest

from lfdm.data.readers import index_dataset
from lfdm.io.video import VideoError, probe, read_frames, write_video
from tests.data.layouts import gray_frames


@pytest.fixture()
def video(tmp_path):
    path = str(tmp_path / "clip.mp4")
    write_video(path, gray_frames(20, 32, 32), fps=10)
    return path


def test_roundtrip_and_lazy_indices(video):
    info = probe(video)
    assert (info.num_frames, info.height, info.width) == (20, 32, 32)
    assert info.fps == pytest.approx(10)
    frames = read_frames(video, [3, 3, 0, 7])
    np.testing.assert_allclose(frames[:, 5, 5, 0], [24, 24, 0, 56], atol=4)


def test_missing_video_names_the_file(tmp_path):
    path = str(tmp_path / "nope.mp4")
    with pytest.raises(VideoError, match="nope.mp4"):
        read_frames(path, [0])


def test_undecodable_video_names_the_file(tmp_path):
    path = tmp_path / "garbage.avi"
    path.write_bytes(os.urandom(4096))
    with pytest.raises(VideoError, match="garbage.avi"):
        read_frames(str(path))


def test_truncated_video_names_the_file(tmp_path):
    for suffix in ("avi", "mp4"):
        path = tmp_path / f"cut.{suffix}"
        write_video(str(path), np.random.default_rng(0).integers(0, 255, (30, 64, 64, 3), dtype=np.uint8))
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        with pytest.raises(VideoError, match=f"cut.{suffix}"):
            read_frames(str(path))


def test_too_short_for_requested_frame(video):
    with pytest.raises(VideoError, match="clip.mp4"):
        read_frames(video, [25])


def test_bad_video_in_a_user_manifest_fails_at_index_time(tmp_path, video):
    (tmp_path / "bad.mp4").write_bytes(b"\x00" * 100)
    (tmp_path / "m.csv").write_text(f"uri,label,subject,split\n{video},a,s1,train\nbad.mp4,b,s1,test\n")
    with pytest.raises(VideoError, match="bad.mp4"):
        index_dataset("manifest", str(tmp_path / "m.csv"), progress=False)
