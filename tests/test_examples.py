"""The SpeechBrain YAML examples load and run, and the SSAST lobes behind them."""

from pathlib import Path

import pytest
import torch
from hyperpyyaml import load_hyperpyyaml

from ssast_sb.checkpoints import CheckpointError, export_original
from ssast_sb.encoder import EncoderConfig, SSASTEncoder
from ssast_sb.lobes import SSASTEmbedding
from ssast_sb.models import SSASTPretrainModel

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

# SSAST-tiny at a short input keeps the forward passes fast; the structure is the YAML's.
CASES = {
    "ecapa_to_ssast_voxceleb.yaml": {"ssast_size": "tiny", "target_frames": 48},
    "cnn14_to_ssast_esc50.yaml": {"ssast_size": "tiny", "target_frames": 48, "emb_dim": 192},
}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("name", sorted(CASES))
def test_example_yaml_forward(name):
    with open(EXAMPLES / name, encoding="utf-8") as stream:
        hparams = load_hyperpyyaml(stream, CASES[name])
    assert set(hparams["modules"]) >= {
        "compute_features",
        "mean_var_norm",
        "embedding_model",
        "classifier",
    }
    torch.manual_seed(0)
    rate = hparams["sample_rate"]
    wavs = 0.1 * torch.randn(2, rate // 2)
    lens = torch.tensor([1.0, 0.6])

    feats = hparams["compute_features"](wavs, lens)
    feats = hparams["mean_var_norm"](feats, lens)
    embeddings = hparams["embedding_model"](feats, lens)
    outputs = hparams["classifier"](embeddings)

    assert feats.shape == (2, hparams["target_frames"], 128)
    assert embeddings.shape == (2, 1, hparams["emb_dim"])
    assert outputs.shape == (2, 1, hparams["out_n_neurons"])
    # The recipes' AAM-softmax cost trains through the whole chain.
    targets = torch.tensor([[3], [7]])
    loss = hparams["compute_cost"](outputs, targets, lens)
    loss.backward()
    assert torch.isfinite(loss)
    assert hparams["embedding_model"].encoder.patch_embed.proj.weight.grad is not None


def test_embedding_lobe_adapts_an_original_checkpoint(tmp_path):
    config = EncoderConfig(
        embed_dim=64,
        depth=2,
        num_heads=1,
        fshape=128,
        tshape=2,
        fstride=128,
        tstride=2,
        input_tdim=64,
    )
    pretrained = SSASTPretrainModel(SSASTEncoder(config), num_masked=4)
    torch.save(export_original(pretrained), tmp_path / "pretrained.pth")

    lobe = SSASTEmbedding(
        target_frames=40,
        fstride=128,
        tstride=1,
        pooling="cls",
        pretrained_path=str(tmp_path / "pretrained.pth"),
    )

    assert lobe.encoder.grid == (1, 39) and lobe.output_size == 64
    source, adapted = pretrained.encoder.state_dict(), lobe.encoder.state_dict()
    for key in ("patch_embed.proj.weight", "blocks.1.mlp.fc2.weight", "norm.bias"):
        assert torch.equal(source[key], adapted[key])
    assert lobe(torch.randn(3, 40, 128)).shape == (3, 1, 64)

    # A size the checkpoint does not have is an error naming both, not silently ignored.
    with pytest.raises(CheckpointError, match="model_size: base"):
        SSASTEmbedding(
            "base",
            target_frames=40,
            fstride=128,
            tstride=1,
            pretrained_path=str(tmp_path / "pretrained.pth"),
        )


def test_embedding_lobe_rejects_unknown_pooling():
    with pytest.raises(ValueError, match="pooling"):
        SSASTEmbedding("tiny", "frame", target_frames=16, fstride=128, tstride=2, pooling="max")
