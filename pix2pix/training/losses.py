"""pix2pix losses as pure functions: tensors in, ``(loss tensor, {name: float})`` out.

The objective (paper, eq. 4): G* = arg min_G max_D L_cGAN(G, D) + λ·L_L1(G), λ = 100.
- D minimises ½·[GAN(D(x, y), real) + GAN(D(x, G(x)), fake)] (the paper halves D's objective).
- G minimises GAN(D(x, G(x)), real) + λ·|y − G(x)|₁ (the non-saturating form).
GAN(·) is BCE-with-logits ("vanilla") or least squares ("lsgan"), averaged over the patch map.
Reported ``G_L1`` is the weighted term (λ·L1), as the official code reports it, so that
``G = G_GAN + G_L1``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def gan_loss(logits: torch.Tensor, target_is_real: bool, mode: str) -> torch.Tensor:
    """Mean GAN loss of a map of discriminator logits against an all-real or all-fake target.

    ``vanilla``: BCE with logits (log 2 for logits 0). ``lsgan``: mean (logit − target)².
    Computed in float32 whatever the input dtype (autocast-safe).
    """
    logits = logits.float()
    target = torch.ones_like(logits) if target_is_real else torch.zeros_like(logits)
    if mode == "vanilla":
        return F.binary_cross_entropy_with_logits(logits, target)
    if mode == "lsgan":
        return F.mse_loss(logits, target)
    raise ValueError(f"gan_mode: expected 'vanilla' or 'lsgan', got {mode!r}")


def discriminator_loss(
    real_logits: torch.Tensor, fake_logits: torch.Tensor, mode: str
) -> tuple[torch.Tensor, dict[str, float]]:
    """D's loss: ½·(GAN(real → 1) + GAN(fake → 0)). Metrics: D_real, D_fake (unhalved)."""
    real = gan_loss(real_logits, True, mode)
    fake = gan_loss(fake_logits, False, mode)
    loss = 0.5 * (real + fake)
    return loss, {"D_real": real.item(), "D_fake": fake.item()}


def generator_loss(
    fake_logits: torch.Tensor,
    fake: torch.Tensor,
    target: torch.Tensor,
    mode: str,
    lambda_l1: float,
) -> tuple[torch.Tensor, dict[str, float]]:
    """G's loss: GAN(D(x, G(x)) → 1) + λ·mean|target − fake|. Metrics: G_GAN, G_L1 (= λ·L1)."""
    adv = gan_loss(fake_logits, True, mode)
    l1 = lambda_l1 * F.l1_loss(fake.float(), target.float())
    loss = adv + l1
    return loss, {"G_GAN": adv.item(), "G_L1": l1.item()}
