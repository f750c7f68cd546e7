"""Small builders and the hypothesis strategies shared by tests."""

from __future__ import annotations

import torch
from hypothesis import strategies as st

from flexdiffuse.params import DECIMALS, PARAM_SPECS, GuidanceParams, JobParams

CHUNK = 77


def random_tokens(*shape: int, seed: int = 0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Reproducible normal random tensor."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=generator).to(dtype)


def bounded(low: float, high: float) -> st.SearchStrategy[float]:
    """Floats in a parameter's range, with its ends and 0 drawn often."""
    special = [v for v in (low, high, 0.0) if low <= v <= high]
    return st.one_of(st.sampled_from(special), st.floats(low, high, allow_nan=False))


GUIDANCE_VALUES: dict[str, st.SearchStrategy] = {
    "strength": bounded(0, 2),
    "threshold_mult": bounded(-1, 1),
    "threshold_floor": bounded(0, 1),
    "auto_floor": st.booleans(),
    "clustered": bounded(-0.5, 0.5),
    "linear": bounded(-1, 1),
    "max_guidance": bounded(0, 1),
    "order": st.sampled_from(["fit", "text"]),
    "reuse": st.booleans(),
    "concept_threshold": bounded(0, 1),
}
"""The values the engine's property tests draw, per engine parameter: its range with its
ends and 0 drawn often (clustered narrower). tests/test_params.py checks it names every one."""

guidance_params = st.builds(GuidanceParams, **GUIDANCE_VALUES)


@st.composite
def guidance_inputs(draw):
    """Text states, image tokens and maybe concepts, some text close to the image."""
    seed = draw(st.integers(0, 2**16))
    width = draw(st.sampled_from([8, 16, 32]))
    n = draw(st.sampled_from([1, 3, 50, 76, 77, 120]))
    lead = draw(st.lists(st.integers(1, 2), max_size=2))
    chunks = draw(st.integers(1, 2))
    image = random_tokens(n, width, seed=seed)
    text = random_tokens(*lead, CHUNK * chunks, width, seed=seed + 1)
    closeness = draw(st.sampled_from([0.0, 0.5, 0.9]))
    if closeness:  # mix in image tokens so high alignments (threshold, full take) occur
        picks = torch.randint(0, n, text.shape[:-1], generator=torch.Generator().manual_seed(seed))
        text = (1 - closeness) * text + closeness * image[picks]
    concepts = None
    if draw(st.booleans()):
        concepts = random_tokens(CHUNK, width, seed=seed + 2)
        concepts[1:] = 0.5 * concepts[1:] + text.reshape(-1, width)[: CHUNK - 1]
    return text, image, concepts


def spec_values(spec):
    """Every valid value of one parameter, read from its spec alone."""
    if spec.kind == "float":
        return st.floats(spec.minimum, spec.maximum, allow_nan=False)
    if spec.kind == "choice":
        return st.sampled_from(list(spec.choices))
    if spec.kind == "bool":
        return st.booleans()
    return st.text(max_size=40)


any_job_params = (
    st.fixed_dictionaries({spec.name: spec_values(spec) for spec in PARAM_SPECS})
    .filter(lambda values: round(values["start"], DECIMALS) < round(values["end"], DECIMALS))
    .map(lambda values: JobParams().replace(**values))
)
"""Any valid job parameters, every field drawn from its spec."""
