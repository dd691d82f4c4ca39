"""Time the networks on this machine's CPU: forward, and one pix2pix-shaped training step.

Usage::

    python bench/bench_models.py                      # unet_256 + 70×70 D, batch 1, 256×256
    python bench/bench_models.py --generator unet_128 --size 128 --batch 4 --steps 5

The step mirrors the paper's iteration (G forward, D step on real and fake, G step with
cGAN + L1) so the number is comparable with the ≈1.1 s/iteration of the official code.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from pix2pix.models import (
    build_generator,
    check_size_for_generator,
    count_parameters,
    init_weights,
    patch_discriminator_for,
)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--generator", default="unet_256")
    p.add_argument("--patch", type=int, default=70, help="D receptive field: 1, 16, 70, 286")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    check_size_for_generator(args.generator, args.size)

    g = torch.Generator().manual_seed(0)
    G = init_weights(build_generator(args.generator), generator=g)
    D = init_weights(patch_discriminator_for(args.patch, in_channels=6), generator=g)
    opt_G = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_D = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    a = torch.rand(args.batch, 3, args.size, args.size, generator=g) * 2 - 1
    b = torch.rand(args.batch, 3, args.size, args.size, generator=g) * 2 - 1
    print(
        f"G {args.generator}: {count_parameters(G):,} params; "
        f"D {args.patch}×{args.patch}: {count_parameters(D):,} params; "
        f"{torch.get_num_threads()} threads"
    )

    with torch.no_grad():
        G(a)  # warm-up
        t = time.perf_counter()
        G(a)
        print(f"G forward: {time.perf_counter() - t:.3f} s")

    def step() -> None:
        fake = G(a)
        opt_D.zero_grad(set_to_none=True)
        real_logits = D(torch.cat([a, b], 1))
        fake_logits = D(torch.cat([a, fake.detach()], 1))
        loss_D = 0.5 * (
            F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
            + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
        )
        loss_D.backward()
        opt_D.step()
        opt_G.zero_grad(set_to_none=True)
        logits = D(torch.cat([a, fake], 1))
        loss_G = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
        (loss_G + 100.0 * F.l1_loss(fake, b)).backward()
        opt_G.step()

    step()  # warm-up
    t = time.perf_counter()
    for _ in range(args.steps):
        step()
    per = (time.perf_counter() - t) / args.steps
    print(f"training step (batch {args.batch}): {per:.3f} s/iteration")


if __name__ == "__main__":
    main()
