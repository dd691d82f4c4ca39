"""One pix2pix training step, as a function: the loop, the benchmark and the parity test call it.

    metrics = pix2pix_step(G, D, opt_G, opt_D, real_a, real_b, gan_mode="vanilla", lambda_l1=100)

The official order (``Pix2PixModel.optimize_parameters``): G(x) once; a D step on
(x, G(x).detach()) then (x, y), loss halved; a G step on D(x, G(x)) + λ·L1 through the updated D.
With the same weights, inputs, RNG state and torch's non-fused Adam (``make_adam(..., "foreach")``)
it gives the official losses and weights bit for bit (``tests/test_parity.py``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
from torch import nn

from pix2pix.training import losses
from pix2pix.training.config import ADAM_IMPLS


def make_adam(module: nn.Module, lr: float, betas: tuple[float, float],
              impl: str = "fused") -> torch.optim.Adam:
    """Adam as in the paper. ``impl="fused"``: one kernel for all parameters (on a 2-core CPU
    the paper G's update takes 0.05 s instead of 0.2–0.3 s); ``"foreach"``: torch's default
    implementation, as the official code uses (bit-identical updates; on CPU torch runs it one
    tensor at a time). The two differ by float rounding only (docs/training.md gives how much).
    """
    if impl not in ADAM_IMPLS:
        raise ValueError(f"adam: expected one of {list(ADAM_IMPLS)}, got {impl!r}")
    extra = {"fused": True} if impl == "fused" else {}
    return torch.optim.Adam(module.parameters(), lr=lr, betas=betas, **extra)


def set_requires_grad(module: nn.Module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)


def pix2pix_step(
    G: nn.Module,
    D: nn.Module,
    opt_G: torch.optim.Optimizer,
    opt_D: torch.optim.Optimizer,
    real_a: torch.Tensor,
    real_b: torch.Tensor,
    *,
    gan_mode: str = "vanilla",
    lambda_l1: float = 100.0,
    D_for_G: nn.Module | None = None,
    scaler: torch.amp.GradScaler | None = None,
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
    check: Callable[[dict[str, float]], None] | None = None,
) -> dict[str, float]:
    """One D step and one G step on the batch ``real_a`` → ``real_b`` ((N, 3, H, W), [−1, 1]).

    ``G``/``D`` are the modules to train through (bare, DDP-wrapped or compiled); ``D_for_G``
    is the D the G step runs (default ``D``; under DDP the bare module, since D's parameters
    are frozen then and DDP would wait for their gradients). ``scaler``: a GradScaler (fp16)
    or None; ``autocast``: a factory of the mixed-precision context. ``check`` sees each
    loss's metrics before its backward (the loop's NaN guard raises there).
    Returns G_GAN, G_L1 (= λ·L1), D_real, D_fake as floats.
    """
    D_for_G = D if D_for_G is None else D_for_G
    with autocast():
        fake_b = G(real_a)  # once: detached for D, attached for G

    # ---- D step: real pairs -> 1, fake pairs -> 0; loss halved
    set_requires_grad(D, True)
    opt_D.zero_grad(set_to_none=True)
    with autocast():
        pred_fake = D(torch.cat([real_a, fake_b.detach()], 1))
        pred_real = D(torch.cat([real_a, real_b], 1))
    loss_D, m_D = losses.discriminator_loss(pred_real, pred_fake, gan_mode)
    if check is not None:
        check(m_D)
    _backward_step(loss_D, opt_D, scaler)

    # ---- G step: fool the updated D, stay close to the target (λ·L1)
    set_requires_grad(D, False)  # no D gradients from G's loss
    opt_G.zero_grad(set_to_none=True)
    with autocast():
        pred_fake = D_for_G(torch.cat([real_a, fake_b], 1))
    loss_G, m_G = losses.generator_loss(pred_fake, fake_b, real_b, gan_mode, lambda_l1)
    if check is not None:
        check(m_G)
    _backward_step(loss_G, opt_G, scaler)
    if scaler is not None:
        scaler.update()
    return {**m_G, **m_D}


def _backward_step(loss: torch.Tensor, opt: torch.optim.Optimizer,
                   scaler: torch.amp.GradScaler | None) -> None:
    if scaler is None:
        loss.backward()
        opt.step()
    else:
        scaler.scale(loss).backward()
        scaler.step(opt)
