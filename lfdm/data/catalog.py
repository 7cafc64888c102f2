"""Class-label strings and subject splits of the official datasets, exactly as docs/reference.md §6.

The label strings are what the text encoder sees; keep them byte-identical to the official code.
"""
from __future__ import annotations

MUG_CLASSES = ("anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise")
MUG_TRAIN_SUBJECTS = (
    "008", "017", "021", "028", "030", "031", "034", "036", "037", "038", "039", "042", "043",
    "044", "045", "055", "060", "061", "062", "063", "071", "075", "076", "077", "083", "084")
MUG_TEST_SUBJECTS = (
    "001", "002", "006", "007", "010", "013", "014", "020", "027", "032", "033", "040", "046",
    "048", "049", "052", "064", "065", "066", "070", "072", "073", "074", "078", "079", "082")

MHAD_CLASSES = (
    "right arm swipe to the left", "right arm swipe to the right", "right hand wave",
    "two hand front clap", "right arm throw", "cross arms in the chest", "basketball shooting",
    "draw x", "draw circle clockwise", "draw circle counter clockwise", "draw triangle",
    "right hand bowling", "front boxing", "baseball swing from right", "tennis forehand swing",
    "two arms curl", "tennis serve", "two hand push", "knock on door", "hand catch",
    "pick up and throw", "jogging", "walking", "sit to stand", "stand to sit",
    "forward lunge (left foot forward)", "squat")
MHAD_TRAIN_SUBJECTS = ("1", "2", "3", "5")
MHAD_TEST_SUBJECTS = ("4", "6", "7", "8")
MHAD_CROP = (0, 480, 156, 492)          # rows 0:480, cols 156:492 of the 640x480 frames

NATOPS_CLASSES = (
    "I Have Command", "All Clear", "Not Clear", "Spread Wings", "Fold Wings", "Lock Wings",
    "Up Hook", "Down Hook", "Remove Tiedowns", "Remove Chocks", "Insert Chocks", "Move Ahead",
    "Turn Left", "Turn Right", "Next Marshaller", "Slow Down", "Stop", "Nosegear Steering",
    "Hot Brakes", "Brakes On", "Brakes Off", "Install Tiedowns", "Fire", "Cut Engine")
NATOPS_TRAIN_SUBJECTS = ("3", "4", "8", "9", "12", "13", "15", "17", "19", "20")
NATOPS_TEST_SUBJECTS = ("2", "5", "6", "7", "10", "11", "14", "16", "18")   # subject 1 is dropped
NATOPS_CROP = (10, 239, 30, 290)        # [y0:y1, x0:x1]
NATOPS_FPS = 20.0


def split_of(subject: str, train: tuple, test: tuple) -> str | None:
    if subject in train:
        return "train"
    if subject in test:
        return "test"
    return None


CLASSES_BY_DATASET = {"mug": MUG_CLASSES, "mhad": MHAD_CLASSES, "natops": NATOPS_CLASSES}


def classes_for_preset(preset: str) -> tuple:
    """Label strings of the dataset a paper preset (mug128, natops64, ...) was trained on."""
    for name, classes in CLASSES_BY_DATASET.items():
        if preset.startswith(name):
            return classes
    raise ValueError(f"preset {preset!r} is not one of the paper datasets' presets (mug*, mhad*, natops*)")
