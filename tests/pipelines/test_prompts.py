"""Free-text prompts: the run's map applied identically in training, the pipeline, a checkpoint, the CLI and a
generation run; labels untouched by it."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from lfdm.cli import main as cli
from lfdm.data.phrasings import phrasings_for
from lfdm.models.autoencoder import LatentFlowAutoencoder
from lfdm.models.text import run_conditions
from lfdm.models.unet3d import UNet3D
from lfdm.pipelines.image_to_video import ImageToVideoPipeline
from lfdm.presets import get_preset

LABELS = ["move left", "zoom in", "stay still"]
UNSEEN = "slide it to the left"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny model whose conditions come from the synthetic phrasings, saved as a checkpoint."""
    cfg = get_preset("tiny", {"text.phrasings": "synthetic", "sample.steps": 2})
    conditions = run_conditions(cfg.text, LABELS, cfg.unet.text_dim, phrasings_for("synthetic", LABELS))
    torch.manual_seed(0)
    pipe = ImageToVideoPipeline(cfg, LatentFlowAutoencoder(cfg.autoencoder), UNet3D(cfg.unet), LABELS,
                                conditions.label_embeddings, text_map=conditions.text_map)
    uri = str(tmp_path_factory.mktemp("prompts") / "model")
    pipe.save(uri)
    return pipe, conditions, uri


def test_training_sentences_get_their_training_condition_after_a_checkpoint_round_trip(trained):
    pipe, conditions, uri = trained
    loaded = ImageToVideoPipeline.load(uri)
    sentences = ["slide left", "enlarge", "hold still"]
    table = phrasings_for("synthetic", LABELS)
    rows = {s: i for i, s in enumerate(s for label in LABELS for s in table[label])}
    index = [rows[s] for s in sentences]
    torch.testing.assert_close(loaded.prompt_encoder(sentences), conditions.phrasing_embeddings[index],
                               atol=1e-5, rtol=0)
    assert torch.equal(loaded.prompt_encoder([UNSEEN]), pipe.prompt_encoder([UNSEEN]))
    assert conditions.phrasing_classes[index].tolist() == [0, 1, 2]


def test_a_prompt_equal_to_a_label_gives_the_labels_video_and_labels_never_load_the_encoder(trained):
    _, _, uri = trained
    pipe = ImageToVideoPipeline.load(uri)
    image = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    by_label = pipe(image, ["zoom in"], seeds=[5])
    assert pipe._prompt_encoder is None                                     # the label path never needs it
    assert torch.equal(pipe(image, ["zoom in"], prompts=[None], seeds=[5]).frames, by_label.frames)
    by_prompt = pipe(image, [None], prompts=["  zoom in "], seeds=[5])
    torch.testing.assert_close(by_prompt.flows, by_label.flows, atol=1e-4, rtol=0)
    other = pipe(image, [None], prompts=[UNSEEN], seeds=[5])
    assert not torch.allclose(other.flows, by_label.flows)
    with pytest.raises(ValueError, match="not both"):
        pipe(image, ["zoom in"], prompts=["zoom in"], seeds=[5])
    with pytest.raises(ValueError, match="prompt is empty"):
        pipe(image, [None], prompts=["   "], seeds=[5])
    with pytest.raises(ValueError, match="at most 200"):
        pipe(image, [None], prompts=["move " * 60], seeds=[5])


def test_checkpoints_without_a_stored_map_refit_it_on_their_labels(tmp_path):
    cfg = get_preset("tiny")
    conditions = run_conditions(cfg.text, LABELS, cfg.unet.text_dim)          # labels only, whitened
    ImageToVideoPipeline(cfg, LatentFlowAutoencoder(cfg.autoencoder), UNet3D(cfg.unet), LABELS,
                         conditions.label_embeddings).save(str(tmp_path / "old"))  # no text.map.* tensors
    pipe = ImageToVideoPipeline.load(str(tmp_path / "old"))
    assert pipe.text_map is None
    torch.testing.assert_close(pipe.prompt_encoder(LABELS), conditions.label_embeddings, atol=1e-5, rtol=0)


def test_retrieval_of_the_labels_themselves(trained):
    from lfdm.runs.prompt_retrieval import prompt_retrieval
    result = prompt_retrieval(trained[0], {label: [label] for label in LABELS})
    assert result["labels"]["accuracy"] == 1.0 and set(result["class_means"]["per_class"]) == set(LABELS)


def test_generate_cli_with_a_prompt(trained, tmp_path, capsys):
    _, _, uri = trained
    image = tmp_path / "in.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(image)
    out = tmp_path / "out.npz"
    assert cli(["generate", "--checkpoint", uri, "--image", str(image), "--prompt", UNSEEN, "--out", str(out)]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["prompt"] == UNSEEN and result["prompt_projection"] is False
    assert np.load(out)["frames"].shape == (10, 32, 32, 3)
    assert cli(["generate", "--checkpoint", uri, "--image", str(image), "--prompt", " ", "--out", str(out)]) == 2
    assert "--prompt: the prompt is empty" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli(["generate", "--checkpoint", uri, "--image", str(image), "--prompt", UNSEEN, "--label", "zoom in",
             "--out", str(out)])


def test_a_generation_run_from_prompts(trained, tiny_dataset, tmp_path):
    from lfdm.io.pixels import to_uint8
    from lfdm.runs import RunError
    from lfdm.runs.generation import GenerationSettings, generate_local
    from lfdm.data.datasets import load_frames
    from lfdm.data.manifest import read_manifest
    pipe, _, uri = trained
    root, _ = tiny_dataset
    manifest = str(root / "manifest.parquet")
    prompts = {"move left": (UNSEEN,), "zoom in": ("make it larger", "the shape expands")}
    settings = GenerationSettings(checkpoint=uri, num_videos=4, batch_size=1, prompts=prompts, steps=2)
    table = generate_local(str(tmp_path / "run"), manifest, settings, torch.device("cpu"), log=lambda _: None)
    rows = table.to_pylist()
    assert [(r["label"], r["prompt"]) for r in rows] == [("move left", UNSEEN), ("zoom in", "make it larger"),
                                                         ("move left", UNSEEN), ("zoom in", "the shape expands")]
    assert [r["label_index"] for r in rows] == [0, 1, 0, 1]
    record = read_manifest(manifest).by_id()[rows[1]["source_video_id"]]
    direct = pipe(load_frames(record, [0], 32, cache=False), [None], prompts=["make it larger"],
                  seeds=[rows[1]["seed"]], steps=2)
    saved = np.load(tmp_path / "run" / "videos" / f"{rows[1]['video_id']}.npy")
    assert np.array_equal(saved, to_uint8(direct.frames[0].permute(1, 2, 3, 0).numpy()))
    for bad, match in (({"fly away": ("up",)}, "not among the model's labels"), ({"zoom in": (" ",)}, "empty")):
        with pytest.raises(RunError, match=match):
            generate_local(str(tmp_path / "bad"), manifest, GenerationSettings(checkpoint=uri, prompts=bad),
                           torch.device("cpu"), log=lambda _: None)
