"""Imported official checkpoints compute what the official code computes (max abs diff <= 1e-4, fp32, CPU).

Seeded official-layout checkpoints (tests/official_parity.py) are written as .pth files, imported with
`lfdm convert official` (offline, with a label-embedding file), loaded through the public API and run on the
seeded inputs; the official code's outputs for the same checkpoints and inputs are the committed fixture
(tests/fixtures/official_parity, made by make_official_outputs.py from the official repository at 3601635).
"""
from __future__ import annotations

import os

import pytest
import torch
from safetensors.torch import load_file

from lfdm import label_embeddings
from lfdm.checkpoint import load_lfae
from lfdm.cli import main as cli
from lfdm.data.catalog import classes_for_preset
from lfdm.pipelines.image_to_video import ImageToVideoPipeline
from tests import official_parity as P

TOLERANCE = 1e-4
OFFICIAL = load_file(os.path.join(P.OUTPUTS, "official_outputs.safetensors"))


def assert_close(ours: torch.Tensor, key: str) -> None:
    expected = OFFICIAL[key]
    assert ours.shape == expected.shape, (key, ours.shape, expected.shape)
    diff = float((ours.float() - expected).abs().max())
    assert diff <= TOLERANCE, f"{key}: max abs diff {diff:.3g}"


def import_official(tmp_path, preset: str, with_dm: bool) -> str:
    lfae = str(tmp_path / "lfae.pth")
    torch.save(P.seeded_state("lfae_mug128_detail.json"), lfae)
    args = ["convert", "official", "--lfae", lfae, "--preset", preset, "--out", str(tmp_path / "imported")]
    if with_dm:
        dm = str(tmp_path / "dm.pth")
        torch.save(P.seeded_state(P.UNET_CASES[preset]), dm)
        labels = list(classes_for_preset(preset))
        embeddings = str(tmp_path / "labels.safetensors")          # as `lfdm text embed` writes it, offline here
        label_embeddings.write(embeddings, label_embeddings.LabelEmbeddings(
            labels, torch.randn(len(labels), 768, generator=torch.Generator().manual_seed(9)), "test"))
        args += ["--dm", dm, "--text-embeddings", embeddings]
    assert cli(args) == 0
    return str(tmp_path / "imported")


@pytest.mark.parametrize("preset", list(P.UNET_CASES))
def test_imported_unet_computes_the_official_function(tmp_path, preset):
    """Both variants (MUG: zero null, transposed-conv upsampling; NATOPS: learned null, nearest upsampling),
    three timesteps, conditional and null rows in one batch."""
    pipe = ImageToVideoPipeline.load(import_official(tmp_path, preset, with_dm=True))
    x = P.unet_inputs()
    with torch.no_grad():
        out = pipe.unet.forward_concat(x["x"], x["t"], text=x["cond"], z0=x["z0"], use_null=x["null"])
        fast = pipe.unet(x["x"], x["t"], text=x["cond"], z0_features=pipe.unet.encode_condition(x["z0"]),
                         use_null=x["null"])
    assert_close(out, f"unet.{preset}")
    assert_close(fast, f"unet.{preset}")                              # the z0-once form is the same function


def test_imported_autoencoder_computes_every_official_stage1_output(tmp_path):
    model, _ = load_lfae(import_official(tmp_path, "mug128", with_dm=False))
    x = P.lfae_inputs()
    src, drv = x["source"], x["driving"]
    with torch.no_grad():
        regions = {"source": model.region_predictor(src), "driving": model.region_predictor(drv)}
        bg = model.bg_predictor(src, drv)
        out = model(src, drv)
        features = model.encode(src)[-1]
    for which, params in regions.items():
        for key in ("shift", "covar", "affine", "heatmap"):
            assert_close(params[key], f"lfae.{which}.{key}")
    assert_close(bg, "lfae.bg_params")
    assert_close(out["flow"], "lfae.optical_flow")
    assert_close(out["occlusion"], "lfae.occlusion_map")
    assert_close(out["prediction"], "lfae.prediction")
    assert_close(P.project(features), "lfae.encoder_projected")


def test_import_offline_needs_embeddings_and_says_how(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    lfae, dm = str(tmp_path / "lfae.pth"), str(tmp_path / "dm.pth")
    torch.save(P.seeded_state("lfae_mug128_detail.json"), lfae)
    torch.save(P.seeded_state("dm_mug128.json"), dm)
    args = ["convert", "official", "--lfae", lfae, "--dm", dm, "--preset", "mug128", "--out", str(tmp_path / "x")]
    assert cli(args + ["--text-encoder", str(tmp_path / "no-such-bert")]) == 2
    err = capsys.readouterr().err
    assert "lfdm text embed --preset mug128" in err and "--text-embeddings" in err
    wrong = str(tmp_path / "wrong.safetensors")
    label_embeddings.write(wrong, label_embeddings.LabelEmbeddings(["a", "b"], torch.zeros(2, 768), "test"))
    assert cli(args + ["--text-embeddings", wrong]) == 2
    assert "not the model's" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "x" / "config.json")                       # nothing half-written


def test_text_embed_writes_a_file_that_convert_reads(tmp_path):
    out = str(tmp_path / "natops_labels.safetensors")
    assert cli(["text", "embed", "--preset", "natops128", "--encoder", "minilm", "--override", "unet.text_dim=384",
                "--out", out]) == 0
    loaded = label_embeddings.read(out)
    assert loaded.labels == list(classes_for_preset("natops128")) and loaded.encoder == "minilm"
    from lfdm.models.text import embed_labels
    torch.testing.assert_close(loaded.embeddings, embed_labels(loaded.labels, "minilm"))
    with pytest.raises(label_embeddings.LabelEmbeddingsError, match=r"\(24, 768\)"):
        loaded.check(loaded.labels, 768, out)


def test_an_imported_official_model_generates_a_video(tmp_path):
    pipe = ImageToVideoPipeline.load(import_official(tmp_path, "mug128", with_dm=True))
    assert pipe.config.autoencoder.region.pca == "lapack" and not pipe.config.autoencoder.align_corners
    image = P.lfae_inputs()["source"][:1]
    out = pipe(image, ["happiness"], seeds=[0], sampler="ddim", steps=2, num_frames=4)
    assert out.frames.shape == (1, 3, 4, 128, 128) and out.flows.shape == (1, 4, 32, 32, 2)
    assert torch.isfinite(out.frames).all() and 0 <= float(out.frames.min()) and float(out.frames.max()) <= 1
    again = pipe(image, ["happiness"], seeds=[0], sampler="ddim", steps=2, num_frames=4)
    assert torch.equal(out.frames, again.frames)
