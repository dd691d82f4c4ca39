"""The official PyTorch pix2pix's training method, transcribed for side-by-side checks.

From junyanz/pytorch-CycleGAN-and-pix2pix (upstream 2a7afba): ``Pix2PixModel.optimize_parameters``
with its ``GANLoss`` ("vanilla": BCEWithLogitsLoss against a label buffer expanded to the
prediction's shape), and ``AlignedDataset.__getitem__`` with ``get_transform`` for
``--preprocess resize_and_crop``: PIL open → RGB → split the A|B halves → resize each to
(load_size, load_size) with ``Image.BICUBIC`` → crop → flip → ToTensor → Normalize(0.5, 0.5).
The networks are ours (they are the official module trees); only the method is copied here.
Used by tests/test_parity.py and bench/bench_train_step.py; not part of the package.
"""

from __future__ import annotations

import random

import numpy as np
import torch
from PIL import Image
from torch import nn


class GANLoss(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("real_label", torch.tensor(1.0))
        self.register_buffer("fake_label", torch.tensor(0.0))
        self.loss = nn.BCEWithLogitsLoss()

    def __call__(self, prediction: torch.Tensor, target_is_real: bool) -> torch.Tensor:
        target = self.real_label if target_is_real else self.fake_label
        return self.loss(prediction, target.expand_as(prediction))


def set_requires_grad(net: nn.Module, requires_grad: bool) -> None:
    for param in net.parameters():
        param.requires_grad = requires_grad


def official_step(netG: nn.Module, netD: nn.Module, optimizer_G: torch.optim.Optimizer,
                  optimizer_D: torch.optim.Optimizer, real_A: torch.Tensor, real_B: torch.Tensor,
                  lambda_L1: float = 100.0, criterionGAN: GANLoss | None = None) -> dict[str, float]:
    """forward; D: zero_grad, backward_D, step; G: zero_grad, backward_G, step (official order)."""
    criterionGAN = criterionGAN or GANLoss()
    criterionL1 = nn.L1Loss()
    fake_B = netG(real_A)  # forward()
    set_requires_grad(netD, True)
    optimizer_D.zero_grad()
    fake_AB = torch.cat((real_A, fake_B), 1)  # backward_D()
    pred_fake = netD(fake_AB.detach())
    loss_D_fake = criterionGAN(pred_fake, False)
    real_AB = torch.cat((real_A, real_B), 1)
    pred_real = netD(real_AB)
    loss_D_real = criterionGAN(pred_real, True)
    loss_D = (loss_D_fake + loss_D_real) * 0.5
    loss_D.backward()
    optimizer_D.step()
    set_requires_grad(netD, False)
    optimizer_G.zero_grad()
    fake_AB = torch.cat((real_A, fake_B), 1)  # backward_G()
    pred_fake = netD(fake_AB)
    loss_G_GAN = criterionGAN(pred_fake, True)
    loss_G_L1 = criterionL1(fake_B, real_B) * lambda_L1
    loss_G = loss_G_GAN + loss_G_L1
    loss_G.backward()
    optimizer_G.step()
    return {"G_GAN": loss_G_GAN.item(), "G_L1": loss_G_L1.item(),
            "D_real": loss_D_real.item(), "D_fake": loss_D_fake.item()}


def to_tensor(img: Image.Image) -> torch.Tensor:
    """torchvision's ToTensor for an RGB image (no torchvision here): CHW float in [0, 1]."""
    t = torch.from_numpy(np.array(img, np.uint8, copy=True)).permute(2, 0, 1).contiguous()
    return t.to(torch.float32).div(255)


def normalize(t: torch.Tensor) -> torch.Tensor:
    """torchvision's Normalize((0.5,)*3, (0.5,)*3): (t − 0.5) / 0.5 per channel."""
    mean = torch.tensor([0.5, 0.5, 0.5])[:, None, None]
    return t.sub(mean).div(mean)


def official_item(path: str, load_size: int = 286, crop_size: int = 256,
                  flip: bool = True, params: dict | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """AlignedDataset.__getitem__ (AtoB): (A, B), each (3, crop, crop) float in [-1, 1].

    ``params`` ({"crop_pos": (x, y), "flip": bool}) fixes the jitter; default: drawn with
    ``random`` as the official ``get_params`` does.
    """
    AB = Image.open(path).convert("RGB")
    w, h = AB.size
    w2 = int(w / 2)
    A = AB.crop((0, 0, w2, h))
    B = AB.crop((w2, 0, w, h))
    if params is None:
        x = random.randint(0, max(0, load_size - crop_size))
        y = random.randint(0, max(0, load_size - crop_size))
        params = {"crop_pos": (x, y), "flip": random.random() > 0.5}
    x, y = params["crop_pos"]

    def transform(img: Image.Image) -> torch.Tensor:
        img = img.resize((load_size, load_size), Image.BICUBIC)
        img = img.crop((x, y, x + crop_size, y + crop_size))
        if flip and params["flip"]:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        return normalize(to_tensor(img))

    return transform(A), transform(B)


def official_test_image(netG: nn.Module, path: str, load_size: int | None = None) -> np.ndarray:
    """The official ``test.py --eval`` on one image → (H, W, 3) uint8, as it saves it.

    ``--preprocess resize_and_crop`` with load_size = crop_size (``load_size``; None: the image's
    own size, i.e. a resize that changes nothing but still runs): PIL open → RGB → resize with
    ``Image.BICUBIC`` → ToTensor + Normalize(0.5, 0.5) → G in eval mode under ``no_grad`` →
    ``tensor2im`` ((y + 1) / 2 · 255, truncated by ``astype(uint8)``); saved without a resize
    (aspect_ratio 1). Used by tests/test_translate.py and bench/bench_translate.py.
    """
    im = Image.open(path).convert("RGB")
    im = im.resize((load_size, load_size) if load_size else im.size, Image.BICUBIC)
    x = (torch.from_numpy(np.asarray(im, np.float32) / 255.0).permute(2, 0, 1) - 0.5) / 0.5
    with torch.no_grad():
        y = netG.eval()(x[None])[0]
    return ((np.transpose(y.cpu().float().numpy(), (1, 2, 0)) + 1) / 2.0 * 255.0).astype(np.uint8)
