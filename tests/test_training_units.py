"""Training without Ray, in one process and in seconds: the v-prediction loss (Min-SNR weighting, its
random draws), the crop/flip augmentation, and `train_step` (update, warm-up, EMA, condition dropout,
determinism, resume from `state_dict`). tests/test_training.py keeps what needs Ray Train: the
launched run, its checkpoints and resume, metrics files, several workers."""
from __future__ import annotations

import dataclasses
import io

import numpy as np
import pytest
import torch

from semantica.training.data import augment
from semantica.training.diffusion import NUM_TRAIN_TIMESTEPS, VLoss, make_scheduler
from semantica.training.step import build_model, make_state, new_loss, step_generator, train_step

from helpers import same_state

CPU = torch.device("cpu")


# ----------------------------------------------------------------------------- the loss
def _x0(n=6, size=8, seed=1):
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed)).clamp(-1, 1)


def test_min_snr_weighting_matches_its_formula():
    sched = make_scheduler()
    x0 = _x0()
    zero = lambda x_t, t: torch.zeros_like(x_t)  # noqa: E731  v̂ = 0: each sample's loss is mean(v²)
    plain = VLoss(sched)(zero, x0, {}, torch.Generator().manual_seed(0))
    weighted = VLoss(sched, snr_gamma=5.0)(zero, x0, {}, torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(0)  # the same t and ε as the loss drew
    t = torch.randint(0, sched.config.num_train_timesteps, (6,), generator=g)
    eps = torch.randn(x0.shape, generator=g)
    per_sample = sched.get_velocity(x0, eps, t).pow(2).mean((1, 2, 3))
    a = sched.alphas_cumprod[t]
    snr = a / (1 - a)                                                    # α_t² / σ_t²
    w = torch.minimum(snr, torch.tensor(5.0)) / (snr + 1)
    assert float(plain) == pytest.approx(float(per_sample.mean()), rel=1e-5)
    assert float(weighted) == pytest.approx(float((w * per_sample).mean()), rel=1e-5)
    assert float(weighted) < float(plain)  # every weight is ≤ 1


class _Oracle:
    """v̂ = the true v, recovered from z_t and the clean x (ε = (z_t − α x)/σ, v = α ε − σ x): a loss
    that builds z_t and v from one (α, σ) gives ~0 for it; one that regresses on ε, or noises with
    other coefficients, does not. Records what the loss passed in."""

    def __init__(self, sched, x0):
        self.sched, self.x0, self.calls = sched, x0, []

    def __call__(self, x_t, t, **cond):
        self.calls.append((t.clone(), cond))
        alpha = self.sched.alphas_cumprod[t].sqrt().view(-1, 1, 1, 1)
        sigma = (1 - self.sched.alphas_cumprod[t]).sqrt().view(-1, 1, 1, 1)
        eps = (x_t - alpha * self.x0) / sigma
        return alpha * eps - sigma * self.x0


@pytest.mark.parametrize("gamma", [0.0, 5.0])
def test_loss_targets_v_of_the_noised_input_and_passes_the_condition(gamma):
    sched, x0 = make_scheduler(), _x0(n=16)
    oracle = _Oracle(sched, x0)
    loss = VLoss(sched, snr_gamma=gamma)(oracle, x0, {"tokens": "c"}, torch.Generator().manual_seed(3))
    assert float(loss) < 1e-6
    (t, cond), = oracle.calls
    assert cond == {"tokens": "c"} and t.shape == (16,)
    assert 0 <= int(t.min()) and int(t.max()) < NUM_TRAIN_TIMESTEPS and len(set(t.tolist())) > 8
    # an ε-predicting model is far off (measured: 0.59 plain, 0.089 with Min-SNR-5; the oracle's is ~1e-15)
    eps_model = lambda x_t, t: (x_t - sched.alphas_cumprod[t].sqrt().view(-1, 1, 1, 1) * x0) \
        / (1 - sched.alphas_cumprod[t]).sqrt().view(-1, 1, 1, 1)  # noqa: E731
    assert float(VLoss(sched, snr_gamma=gamma)(eps_model, x0, {}, torch.Generator().manual_seed(3))) > 0.05


def test_loss_is_a_function_of_the_generator():
    """t and ε come from the generator only: the same seed the same loss (whatever the global RNG does),
    another seed or the generator's next draw another loss."""
    sched, x0 = make_scheduler(), _x0()
    model = torch.nn.Conv2d(3, 3, 3, padding=1)
    f = lambda x_t, t: model(x_t)  # noqa: E731
    for gamma in (0.0, 5.0):
        loss = VLoss(sched, snr_gamma=gamma)
        a = loss(f, x0, {}, torch.Generator().manual_seed(0))
        torch.manual_seed(123)  # the global generator is not used
        b = loss(f, x0, {}, torch.Generator().manual_seed(0))
        assert torch.equal(a, b)
        g = torch.Generator().manual_seed(0)
        first, second = loss(f, x0, {}, g), loss(f, x0, {}, g)
        assert torch.equal(first, a) and not torch.equal(second, a)
        assert not torch.equal(loss(f, x0, {}, torch.Generator().manual_seed(1)), a)


def test_offset_noise_adds_one_constant_per_image_and_channel():
    """noise_offset c: ε = N(0, I) + c·N(0, 1) per (image, channel); c = 0 draws what plain randn draws, so a
    run without it is unchanged. The loss noises with that ε and targets its v (the oracle recovers it)."""
    from semantica.models import draw_noise
    shape = (2000, 3, 8, 8)
    assert torch.equal(draw_noise(shape, torch.Generator().manual_seed(0)),
                       torch.randn(shape, generator=torch.Generator().manual_seed(0)))
    eps = draw_noise(shape, torch.Generator().manual_seed(0), offset=0.5)
    means = eps.mean((2, 3))                      # per image and channel: std √(1/64 + 0.25) = 0.515
    assert float(means.std()) == pytest.approx(0.515, rel=0.05)
    plain_means = draw_noise(shape, torch.Generator().manual_seed(0)).mean((2, 3))
    assert float(plain_means.std()) == pytest.approx(0.125, rel=0.05)   # 1/√64
    assert float((eps - eps.mean((2, 3), keepdim=True)).std()) == pytest.approx(1.0, rel=0.02)  # pixel noise as before
    sched, x0 = make_scheduler(), _x0(n=16)
    oracle = _Oracle(sched, x0)
    assert float(VLoss(sched, snr_gamma=5.0, noise_offset=0.5)(oracle, x0, {}, torch.Generator().manual_seed(3))) < 1e-6
    zero = lambda x_t, t: torch.zeros_like(x_t)  # noqa: E731
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    assert float(VLoss(sched, noise_offset=0.5)(zero, x0, {}, g())) != float(VLoss(sched)(zero, x0, {}, g()))


def test_new_loss_takes_min_snr_gamma_from_the_config(settings):
    cfg = dataclasses.replace(settings.stages.train, snr_gamma=5.0)
    assert new_loss(cfg).snr_gamma == 5.0 and new_loss().snr_gamma == 0.0
    assert new_loss(dataclasses.replace(cfg, snr_gamma=0.0)).snr_gamma == 0.0
    assert new_loss(cfg).scheduler.config.prediction_type == "v_prediction"
    assert new_loss(dataclasses.replace(cfg, noise_offset=0.1)).noise_offset == 0.1
    assert new_loss(dataclasses.replace(cfg, noise_offset=0.0)).noise_offset == new_loss().noise_offset == 0.0


# ----------------------------------------------------------------------------- augmentation
def _images(n, size=36, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def _where(crop: np.ndarray, img: np.ndarray) -> tuple[int, int, bool]:
    """(top, left, flipped) of the window of `img` that `crop` is (random pixels: exactly one)."""
    r = crop.shape[0]
    windows = [(top, left) for top in range(img.shape[0] - r + 1) for left in range(img.shape[1] - r + 1)]
    found = [(top, left, flip) for top, left in windows for flip in (False, True)
             if np.array_equal(crop, img[top:top + r, left:left + r][:, ::-1 if flip else 1])]
    assert len(found) == 1, found
    return found[0]


def _uint8(x: torch.Tensor) -> np.ndarray:
    return np.rint((x.permute(0, 2, 3, 1).numpy() + 1) * 127.5).astype(np.uint8)


def test_augment_crops_and_flips_windows_of_the_input():
    imgs, ids = _images(24), [f"pair{i}" for i in range(24)]
    out = augment(imgs, ids, epoch=0, seed=0, resolution=32, which="cond")
    assert out.shape == (24, 3, 32, 32) and out.dtype == torch.float32
    assert float(out.min()) >= -1.0 and float(out.max()) <= 1.0
    where = [_where(crop, img) for crop, img in zip(_uint8(out), imgs)]
    assert {flip for _, _, flip in where} == {False, True}            # both, not always one
    assert len({(top, left) for top, left, _ in where}) > 5            # random offsets, not a fixed crop
    # [0, 255] maps onto [-1, 1] exactly
    ends = augment(np.stack([np.zeros((32, 32, 3), np.uint8), np.full((32, 32, 3), 255, np.uint8)]), ["a", "b"],
                   0, 0, 32, "cond")
    assert torch.equal(ends[0], torch.full((3, 32, 32), -1.0)) and torch.equal(ends[1], torch.ones(3, 32, 32))


def test_augment_is_seeded_per_pair_epoch_seed_and_side():
    imgs, ids = _images(16), [f"pair{i}" for i in range(16)]
    a = augment(imgs, ids, 0, 0, 32, "cond")
    assert torch.equal(a, augment(imgs, ids, 0, 0, 32, "cond"))
    # a pair's crop does not depend on the rest of its batch (a resumed run regroups batches)
    assert torch.equal(a[5:6], augment(imgs[5:6], ids[5:6], 0, 0, 32, "cond"))
    assert torch.equal(a.flip(0), augment(imgs[::-1], ids[::-1], 0, 0, 32, "cond"))
    for other in (dict(epoch=1, seed=0, which="cond"), dict(epoch=0, seed=1, which="cond"),
                  dict(epoch=0, seed=0, which="target")):
        b = augment(imgs, ids, resolution=32, **other)
        changed = sum(not torch.equal(x, y) for x, y in zip(a, b))
        assert changed >= 12, (other, changed)  # 1/40 chance per pair to draw the same window and flip


# ----------------------------------------------------------------------------- train_step
@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread, as `semantica` runs small CPU models: on a busy machine, threads that wait
    for each other make each step of the tiny model ten times slower."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    """An untrained tiny encoder: frozen features of the right shape, no training needed."""
    from semantica.encoders import load_encoder
    from semantica.tiny_encoder import build_tiny_encoder
    return load_encoder(str(build_tiny_encoder(tmp_path_factory.mktemp("enc"))), device="cpu")


@pytest.fixture(scope="module")
def tokens(encoder):
    return encoder(torch.zeros(1, 3, encoder.image_size, encoder.image_size)).tokens.shape[1]


def _cfg(settings, **kw):
    fields = dict(learning_rate=1e-3, warmup_steps=4, ema_decay=0.9, cond_dropout=0.0, snr_gamma=0.0)
    return dataclasses.replace(settings.stages.train, **{**fields, **kw})


def _batch(seed=0, n=4):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 3, 32, 32, generator=g) * 2 - 1 for _ in range(2))


def _state(settings, encoder, tokens, cfg):
    return make_state(build_model(settings.models["tiny"], encoder.dim, tokens, seed=0), cfg)


def _run(state, encoder, cfg, steps, batch_seed=0, rank=0, same_noise=False):
    cond, target = _batch(batch_seed)
    losses = []
    for _ in range(steps):
        gen = step_generator(cfg.seed, 0 if same_noise else state.step, rank)
        losses.append(float(train_step(state, encoder, new_loss(cfg), cond, target, cfg, gen, CPU)))
    return losses


def _params(state):
    return [p.detach().clone() for p in state.model.parameters()]


def test_train_step_updates_weights_warmup_and_ema(settings, encoder, tokens):
    cfg = _cfg(settings)
    state = _state(settings, encoder, tokens, cfg)
    before = _params(state)
    loss, = _run(state, encoder, cfg, 1)
    assert np.isfinite(loss) and loss > 0 and state.step == 1
    first = _params(state)
    assert all(p.grad is None for p in state.model.parameters())  # zeroed for the next step
    moved = [not torch.equal(a, b) for a, b in zip(before, first)]
    assert sum(moved) > 0.9 * len(moved)
    # linear warm-up over 4 steps: the first step ran at lr/4, the next runs at 2·lr/4
    assert state.lr_schedule.get_last_lr()[0] == pytest.approx(cfg.learning_rate * 2 / 4)
    _run(state, encoder, cfg, 1)
    assert state.step == 2 and state.lr_schedule.get_last_lr()[0] == pytest.approx(cfg.learning_rate * 3 / 4)
    # EMA: shadow = d·shadow + (1 − d)·new weights, d from diffusers' warm-up of the decay (0 at the first
    # step: the shadow starts as the first step's weights)
    second = _params(state)
    decay = state.ema.get_decay(state.ema.optimization_step)
    assert state.ema.optimization_step == 2 and 0 < decay <= cfg.ema_decay
    for shadow, p1, p2 in zip(state.ema.shadow_params, first, second):
        torch.testing.assert_close(shadow, decay * p1 + (1 - decay) * p2, rtol=1e-5, atol=1e-7)
    assert sum(not torch.equal(s, p) for s, p in zip(state.ema.shadow_params, second)) > 0.9 * len(second)


@pytest.mark.parametrize("schedule, mid, last", [("constant", 1.0, 1.0), ("cosine", 0.5, 0.0),
                                                ("linear", 0.5, 0.0)])
def test_lr_schedule_warms_up_then_holds_or_decays_to_zero_at_max_steps(settings, schedule, mid, last):
    """lr factor after warm-up (4 steps) halfway to max_steps (4 + 10) and at it; the optimizer alone
    (no model step needed: the schedule is a function of the step count)."""
    cfg = _cfg(settings, lr_schedule=schedule, max_steps=14)
    state = make_state(torch.nn.Linear(2, 2), cfg)
    lrs = []
    for _ in range(14):
        state.optimizer.step()
        state.lr_schedule.step()
        lrs.append(state.lr_schedule.get_last_lr()[0] / cfg.learning_rate)
    assert lrs[0] <= 0.5 and lrs[3] == pytest.approx(1.0)  # warm-up, then the full rate
    assert lrs[8] == pytest.approx(mid) and lrs[13] == pytest.approx(last, abs=1e-9)


def test_train_step_lowers_the_loss_of_a_fixed_batch(settings, encoder, tokens):
    """The same batch, t and ε at every step: the update follows the gradient down."""
    cfg = _cfg(settings)
    losses = _run(_state(settings, encoder, tokens, cfg), encoder, cfg, 8, same_noise=True)
    assert losses[-1] < 0.6 * losses[0], losses  # measured: 0.78 → 0.32


def test_train_step_is_deterministic_and_resumes_from_its_state_dict(settings, encoder, tokens):
    cfg = _cfg(settings)
    a, b = _state(settings, encoder, tokens, cfg), _state(settings, encoder, tokens, cfg)
    assert _run(a, encoder, cfg, 2) == _run(b, encoder, cfg, 2)
    assert same_state(a.state_dict(), b.state_dict())
    # another rank draws other t, ε and dropout: other weights
    c = _state(settings, encoder, tokens, cfg)
    _run(c, encoder, cfg, 2, rank=1)
    assert not same_state(a.state_dict()["model"], c.state_dict()["model"])
    # resume: a fresh state loaded from a's saved state_dict continues exactly as a does
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    resumed = _state(settings, encoder, tokens, cfg)
    resumed.load_state_dict(torch.load(buf, weights_only=False))
    assert resumed.step == 2
    assert _run(a, encoder, cfg, 2, batch_seed=1) == _run(resumed, encoder, cfg, 2, batch_seed=1)
    assert same_state(a.state_dict(), resumed.state_dict())


def test_condition_dropout_replaces_the_condition_with_the_null_one(settings, encoder, tokens):
    """cond_dropout = 1: every sample sees the learned null condition, so the condition image changes
    nothing; cond_dropout = 0: it changes the loss."""
    def loss_with(cond_seed, dropout):
        cfg = _cfg(settings, **{"cond_dropout": dropout})
        state = _state(settings, encoder, tokens, cfg)
        cond, _ = _batch(cond_seed)
        _, target = _batch(0)
        return float(train_step(state, encoder, new_loss(cfg), cond, target, cfg, step_generator(0, 0, 0), CPU))
    assert loss_with(0, 1.0) == loss_with(1, 1.0)
    assert loss_with(0, 0.0) != loss_with(1, 0.0)


def test_metrics_reach_ray_only_with_checkpoints(settings, tmp_path, monkeypatch):
    """A worker's ray.train.report waits for Ray Train's controller, which takes one report per worker every
    2 s: metric-only reports every `log_every` steps capped the demo at 5 steps/s. Metrics go to metrics.jsonl
    every `log_every` steps; Ray gets a report only with a checkpoint (every `checkpoint_every` and the last)."""
    import json
    import ray.train
    from semantica.training.trainer import Reporter
    reports = []
    monkeypatch.setattr(ray.train, "report", lambda metrics, checkpoint=None: reports.append(
        (metrics["step"], checkpoint is not None)))
    cfg = _cfg(settings, log_every=10, checkpoint_every=50, max_steps=120)
    state = make_state(torch.nn.Linear(2, 2), cfg)
    report = Reporter(tmp_path, cfg, settings.models["tiny"], global_batch=16, rank=0, step=0)
    for _ in range(cfg.max_steps):
        state.step += 1
        report(state, torch.tensor(0.5), done=state.step == cfg.max_steps)
    assert reports == [(50, True), (100, True), (120, True)]
    logged = [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert logged == [1] + list(range(10, 121, 10))
    # another rank: the same reports (Ray's collective), and no log of its own
    reports.clear()
    other = Reporter(tmp_path / "rank1", cfg, settings.models["tiny"], global_batch=16, rank=1, step=0)
    state.step = 0
    for _ in range(cfg.max_steps):
        state.step += 1
        other(state, torch.tensor(0.5), done=state.step == cfg.max_steps)
    assert reports == [(50, False), (100, False), (120, False)] and not (tmp_path / "rank1").exists()


def test_latest_checkpoint_skips_markers_torn_by_a_kill(tmp_path):
    """A worker killed while Ray copies a checkpoint can leave its step marker empty or cut: such a folder is not
    a checkpoint (it made the run end in an IndexError after the restarted worker finished)."""
    from semantica.training.trainer import STATE_FILE, STEP_FILE, latest_checkpoint

    def checkpoint(name, marker, state=b"12345"):
        folder = tmp_path / "ray" / "run" / name
        folder.mkdir(parents=True)
        (folder / STATE_FILE).write_bytes(state)
        (folder / STEP_FILE).write_text(marker)
        return folder

    good = checkpoint("c10", "10 5")
    checkpoint("c20", "")            # empty: the kill came before the marker's bytes
    checkpoint("c30", "3")           # cut: "30 5" torn after its first digit reads as step 3 (older than c10)
    checkpoint("c40", "40 5x")       # garbage
    checkpoint("c50", "50 99")       # the state's copy is shorter than recorded: torn
    assert latest_checkpoint(tmp_path) == good
    assert latest_checkpoint(tmp_path / "nothing") is None
