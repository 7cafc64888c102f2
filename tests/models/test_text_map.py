"""The fitted text map: closed-form properties of the class whitening, and its round trip through a checkpoint."""
import torch

from lfdm.models.text import whiten_label_embeddings
from lfdm.models.text_map import TextMap


def sentences(n_classes=4, per_class=5, dim=32, spread=0.3, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(n_classes, dim, generator=g) + 2.0                     # a shared offset, like real ones
    classes = torch.arange(n_classes).repeat_interleave(per_class)
    return centres[classes] + spread * torch.randn(len(classes), dim, generator=g), classes


def test_class_means_map_to_equidistant_points_around_the_null_embedding():
    e, classes = sentences()
    text_map = TextMap.fit(e, classes)
    means = torch.stack([text_map(e[classes == c]).mean(0) for c in range(4)]).double()
    gram = means @ means.T
    n = 4
    expected = (torch.eye(n, dtype=torch.float64) - 1.0 / n) * gram.diagonal().mean() / (1 - 1.0 / n)
    torch.testing.assert_close(gram, expected, atol=1e-3, rtol=1e-3)                # every pair equally distinct
    torch.testing.assert_close(means.sum(0), torch.zeros(32, dtype=torch.float64), atol=1e-4, rtol=0)
    raw_means = torch.stack([e[classes == c].mean(0) for c in range(n)])
    torch.testing.assert_close(means.norm(dim=1).mean().float(), raw_means.norm(dim=1).mean(), rtol=1e-4, atol=0)


def test_one_sentence_per_class_is_the_label_set_whitening():
    labels = torch.randn(5, 384, generator=torch.Generator().manual_seed(0)) + 3.0
    u, s, vh = torch.linalg.svd(labels.double() - labels.double().mean(0), full_matrices=False)
    white = u[:, :4] @ vh[:4]                                  # U V^T: the whitening written out
    white = white * labels.double().norm(dim=1).mean() / white.norm(dim=1).mean()
    torch.testing.assert_close(whiten_label_embeddings(labels).double(), white, atol=1e-5, rtol=0)
    torch.testing.assert_close(whiten_label_embeddings(labels[:1]), labels[:1])     # one label: unchanged


def test_the_map_is_affine_and_survives_a_checkpoint_round_trip():
    e, classes = sentences()
    text_map = TextMap.fit(e, classes)
    x, y = e[:3], e[5:8]
    torch.testing.assert_close(text_map(0.25 * x + 0.75 * y), 0.25 * text_map(x) + 0.75 * text_map(y),
                               atol=1e-5, rtol=0)
    again = TextMap.from_tensors({k: v.clone() for k, v in text_map.tensors().items()})
    assert torch.equal(again(e), text_map(e))
    assert TextMap.from_tensors({"text.embeddings": e}) is None


def test_the_ridge_shrinks_directions_along_which_one_class_varies():
    """Sentences of every class spread along one shared direction: a prompt that moves along it (another wording)
    moves far less in the condition space than with no ridge, while the classes stay apart."""
    g = torch.Generator().manual_seed(1)
    e, classes = sentences(spread=0.01)
    wording = torch.randn(32, generator=g)
    e = e + torch.randn(len(e), 1, generator=g) * wording                        # the within-class direction
    ridge, plain = TextMap.fit(e, classes, shrinkage=3.0), TextMap.fit(e, classes, shrinkage=1e6)
    step = lambda m: float((m(e[:1] + wording) - m(e[:1])).norm())               # noqa: E731
    between = lambda m: float((m(e[classes == 0]).mean(0) - m(e[classes == 1]).mean(0)).norm())  # noqa: E731
    assert step(ridge) / between(ridge) < 0.3 * step(plain) / between(plain)         # measured 0.20
