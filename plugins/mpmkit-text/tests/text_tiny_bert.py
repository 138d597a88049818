"""A tiny randomly initialised BERT saved to disk, loadable by path."""

from pathlib import Path

import torch
import transformers
from transformers import BertConfig, BertModel, BertTokenizerFast

VOCAB = [
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
    "the", "cat", "sat", "on", "mat", "dog", "ran", "a", "b", "c", "red", "blue",
    "un", "##believ", "##able", "##ab", "##ly", "zor", "##bl", "##at",
    ".", ",", "!", "'",
]


def make_tiny_bert(root: Path, seed: int = 0, max_positions: int = 512) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    vocab = root / "vocab.txt"
    vocab.write_text("\n".join(VOCAB) + "\n")
    if int(transformers.__version__.split(".")[0]) >= 5:
        tok = BertTokenizerFast(vocab=str(vocab))
    else:
        tok = BertTokenizerFast(vocab_file=str(vocab))
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64,
                        max_position_embeddings=max_positions)
    model = BertModel(config).eval()
    out = root / "model"
    tok.save_pretrained(out)
    model.save_pretrained(out)
    return out
