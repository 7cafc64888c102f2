"""Builders of tiny datasets laid out exactly like the official MUG, UTD-MHAD and NATOPS releases."""
from __future__ import annotations

import os

import numpy as np

from lfdm.io.video import write_frame_folder, write_video


def gray_frames(n: int, h: int, w: int, start: int = 0) -> np.ndarray:
    """Frame i is uniformly gray at level 8*(start+i): its index survives lossy codecs."""
    levels = (8 * (start + np.arange(n))) % 256
    return np.broadcast_to(levels[:, None, None, None], (n, h, w, 3)).astype(np.uint8).copy()


def make_mug(root: str) -> dict:
    """ROOT/<subject>/[sessionN/]<expression>/<take>/img_XXXX.jpg; 003 has sessions but is in no split."""
    layout = {
        ("001", None, "anger", "take000"): 5,       # test
        ("002", "session0", "happiness", "take000"): 6,   # test, session subject
        ("002", "session1", "happiness", "take000"): 7,   # same take name in the other session
        ("002", "session1", "surprise", "take003"): 4,
        ("008", None, "fear", "take001"): 5,        # train
        ("008", None, "fear", "take002"): 3,
        ("003", "session0", "anger", "take000"): 3,  # outside the official split
    }
    for (subject, session, expression, take), n in layout.items():
        parts = [root, subject] + ([session] if session else []) + [expression, take]
        write_frame_folder(os.path.join(*parts), gray_frames(n, 24, 32), pattern="img_{:04d}.jpg")
    os.makedirs(os.path.join(root, "008", "fear", "empty_take"))   # a folder without frames is no video
    return layout


def make_mhad(root: str) -> None:
    """ROOT/RGB/a{a}_s{s}_t{t}_color.avi at 640x480; pixels outside the crop are pure red."""
    frames = np.zeros((6, 480, 640, 3), np.uint8)
    frames[..., 0] = 255                                   # red everywhere ...
    frames[:, 0:480, 156:492] = (0, 0, 255)                # ... but blue inside the official crop
    for a, s, t in [(1, 1, 1), (3, 4, 2), (27, 8, 1), (5, 2, 4)]:
        write_video(os.path.join(root, "RGB", f"a{a}_s{s}_t{t}_color.avi"), frames, fps=30)


NATOPS_SEGMENTATION = """// Segmentation of the NATOPS aircraft handling signals (frame numbers are 1-based)
// Subject 1
1,1,2
1:2,5
2:6,9
2,1,2
1:1,4
2:5,8
// Subject 3
1,3,2
1:3,7
2:8,12
2,3,2
1:1,6
2:7,12
// Subject 5
1,5,2
1:2,6
2:9,12
2,5,2
1:1,3
2:4,12
"""


def make_natops(root: str) -> None:
    """ROOT/gestureXX/gXXsYY.avi at 320x240, 20 fps, with segmentation.txt at ROOT."""
    for g in (1, 2):
        for s in (1, 3, 5):
            write_video(os.path.join(root, f"gesture{g:02d}", f"g{g:02d}s{s:02d}.avi"),
                        gray_frames(12, 240, 320), fps=20)
    with open(os.path.join(root, "segmentation.txt"), "w") as f:
        f.write(NATOPS_SEGMENTATION)
