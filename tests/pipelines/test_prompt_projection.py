"""Prompt projection (sample.prompt_projection): a prompt's condition replaced by its posterior mean over the
training sentences under stage 2's condition noise; checked in closed form, through the pipeline and a checkpoint,
and never applied to labels."""
import math

import pytest
import torch

from lfdm.config import ConfigError
from lfdm.data.phrasings import phrasings_for
from lfdm.models.autoencoder import LatentFlowAutoencoder
from lfdm.models.prompt_projection import project_prompts, sentence_posterior
from lfdm.models.text import run_conditions
from lfdm.models.unet3d import UNet3D
from lfdm.pipelines.image_to_video import ImageToVideoPipeline
from lfdm.presets import get_preset
from lfdm.runs.prompt_retrieval import prompt_retrieval

LABELS = ["move left", "zoom in", "stay still"]
UNSEEN = ["slide it to the left", "magnify it", "freeze"]


def test_two_sentences_give_the_tanh_posterior_mean():
    """Sentences at +-a e1, equal priors, noise sigma: E[s | x] = a tanh(a x1 / sigma^2) e1 (other axes drop out)."""
    a, sigma = 1.5, 0.8
    sentences = torch.tensor([[a, 0.0, 0.0], [-a, 0.0, 0.0]])
    x = torch.tensor([[0.3, 2.0, -1.0], [-0.7, 0.0, 5.0], [0.0, 1.0, 1.0]])
    expected = torch.zeros_like(x)
    expected[:, 0] = a * torch.tanh(a * x[:, 0] / sigma ** 2)
    torch.testing.assert_close(project_prompts(x, sentences, sigma), expected, atol=1e-6, rtol=0)
    w = sentence_posterior(x, sentences, sigma)
    torch.testing.assert_close(w[:, 0], torch.sigmoid(2 * a * x[:, 0].double() / sigma ** 2), atol=1e-9, rtol=0)


def test_a_sentence_far_from_the_others_projects_onto_itself_and_sigma_must_be_positive():
    sentences = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    out = project_prompts(sentences, sentences, sigma=1.0)
    torch.testing.assert_close(out, sentences, atol=1e-9, rtol=0)      # weights of the others: exp(-50)
    with pytest.raises(ValueError, match="sigma > 0"):
        project_prompts(sentences, sentences, sigma=0.0)


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    cfg = get_preset("tiny", {"text.phrasings": "synthetic", "text.condition_noise": 0.125, "sample.steps": 2})
    conditions = run_conditions(cfg.text, LABELS, cfg.unet.text_dim, phrasings_for("synthetic", LABELS))
    torch.manual_seed(0)
    built = ImageToVideoPipeline(cfg, LatentFlowAutoencoder(cfg.autoencoder), UNet3D(cfg.unet), LABELS,
                                 conditions.label_embeddings, text_map=conditions.text_map,
                                 sentences=(conditions.phrasing_embeddings, conditions.phrasing_classes))
    uri = str(tmp_path_factory.mktemp("projection") / "model")
    built.save(uri)
    return built, conditions, uri


def test_prompts_move_to_the_posterior_mean_under_the_training_noise(pipe):
    built, conditions, _ = pipe
    projecting = built.with_overrides({"sample.prompt_projection": True})
    raw = built.prompt_conditions(UNSEEN)
    torch.testing.assert_close(raw, built.prompt_encoder(UNSEEN))                # off: the map alone
    s, c = conditions.phrasing_embeddings.double(), conditions.phrasing_classes
    means = torch.stack([s[c == k].mean(0) for k in range(3)])
    distance = sum((means[i] - means[j]).norm() for i in range(3) for j in range(i + 1, 3)) / 3
    sigma = 0.125 * float(distance)                                                # text.condition_noise's std
    d2 = ((raw.double()[:, None] - s[None]) ** 2).sum(-1)                        # (3, P)
    w = torch.exp(-(d2 - d2.min(1, keepdim=True).values) / (2 * sigma ** 2))
    expected = (w / w.sum(1, keepdim=True)) @ s
    torch.testing.assert_close(projecting.prompt_conditions(UNSEEN).double(), expected, atol=1e-5, rtol=0)
    assert not torch.allclose(expected.float(), raw, atol=1e-3)


def test_labels_are_untouched_and_a_checkpoint_keeps_the_sentences(pipe):
    built, conditions, uri = pipe
    loaded = ImageToVideoPipeline.load(uri)
    assert torch.equal(loaded.sentences[0], conditions.phrasing_embeddings)
    assert torch.equal(loaded.sentences[1], conditions.phrasing_classes)
    image = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    on = loaded.with_overrides({"sample.prompt_projection": True})
    assert torch.equal(on(image, ["zoom in"], seeds=[4]).frames, loaded(image, ["zoom in"], seeds=[4]).frames)
    by_prompt = on(image, [None], prompts=["magnify it"], seeds=[4])
    assert not torch.allclose(by_prompt.flows, loaded(image, [None], prompts=["magnify it"], seeds=[4]).flows)


def test_checkpoints_without_sentences_re_embed_them_from_the_config(pipe, tmp_path):
    built, conditions, _ = pipe
    old = ImageToVideoPipeline(built.config, built.lfae, built.unet, LABELS, built.text_embeddings,
                               text_map=built.text_map)
    old.save(str(tmp_path / "old"))
    loaded = ImageToVideoPipeline.load(str(tmp_path / "old"))
    assert loaded.sentences is None
    sentences, classes = loaded.training_sentences()
    torch.testing.assert_close(sentences, conditions.phrasing_embeddings, atol=1e-5, rtol=0)
    assert torch.equal(classes, conditions.phrasing_classes)


def test_retrieval_reports_the_posterior_class(pipe):
    built, _, _ = pipe
    found = prompt_retrieval(built, {"move left": ["slide left", "move left"], "stay still": ["hold still"]})
    assert set(found) == {"class_means", "labels", "sentence_posterior"}
    assert found["sentence_posterior"]["accuracy"] == 1.0                          # training sentences themselves
    assert not math.isnan(found["class_means"]["accuracy"])


def test_projection_needs_the_condition_noise_and_is_off_in_the_paper_presets():
    with pytest.raises(ConfigError, match="condition_noise"):
        get_preset("tiny", {"sample.prompt_projection": True})
    for preset in ("mug128", "mhad128", "natops128"):
        assert not get_preset(preset).sample.prompt_projection
    assert get_preset("demo64").sample.prompt_projection


def test_a_model_trained_on_its_labels_alone_projects_onto_them_and_saves(tmp_path):
    cfg = get_preset("tiny", {"text.condition_noise": 0.125, "sample.prompt_projection": True, "sample.steps": 2})
    conditions = run_conditions(cfg.text, LABELS, cfg.unet.text_dim)
    pipe = ImageToVideoPipeline(cfg, LatentFlowAutoencoder(cfg.autoencoder), UNet3D(cfg.unet), LABELS,
                                conditions.label_embeddings, text_map=conditions.text_map,
                                sentences=(conditions.label_embeddings, torch.arange(3)))
    pipe.save(str(tmp_path / "model"))                   # the same tensor twice: stored apart, not refused
    loaded = ImageToVideoPipeline(cfg, pipe.lfae, pipe.unet, LABELS, conditions.label_embeddings,
                                  text_map=conditions.text_map)
    sentences, classes = loaded.training_sentences()
    assert sentences is loaded.text_embeddings and classes.tolist() == [0, 1, 2]
    assert torch.equal(ImageToVideoPipeline.load(str(tmp_path / "model")).sentences[0], conditions.label_embeddings)
