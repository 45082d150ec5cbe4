"""Neural Engine findings in `check` lead with the PyTorch module and line, then say what to do; the rule id
follows. They led with it: "ANE-RNN (1 ops, 97% of FLOPs): lstm (recurrent layers) does not run on the NE",
and the failing verdict said only "predicted: 2 of 11 ops (18%, 97% of FLOPs) likely fall back"."""

from __future__ import annotations

import io

import pytest
import torch
from rich.console import Console


class Tagger(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = torch.nn.Embedding(50, 16)
        self.lstm = torch.nn.LSTM(16, 32, batch_first=True)
        self.out = torch.nn.Linear(32, 7)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h, _ = self.lstm(self.emb(ids))  # LSTM-LINE
        return self.out(h)


@pytest.fixture(scope="module")
def section():
    from devicefit.analyze import ane_lint
    from devicefit.convert import ConvertOptions, convert
    from devicefit.report.devices import ane_section
    from devicefit.sources.module import from_module

    torch.manual_seed(0)
    source = from_module("tagger", "python", Tagger().eval(), torch.randint(0, 50, (1, 12)), None)
    converted = convert(source, ConvertOptions(target="iOS17"))
    return ane_section(ane_lint.lint(converted.mlmodel))


def test_the_rnn_finding_leads_with_the_module_and_its_line(section):
    from devicefit.report.terminal import _neural_engine

    console = Console(file=io.StringIO(), width=300)
    _neural_engine(section, console)
    lines = [x.strip() for x in console.file.getvalue().splitlines()]
    (rnn,) = [x for x in lines if "ANE-RNN" in x]
    assert rnn.startswith("lstm (LSTM) at ") and "test_ane_findings_lead_with_module.py:" in rnn
    assert rnn.index("fix:") < rnn.index("ANE-RNN")  # the rule id follows what to do
    (gather,) = [x for x in lines if "ANE-GATHER" in x]
    assert gather.startswith("emb (Embedding)")


def test_the_failing_verdict_names_where_most_flops_fall_back_and_what_to_do(section):
    from devicefit.report.devices import ane_verdict

    status, reason = ane_verdict(section)
    assert status == "fail"
    assert "lstm (LSTM) at " in reason and "fix:" in reason and "replace the RNN" in reason


def test_the_page_leads_its_rule_table_with_where(section):
    from devicefit.report.device_views import neural_engine

    page = neural_engine(section)
    head = page[page.index("<th>") :]
    assert head.index("where (PyTorch module, then MIL op)") < head.index(">rule<")
    assert "lstm (LSTM) at " in page


def test_a_warning_verdict_also_says_where(section):
    from devicefit.report.devices import ane_verdict

    few = {**section, "fallback_flops_share": 0.1, "ne_barred_by": []}  # under the fail share: a warning
    status, reason = ane_verdict(few)
    assert status == "warn" and "most of it at lstm (LSTM) at " in reason and "fix:" in reason
