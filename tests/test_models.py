"""Tests of the networks on tiny configs (4-8 channels); full sizes only where nothing runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from pix2pix.models import (
    DISCRIMINATORS,
    GENERATORS,
    OfficialCheckpointError,
    PatchDiscriminator,
    PixelDiscriminator,
    ResnetGenerator,
    UNetGenerator,
    build_generator,
    check_size_for_generator,
    count_parameters,
    init_weights,
    load_official_discriminator,
    load_official_generator,
    patch_discriminator_for,
    patch_receptive_field,
    unet_depth_for_size,
)

# Names, order and shapes of the state dicts saved by the official PyTorch implementation
# (tests/reference/official_pix2pix_state_dict.json, a copy of the project's reference data).
# This is the ground truth our module trees must reproduce, independent of our own code.
OFFICIAL: dict[str, list[tuple[str, tuple[int, ...]]]] = {
    key: [(name, tuple(shape)) for name, shape in entries]
    for key, entries in json.loads(
        (Path(__file__).parent / "reference" / "official_pix2pix_state_dict.json").read_text()
    ).items()
}


def _official_model(key: str, device: str | torch.device = "cpu") -> nn.Module:
    """The full-size model matching an entry of OFFICIAL, built without running any init."""
    with torch.device(device):
        builders = {
            "unet_256_ngf64_batch": lambda: UNetGenerator(num_downs=8, ngf=64, norm="batch"),
            "unet_128_ngf64_batch": lambda: UNetGenerator(num_downs=7, ngf=64, norm="batch"),
            "patchgan_n3_ndf64_in6_batch": lambda: PatchDiscriminator(in_channels=6, ndf=64, n_layers=3, norm="batch"),
        }
        return builders[key]()


def _random_state_dict(key: str, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for name, shape in OFFICIAL[key]:
        if name.endswith("num_batches_tracked"):
            sd[name] = torch.randint(1, 10_000, shape, generator=g, dtype=torch.long)
        else:
            sd[name] = torch.randn(shape, generator=g)
    return sd


def _empty_model(key: str) -> nn.Module:
    # Meta-device build + to_empty: allocating 54M parameters without PyTorch's default init.
    return _official_model(key, device="meta").to_empty(device="cpu")


# --- parity with the official networks ----------------------------------------------------


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("unet_256_ngf64_batch", 54_413_955),
        ("unet_128_ngf64_batch", 41_828_995),
        ("patchgan_n3_ndf64_in6_batch", 2_768_705),
    ],
)
def test_parameter_counts_and_names_match_official(key, expected):
    model = _official_model(key, device="meta")
    assert count_parameters(model) == expected
    ours = [(k, tuple(v.shape)) for k, v in model.state_dict().items()]
    assert ours == OFFICIAL[key]


def test_build_generator_full_size_count():
    with torch.device("meta"):
        assert count_parameters(build_generator("unet_256")) == 54_413_955


# --- official checkpoints -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "load"),
    [
        ("unet_256_ngf64_batch", load_official_generator),
        ("unet_128_ngf64_batch", load_official_generator),
        ("patchgan_n3_ndf64_in6_batch", load_official_discriminator),
    ],
)
def test_official_state_dict_loads_every_tensor(key, load):
    given = _random_state_dict(key)
    model = _empty_model(key)
    load(model, given)
    loaded = model.state_dict()
    assert set(loaded) == set(given)
    for name, tensor in given.items():
        assert loaded[name].dtype == tensor.dtype, name
        assert torch.equal(loaded[name], tensor), name


def test_official_load_strips_data_parallel_prefix():
    key = "patchgan_n3_ndf64_in6_batch"
    given = _random_state_dict(key, seed=1)
    model = _empty_model(key)
    load_official_discriminator(model, {f"module.{k}": v for k, v in given.items()})
    assert torch.equal(model.state_dict()["model.11.weight"], given["model.11.weight"])


def test_official_load_tolerates_missing_num_batches_tracked_only():
    key = "patchgan_n3_ndf64_in6_batch"
    given = _random_state_dict(key, seed=2)
    old = {k: v for k, v in given.items() if not k.endswith("num_batches_tracked")}
    assert len(old) < len(given)
    model = _empty_model(key)
    load_official_discriminator(model, old)
    sd = model.state_dict()
    assert sd["model.3.num_batches_tracked"].item() == 0
    assert torch.equal(sd["model.3.running_var"], given["model.3.running_var"])

    del old["model.3.running_var"]
    with pytest.raises(OfficialCheckpointError, match=r"model\.3\.running_var"):
        load_official_discriminator(_empty_model(key), old)


def test_official_load_renamed_key_names_both_keys():
    key = "unet_128_ngf64_batch"
    given = _random_state_dict(key, seed=3)
    bad = "model.model.1.model.3.model.2.weight"
    given["model.model.1.model.3.model.2.gamma"] = given.pop(bad)
    with pytest.raises(OfficialCheckpointError) as info:
        load_official_generator(_empty_model(key), given)
    msg = str(info.value)
    assert f"missing from the state dict (1): {bad}" in msg
    assert "unexpected in the state dict (1): model.model.1.model.3.model.2.gamma" in msg
    assert info.value.missing == [bad]
    assert isinstance(info.value, ValueError)


def test_official_load_wrong_shape_names_key_and_shapes():
    key = "patchgan_n3_ndf64_in6_batch"
    given = _random_state_dict(key, seed=4)
    given["model.0.weight"] = torch.randn(64, 3, 4, 4)  # a 3-channel (unconditional) D
    with pytest.raises(
        OfficialCheckpointError,
        match=r"shape mismatch for model\.0\.weight: state dict \[64, 3, 4, 4\], "
        r"model \[64, 6, 4, 4\]",
    ):
        load_official_discriminator(_empty_model(key), given)


def test_official_load_wrong_depth_fails_before_touching_model():
    given = _random_state_dict("unet_128_ngf64_batch", seed=5)
    model = _empty_model("unet_256_ngf64_batch")
    with torch.no_grad():  # to_empty leaves garbage (maybe NaN, which never equals itself)
        model.model.model[0].weight.fill_(0.25)
    before = model.model.model[0].weight.clone()
    with pytest.raises(OfficialCheckpointError, match="missing from the state dict"):
        load_official_generator(model, given)
    assert torch.equal(model.model.model[0].weight, before)


# --- generators -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "size"),
    [
        ("unet_128", 128),
        ("unet_256", 256),
        ("unet_512", 512),
        ("resnet_6blocks", 32),
        ("resnet_9blocks", 32),
    ],
)
def test_generator_output_shape_and_range(name, size):
    torch.manual_seed(0)
    G = init_weights(build_generator(name, ngf=4, in_channels=3, out_channels=2))
    x = torch.rand(2, 3, size, size) * 2 - 1
    with torch.no_grad():
        y = G(x)
    assert y.shape == (2, 2, size, size)
    assert y.dtype == torch.float32
    assert y.abs().max() <= 1.0


@pytest.mark.parametrize("norm", ["batch", "instance", "none"])
def test_unet_norms_and_biases(norm):
    G = UNetGenerator(num_downs=5, ngf=4, norm=norm)
    norms = [m for m in G.modules() if isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d))]
    # innermost: up-norm only; three middle levels: down- and up-norm; outermost: none
    assert len(norms) == {"batch": 7, "instance": 7, "none": 0}[norm]
    # The last (outermost) up-conv always has a bias; the other convs only without BatchNorm.
    convs = [m for m in G.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    assert G.model.model[3].bias is not None
    others = [c for c in convs if c is not G.model.model[3]]
    assert all((c.bias is None) == (norm == "batch") for c in others)
    if norm == "instance":
        assert not any(k.startswith("model") and "running" in k for k in G.state_dict())
    with torch.no_grad():
        assert G(torch.zeros(1, 3, 32, 32)).shape == (1, 3, 32, 32)


def test_unet_256_runs_on_512_and_rejects_300():
    G = UNetGenerator(num_downs=8, ngf=4).eval()
    with torch.no_grad():
        assert G(torch.zeros(1, 3, 512, 256)).shape == (1, 3, 512, 256)
        with pytest.raises(ValueError, match=r"multiples of 256; got 300×300"):
            G(torch.zeros(1, 3, 300, 300))


def test_dropout_placement_and_train_eval_behaviour():
    torch.manual_seed(0)
    for num_downs in (7, 8, 9):
        G = UNetGenerator(num_downs=num_downs, ngf=4)
        assert sum(isinstance(m, nn.Dropout) for m in G.modules()) == num_downs - 5
    assert not any(isinstance(m, nn.Dropout) for m in UNetGenerator(ngf=4, dropout=False).modules())
    assert sum(isinstance(m, nn.Dropout) for m in ResnetGenerator(ngf=4, dropout=True).modules()) == 9

    # num_downs 6: one dropout level, the smallest U-Net that has any (64×64 input).
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    G = init_weights(UNetGenerator(num_downs=6, ngf=4, dropout=True))
    with torch.no_grad():
        G.train()
        assert not torch.equal(G(x), G(x))
        G.eval()
        assert torch.equal(G(x), G(x))
        # Without dropout, train mode (batch-statistics BatchNorm) is deterministic too.
        G_plain = init_weights(UNetGenerator(num_downs=6, ngf=4, dropout=False)).train()
        assert torch.equal(G_plain(x), G_plain(x))


def test_build_generator_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="unet_128, unet_256, unet_512, resnet_6blocks"):
        build_generator("unet_1024")
    with pytest.raises(ValueError, match="norm must be one of"):
        build_generator("unet_256", norm="group")
    assert set(GENERATORS) == {
        "unet_128",
        "unet_256",
        "unet_512",
        "resnet_6blocks",
        "resnet_9blocks",
    }


# --- sizes ----------------------------------------------------------------------------------


def test_unet_depth_for_size():
    assert [unet_depth_for_size(s) for s in (32, 128, 256, 512, 1024)] == [5, 7, 8, 9, 10]
    for bad in (300, 16, 0, 255):
        with pytest.raises(ValueError, match="power-of-two"):
            unet_depth_for_size(bad)


def test_check_size_for_generator():
    with pytest.raises(
        ValueError,
        match=r"^unet_256 needs image sides that are multiples of 256 \(e\.g\. 256, 512\); "
        r"got 300$",
    ):
        check_size_for_generator("unet_256", 300)
    with pytest.raises(ValueError, match=r"multiples of 256 .*got 128; unet_128 fits 128"):
        check_size_for_generator("unet_256", 128)
    with pytest.raises(ValueError, match="multiples of 4"):
        check_size_for_generator("resnet_9blocks", 302)
    with pytest.raises(ValueError, match="valid names"):
        check_size_for_generator("unet", 256)
    for name, size in [
        ("unet_128", 128),
        ("unet_256", 256),
        ("unet_256", 512),
        ("unet_512", 512),
        ("resnet_6blocks", 300),
    ]:
        check_size_for_generator(name, size)


# --- discriminators -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rf", "cls", "out_side"),
    [
        (1, PixelDiscriminator, 256),
        (16, PatchDiscriminator, 126),
        (70, PatchDiscriminator, 30),
        (286, PatchDiscriminator, 6),
    ],
)
def test_discriminator_output_shapes(rf, cls, out_side):
    D = init_weights(patch_discriminator_for(rf, in_channels=6, ndf=4))
    assert isinstance(D, cls)
    assert D.receptive_field == rf
    with torch.no_grad():
        logits = D(torch.rand(2, 6, 256, 256) * 2 - 1)
    assert logits.shape == (2, 1, out_side, out_side)
    assert logits.min() < 0  # raw logits, no sigmoid squashing them into (0, 1)


def _numeric_receptive_field(D: nn.Module, size: int) -> tuple[int, int]:
    """Extent (rows, cols) of input pixels that influence the centre logit."""
    D = D.double().eval()  # eval: BatchNorm per-pixel affine, so no coupling across the map
    x = torch.randn(1, 6, size, size, dtype=torch.float64, requires_grad=True)
    logits = D(x)
    h, w = logits.shape[-2:]
    logits[0, 0, h // 2, w // 2].backward()
    touched = x.grad.abs().sum(dim=(0, 1)) != 0
    rows = touched.any(dim=1).nonzero().flatten()
    cols = touched.any(dim=0).nonzero().flatten()
    # The field must lie strictly inside the input, or the count would be clipped.
    assert rows.min() > 0 and rows.max() < size - 1
    assert cols.min() > 0 and cols.max() < size - 1
    return int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)


@pytest.mark.parametrize(("rf", "size"), [(1, 16), (16, 64), (70, 160), (286, 448)])
def test_discriminator_receptive_field_measured(rf, size):
    torch.manual_seed(rf)
    D = patch_discriminator_for(rf, in_channels=6, ndf=4)
    assert _numeric_receptive_field(D, size) == (rf, rf)


def test_discriminator_table_and_errors():
    assert sorted(DISCRIMINATORS) == [1, 16, 70, 286]
    assert [patch_receptive_field(n) for n in (1, 2, 3, 4, 5)] == [16, 34, 70, 142, 286]
    with pytest.raises(ValueError, match=r"valid sizes: \[1, 16, 70, 286\]"):
        patch_discriminator_for(34)
    with pytest.raises(ValueError, match="PixelDiscriminator"):
        PatchDiscriminator(n_layers=0)
    D = PatchDiscriminator(ndf=4, norm="instance")
    assert D.model[2].bias is not None
    assert not any(isinstance(m, nn.BatchNorm2d) for m in D.modules())


# --- init -----------------------------------------------------------------------------------


def test_init_weights_statistics():
    D = PatchDiscriminator(in_channels=6, ndf=64, n_layers=3)
    D.model[9].running_mean.fill_(3.0)
    assert init_weights(D, std=0.02, generator=torch.Generator().manual_seed(0)) is D
    big = D.model[8].weight  # 512×256×4×4 = 2.1M weights
    assert abs(big.std().item() - 0.02) < 2e-4
    assert abs(big.mean().item()) < 1e-4
    bn = D.model[9]
    assert abs(bn.weight.mean().item() - 1.0) < 0.005
    assert 0.015 < bn.weight.std().item() < 0.025
    assert torch.count_nonzero(bn.bias) == 0
    assert torch.count_nonzero(D.model[0].bias) == 0
    assert torch.count_nonzero(D.model[11].bias) == 0
    assert torch.all(bn.running_mean == 3.0)  # buffers are not init's business

    G = init_weights(UNetGenerator(num_downs=5, ngf=8), std=0.05)
    up = G.model.model[3]
    assert isinstance(up, nn.ConvTranspose2d)
    assert 0.04 < up.weight.std().item() < 0.06
    assert torch.count_nonzero(up.bias) == 0


def test_init_weights_generator_is_reproducible_and_private():
    a = UNetGenerator(num_downs=5, ngf=4)
    b = UNetGenerator(num_downs=5, ngf=4)  # different PyTorch default init from a
    state = torch.get_rng_state()
    init_weights(a, generator=torch.Generator().manual_seed(7))
    init_weights(b, generator=torch.Generator().manual_seed(7))
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG is neither used nor moved
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb), ka
