"""A conversion problem in a model whose code is all library code (a Hugging Face model) names the library line
where values first differ, as provenance names its ops (``modeling_x.py:N``).

The search recorded PyTorch's values by their innermost non-library frame only: in such a model there is none,
so HF SuperPoint's conversion problem (a keypoint count frozen by tracing) named no place at all.
"""

from __future__ import annotations

import textwrap

from devicefit.check import CheckOptions, run_check

LIBRARY = textwrap.dedent(
    """
    import torch


    class HashedTokens(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.emb = torch.nn.Embedding(97, 8)
            self.head = torch.nn.Linear(8, 4)

        def forward(self, ids):
            buckets = (ids * 1000003 + 12345) % 97  # LINE_HASH: int32 wraps where int64 does not
            return self.head(self.emb(buckets).mean(1))
    """
)

FACTORY = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    import torch

    sys.path.insert(0, str(Path(__file__).parent / "site-packages"))
    from modeling_hashed import HashedTokens


    def make_model():
        return HashedTokens().eval(), torch.randint(0, 30000, (2, 16))
    """
)


def test_a_library_models_conversion_problem_names_the_library_line(tmp_path):
    library = tmp_path / "site-packages"
    library.mkdir()
    (library / "modeling_hashed.py").write_text(LIBRARY)
    (tmp_path / "model.py").write_text(FACTORY)
    result = run_check(CheckOptions(model=f"{tmp_path / 'model.py'}:make_model", samples=2, repair=False))
    verdict = result.verdicts["numerics"]
    assert verdict.status == "fail" and verdict.reason.startswith("conversion problem"), verdict.reason
    line = next(i for i, text in enumerate(LIBRARY.splitlines(), 1) if "LINE_HASH" in text)
    assert f"modeling_hashed.py:{line}" in result.extras["conversion_divergence"]["where"], result.extras
    assert f"modeling_hashed.py:{line}" in verdict.reason
