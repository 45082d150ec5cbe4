"""Model factories (source text for ``devicefit check MODEL.py``) with dense class outputs."""

from __future__ import annotations

import textwrap

# FCN / DeepLab style: backbone at stride 2, a 1x1 conv head to 6 classes, bilinear upsampling to the input
# size. The head is scaled like a trained one (clear per-pixel winners): fp16 keeps every pixel's class.
SEGMENTATION = textwrap.dedent(
    """
    import torch
    import torch.nn.functional as F
    from torch import nn


    class Seg(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.backbone = nn.Sequential(
                nn.Conv2d(3, 16, 3, 2, 1), nn.ReLU(), nn.Conv2d(16, 16, 3, 1, 1), nn.ReLU()
            )
            self.classifier = nn.Conv2d(16, 6, 1)
            with torch.no_grad():
                self.classifier.weight.mul_(8.0)

        def forward(self, x):
            y = self.classifier(self.backbone(x))
            return F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)


    def make_model():
        return Seg().eval(), torch.zeros(1, 3, 32, 32)
    """
)

# Two classes decided by x0 - x1, computed by cancelling features offset by 1000 (where the fp16 spacing is
# 0.5), plus a large class-independent term 20 * x2 that keeps SNR (~37 dB), cosine and relative error within
# the fp16 bounds: fp16 really flips the class of every pixel where |x0 - x1| is below ~0.25.
FLIPPING = textwrap.dedent(
    """
    import torch
    from torch import nn


    class Flip(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Conv2d(3, 3, 1)
            self.classifier = nn.Conv2d(3, 2, 1)
            with torch.no_grad():
                self.features.weight.zero_()
                self.features.weight[0, 0] = self.features.weight[1, 1] = 1.0
                self.features.weight[2, 2] = 20.0
                self.features.bias.copy_(torch.tensor([1000.0, 1000.0, 0.0]))
                w = torch.tensor([[1.0, -1.0, 1.0], [-1.0, 1.0, 1.0]])
                self.classifier.weight.copy_(w.view(2, 3, 1, 1))
                self.classifier.bias.zero_()

        def forward(self, x):
            return self.classifier(torch.relu(self.features(x)))


    def make_model():
        return Flip().eval(), torch.zeros(1, 3, 16, 16)
    """
)

# Token classification: a tiny BERT tagger (7 labels), logits N x L x C from a linear head.
TAGGER = textwrap.dedent(
    """
    import torch
    from transformers import BertConfig, BertForTokenClassification


    class Tagger(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            cfg = BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                             intermediate_size=64, max_position_embeddings=32, num_labels=7)
            self.bert = BertForTokenClassification(cfg).eval()

        def forward(self, input_ids):
            return self.bert(input_ids=input_ids).logits


    def make_model():
        return Tagger().eval(), torch.randint(0, 64, (1, 12))
    """
)
