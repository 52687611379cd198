"""The two examples of the reference documentation, with only their import lines changed."""
import contextlib
import io
import textwrap

DYNAMIC = """
import torch
from a2a_cli import AutoEncoder, TimeAgnosticNet
from a2a_cli import DynamicMRI, SequentialMRI
from a2a_cli import Artifact2ArtifactLoss

x = torch.rand((1, 2, 4, 4, 4)) # B, C, T, H, W
mask = torch.zeros((1, 2, 4, 4, 4))
mask[:, :, torch.arange(4), torch.arange(4) % 4, :] = 1 # Create time-varying mask

physics = DynamicMRI(mask=mask)
loss = Artifact2ArtifactLoss((2, 4, 4, 4))
model = TimeAgnosticNet(AutoEncoder(32, 2, 2)) # Example video network
model = loss.adapt_model(model) # Adapt model to perform Artifact2Artifact

y = physics(x)
x_net = model(y, physics, update_parameters=True) # save random mask in forward pass
l = loss(x_net, y, physics, model)
print(l.item() > 0)
"""

SEQUENTIAL = """
physics = SequentialMRI(mask=mask) # mask is B, C, T, H, W
loss = Artifact2ArtifactLoss((2, 4, 4, 4), dynamic_model=False) # Process static images x

model = AutoEncoder(32, 2, 2) # Example image reconstruction network
model = loss.adapt_model(model) # Adapt model to perform Artifact2Artifact

x = torch.rand((1, 2, 4, 4)) # B, C, H, W
y = physics(x) # B, C, T, H, W
x_net = model(y, physics, update_parameters=True)
l = loss(x_net, y, physics, model)
print(l.item() > 0)
"""


def _run(source: str, namespace: dict) -> str:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        exec(textwrap.dedent(source), namespace)
    return buf.getvalue().strip()


def test_seed_examples_print_true():
    for seed in range(5):
        ns: dict = {}
        exec("import torch; torch.manual_seed(%d)" % seed, ns)
        assert _run(DYNAMIC, ns) == "True"
        # the second example reuses the first one's mask, as in the documentation
        assert _run(SEQUENTIAL, ns) == "True"
        assert tuple(ns["x_net"].shape) == (1, 2, 4, 4)
