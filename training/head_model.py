"""The interaction head in torch, for training; ``semcache.decision.head`` runs the same maths in numpy.

Given the query's and the candidate's token states from the one embedding pass:

1. project each token to ``width`` dims and L2-normalize (what is stored with each entry, as int8);
2. align softly both ways (ESIM / ColBERT style): each token's attention-weighted counterpart in the other
   text, its best single match, and how far the counterpart's relative position is from its own;
3. compare each token with its counterpart, ``[x, a, x - a, x * a, best, moved]`` through one layer (what in
   one text has no counterpart in the other), then compose: each compared token attends to the others;
4. pool each side (max and mean), combine the sides symmetrically, add the cosine and the literal
   features, and score with a small MLP plus a learned multiple of the cosine, so that at initialization
   the head ranks as the cosine does.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from semcache.decision.head import literal_count
from semcache.decision.literals import WIDTH as LITERALS


def _positions(mask: torch.Tensor) -> torch.Tensor:
    """Each token's relative position in its text, 0 (first) to 1 (last); padding past the end."""
    length = mask.sum(dim=1, keepdim=True)
    return torch.arange(mask.shape[1], dtype=mask.dtype)[None, :] / (length - 1).clamp(min=1)


class InteractionHead(nn.Module):
    """Scores (query, candidate) pairs from token states; symmetric in its two inputs."""

    def __init__(
        self,
        dim: int = 384,
        width: int = 64,
        hidden: int = 64,
        literals: int = LITERALS,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.proj = nn.Linear(dim, width)
        self.log_temperature = nn.Parameter(torch.tensor(np.log(10.0), dtype=torch.float32))
        self.compare = nn.Linear(4 * width + 2, hidden)
        self.compose = nn.Linear(2 * hidden, hidden)
        self.mix = nn.Linear(4 * hidden + 1 + literals, hidden)
        self.out = nn.Linear(hidden, 1)
        self.cosine_weight = nn.Parameter(torch.tensor(10.0))
        self.cosine_bias = nn.Parameter(torch.tensor(-8.5))
        self.literals = literals

    def project(self, states: torch.Tensor) -> torch.Tensor:
        """Tokens to the stored width, unit length."""
        return nn.functional.normalize(self.proj(states), dim=-1)

    def forward(self, q, q_mask, c, c_mask, cosine, literal):
        """Logits for a batch: token states (B x T x 384), masks (B x T, 1 = token), cosine (B),
        literal features (B x literals)."""
        return self.score(self.project(q), q_mask, self.project(c), c_mask, cosine, literal)

    def score(self, qp, q_mask, cp, c_mask, cosine, literal):
        """Logits for a batch of tokens already projected (what the sidecar stores and exports)."""
        sim = torch.einsum("bid,bjd->bij", qp, cp)
        pair_mask = q_mask[:, :, None] * c_mask[:, None, :]
        logits = sim * self.log_temperature.exp() + (pair_mask - 1) * 1e4
        q_pos, c_pos = _positions(q_mask), _positions(c_mask)
        q_side = self._side(qp, cp, logits, sim, pair_mask, q_mask, q_pos, c_pos)
        c_side = self._side(
            cp,
            qp,
            logits.transpose(1, 2),
            sim.transpose(1, 2),
            pair_mask.transpose(1, 2),
            c_mask,
            c_pos,
            q_pos,
        )
        x = torch.cat(
            [q_side + c_side, (q_side - c_side).abs(), cosine[:, None], literal[:, : self.literals]], dim=1
        )
        z = self.drop(torch.relu(self.mix(self.drop(x))))
        return self.out(z).squeeze(1) + self.cosine_weight * cosine + self.cosine_bias

    def _side(self, x, other, logits, sim, pair_mask, mask, pos, other_pos):
        weights = torch.softmax(logits, dim=2)
        aligned = weights @ other
        best = (sim + (pair_mask - 1) * 4).max(dim=2).values
        # How far (in relative position) a token's counterpart sits from it: a swap of roles moves it.
        moved = (pos - (weights @ other_pos[..., None]).squeeze(-1)).abs()
        features = torch.cat([x, aligned, x - aligned, x * aligned, best[..., None], moved[..., None]], dim=2)
        f = self.drop(torch.relu(self.compare(features)))
        # Composition: each compared token sees the others (self-attention), then one layer.
        attention = (f @ f.transpose(1, 2)) / f.shape[-1] ** 0.5 + (mask[:, None, :] - 1) * 1e4
        g = self.drop(torch.relu(self.compose(torch.cat([f, torch.softmax(attention, dim=2) @ f], dim=2))))
        top = (g + (mask[..., None] - 1) * 1e4).max(dim=1).values
        mean = (g * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
        return torch.cat([top, mean], dim=1)

    @classmethod
    def from_export(cls, arrays: dict[str, np.ndarray]) -> InteractionHead:
        """The module back from :meth:`export`'s arrays (``head.npz``), in eval mode."""
        width, hidden = arrays["proj_w"].shape[1], arrays["compare_w"].shape[1]
        literals = literal_count(arrays["mix_w"], arrays["compare_w"])
        model = cls(dim=arrays["proj_w"].shape[0], width=width, hidden=hidden, literals=literals)
        f = lambda a: torch.tensor(np.asarray(a, dtype=np.float32))  # noqa: E731
        state = {
            "proj.weight": f(arrays["proj_w"]).T,
            "proj.bias": f(arrays["proj_b"]),
            "log_temperature": f(np.log(arrays["temperature"])),
            "compare.weight": f(arrays["compare_w"]).T,
            "compare.bias": f(arrays["compare_b"]),
            "compose.weight": f(arrays["compose_w"]).T,
            "compose.bias": f(arrays["compose_b"]),
            "mix.weight": f(arrays["mix_w"]).T,
            "mix.bias": f(arrays["mix_b"]),
            "out.weight": f(arrays["out_w"])[None, :],
            "out.bias": f(arrays["out_b"]).reshape(1),
            "cosine_weight": f(arrays["cosine_weight"]),
            "cosine_bias": f(arrays["cosine_bias"]),
        }
        model.load_state_dict(state)
        return model.eval()

    def export(self) -> dict[str, np.ndarray]:
        """The weights as numpy arrays, under the names ``semcache.decision.head`` reads."""
        t = lambda p: p.detach().cpu().numpy().astype(np.float32)  # noqa: E731
        return {
            "proj_w": t(self.proj.weight).T.copy(),
            "proj_b": t(self.proj.bias),
            "temperature": np.float32(self.log_temperature.exp().item()),
            "compare_w": t(self.compare.weight).T.copy(),
            "compare_b": t(self.compare.bias),
            "compose_w": t(self.compose.weight).T.copy(),
            "compose_b": t(self.compose.bias),
            "mix_w": t(self.mix.weight).T.copy(),
            "mix_b": t(self.mix.bias),
            "out_w": t(self.out.weight).reshape(-1),
            "out_b": t(self.out.bias).reshape(()),
            "cosine_weight": np.float32(self.cosine_weight.item()),
            "cosine_bias": np.float32(self.cosine_bias.item()),
        }
