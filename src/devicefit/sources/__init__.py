"""Model sources: a user's model spec -> :class:`SourceModel` (module / ExportedProgram / MLModel + example inputs).

::

    from devicefit.sources import load_source, parse_input_arg
    source = load_source("model.py:make_model")
    outputs = source.reference(source.example_inputs)
"""

from __future__ import annotations

from devicefit.sources.load import DEFAULT_FACTORY, load_source
from devicefit.sources.spec import InputSpec, SourceModel, parse_input_arg, random_inputs

__all__ = ["DEFAULT_FACTORY", "InputSpec", "SourceModel", "load_source", "parse_input_arg", "random_inputs"]
