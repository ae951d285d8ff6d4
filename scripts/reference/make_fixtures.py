#!/usr/bin/python3
"""PyTorch reference fixtures for the TypeScript ViT training engine.

Regenerates every file in test/fixtures/ (*.safetensors + *.json). Deterministic:
fixed seeds, CPU only. The TypeScript tests read the outputs and need no Python.

How to run (from the repository root):

    apt-get update && apt-get install -y python3-torch libopenblas0-openmp   # once; Debian torch 1.13 CPU
    LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp \
        /usr/bin/python3 scripts/reference/make_fixtures.py [--out test/fixtures]

Use /usr/bin/python3 (Debian's), not a pyenv python: only the former sees python3-torch.
twins.py (the method stage by stage) and data_parity.py (torchvision's RandomCrop/Normalize; needs
python3-torchvision) write twins.* and data_parity.*; see their docstrings and test/fixtures/README.md.
No timm, no pip: the ViT below is plain torch with timm's parameter names and math.

Model (timm VisionTransformer semantics, class token, pre-norm, no dropout/drop-path):
    patch_embed.proj : Conv2d(C, D, k=p, stride=p)  == patches flattened in (c, ph, pw) order
                       times weight.reshape(D, C*p*p); patches row-major over the grid
    x = cat(cls_token, patches) + pos_embed                      # [B, T, D], T = (H/p)(W/p)+1
    per block: x = x + attn(norm1(x)); x = x + mlp(norm2(x))
      attn: qkv -> reshape [B,T,3,heads,hd] -> permute(2,0,3,1,4);
            softmax((q * hd^-0.5) @ k^T) @ v -> transpose(1,2) -> reshape [B,T,D] -> proj
      mlp : fc2(GELU_erf(fc1(.)))
    LayerNorm eps 1e-6 everywhere; logits = head(norm(x)[:, 0]).

Losses:
    hard labels: F.cross_entropy(logits, labels, label_smoothing=0.1) (mean over batch), i.e.
                 target = 0.9 * onehot + 0.1/10 on every class.
    soft targets (timm mixup_target + SoftTargetCrossEntropy): off = 0.1/10, on = 1 - 0.1 + off,
                 t = lam * smooth_onehot(labels) + (1-lam) * smooth_onehot(labels.flip(0)), lam = 0.7;
                 loss = mean_b( sum_c( -t * log_softmax(logits) ) ).

Optimizers:
    AdamW  : torch.optim.AdamW (torch 1.13, single-tensor path): p *= 1 - lr*wd; m = b1 m + (1-b1) g;
             v = b2 v + (1-b2) g^2; p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps).
             Two groups: weight_decay=0.05 for params with ndim >= 2 except cls_token/pos_embed;
             weight_decay=0 for 1-D params (biases, LayerNorm) and cls_token, pos_embed.
    clip   : torch.nn.utils.clip_grad_norm_(params, 1.0) before each AdamW step:
             total = ||(||g_i||_2)_i||_2; coef = 1.0 / (total + 1e-6); if coef < 1: g *= coef.
    LAMB   : timm.optim.Lamb (NvLamb/FusedLAMB variant) re-implemented, defaults:
             bias_correction=True, grad_averaging=True, max_grad_norm=1.0, trust_clip=False,
             always_adapt=False, decoupled_decay=False, caution=False. Per step:
               gn = ||all grads||_2 (over both groups);  c = max(gn / 1.0, 1);  g = grad / c
               m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
               u = (m / (1-b1^t)) / (sqrt(v) / sqrt(1-b2^t) + eps)
               if wd != 0: u += wd * p                          (L2-style, added to the update)
               if wd != 0 (always_adapt False): u *= r,  r = ||p|| / ||u|| if ||p|| > 0 and ||u|| > 0 else 1
               p -= lr * u
             i.e. the no-decay group (wd = 0) gets NO trust ratio (plain Adam-style step).
             betas (0.9, 0.999), eps 1e-6, wd 0.05 on the decay group, lr 1e-2.

Float64 references: gradients in vit_block / vit_tiny_step are computed in float64 from the
float32 inputs and weights (cast up), then stored as F32. The JSON also records, per tensor,
max|ref| and max|fp32 torch - fp64 ref| so that tests can set tolerances.
Training fixtures (adamw20, clip, lamb) run in float32, like the engine; the JSON also holds
the float64 run of the same steps for drift estimates.
"""
import argparse
import json
import math
import os
import struct
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from data_parity import make_data_parity  # noqa: E402  (torchvision crop and normalisation)
from twins import make_twins  # noqa: E402  (the method stage by stage; see twins.py)

torch.set_num_threads(2)

# ----------------------------------------------------------------------------- safetensors


_DT = {torch.float32: ("F32", "<f4"), torch.float64: ("F64", "<f8"), torch.int64: ("I64", "<i8")}


def write_safetensors(path, tensors):
    """tensors: dict name -> torch tensor (float32 / float64 / int64). Written in insertion order."""
    header = {}
    blobs = []
    off = 0
    for name, t in tensors.items():
        t = t.detach().contiguous().cpu()
        dt, npdt = _DT[t.dtype]
        raw = t.numpy().astype(npdt, copy=False).tobytes(order="C")
        header[name] = {"dtype": dt, "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hjson += b" " * ((8 - len(hjson) % 8) % 8)  # pad so the data starts 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    import numpy as np

    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    base = 8 + n
    np_dt = {"F32": "<f4", "F64": "<f8", "I64": "<i8"}
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        b, e = v["data_offsets"]
        arr = np.frombuffer(data[base + b : base + e], dtype=np_dt[v["dtype"]]).reshape(v["shape"])
        out[k] = torch.from_numpy(arr.copy())
    return out


# ----------------------------------------------------------------------------- model


class PatchEmbed(nn.Module):
    def __init__(self, img, patch, chans, dim):
        super().__init__()
        self.num_patches = (img // patch) ** 2
        self.proj = nn.Conv2d(chans, dim, kernel_size=patch, stride=patch)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)  # [B, N, D], row-major grid order


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.hd = dim // heads
        self.scale = self.hd ** -0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, T, D = x.shape
        qkv = self.qkv(x).reshape(B, T, 3, self.heads, self.hd).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        attn = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)
        x = (attn @ v).transpose(1, 2).reshape(B, T, D)
        return self.proj(x)


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()  # exact erf GELU
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim, heads, mlp_ratio):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        x = x + self.mlp(self.norm2(x))
        return x


class VisionTransformer(nn.Module):
    def __init__(self, img=8, patch=4, chans=3, classes=10, dim=32, depth=2, heads=2, mlp_ratio=4.0):
        super().__init__()
        self.patch_embed = PatchEmbed(img, patch, chans, dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, self.patch_embed.num_patches + 1, dim))
        self.blocks = nn.ModuleList([Block(dim, heads, mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, classes)
        self.timm_init()

    @torch.no_grad()
    def timm_init(self):
        """trunc_normal(std .02) for weights / cls_token / pos_embed, zero biases, unit LN weights."""
        for name, p in self.named_parameters():
            if name.endswith(".bias"):
                p.zero_()
            elif name.startswith("norm") or ".norm" in name:
                p.fill_(1.0)
            else:
                nn.init.trunc_normal_(p, std=0.02)

    def forward(self, x):
        x = self.patch_embed(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        for blk in self.blocks:
            x = blk(x)
        return self.head(self.norm(x)[:, 0])


TINY = dict(img=8, patch=4, chans=3, classes=10, dim=32, depth=2, heads=2, mlp_ratio=4.0)
BATCH = 4
SMOOTH = 0.1
MIX_LAM = 0.7


# ----------------------------------------------------------------------------- helpers


def clone_params(module):
    return {k: v.detach().clone() for k, v in module.named_parameters()}


def load_params(module, params):
    with torch.no_grad():
        for k, p in module.named_parameters():
            p.copy_(params[k].to(p.dtype))


def maxabs(t):
    return float(t.detach().abs().max())


@torch.no_grad()
def nontrivial_init(module, gen, w_gain=1.0):
    """Generic weights for gradient checks: non-uniform attention, non-unit LN, non-zero biases."""
    for name, p in module.named_parameters():
        if name.endswith(".bias"):
            p.copy_(0.1 * torch.randn(p.shape, generator=gen))
        elif "norm" in name:  # LayerNorm weight
            p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=gen))
        elif name in ("cls_token", "pos_embed"):
            p.copy_(0.5 * torch.randn(p.shape, generator=gen))
        else:
            fan_in = p[0].numel()
            p.copy_(w_gain * torch.randn(p.shape, generator=gen) / math.sqrt(fan_in))


def smooth_onehot(labels, classes, smoothing):
    off = smoothing / classes
    on = 1.0 - smoothing + off
    t = torch.full((labels.shape[0], classes), off, dtype=torch.float32)
    t.scatter_(1, labels.view(-1, 1), on)
    return t


def mixup_soft_targets(labels, classes, lam, smoothing):
    y1 = smooth_onehot(labels, classes, smoothing)
    y2 = smooth_onehot(labels.flip(0), classes, smoothing)
    return y1 * lam + y2 * (1.0 - lam)


def ce_smooth(logits, labels):
    return F.cross_entropy(logits, labels, label_smoothing=SMOOTH)


def soft_ce(logits, targets):
    return torch.sum(-targets * F.log_softmax(logits, dim=-1), dim=-1).mean()


def drop_k_bias(name, t):
    """Drop the key-bias slice [D:2D] of an attn.qkv.bias tensor (true gradient exactly 0)."""
    if name.endswith("attn.qkv.bias"):
        d = t.shape[0] // 3
        return torch.cat([t[:d], t[2 * d:]])
    return t


def decay_groups(model):
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.ndim <= 1 or name in ("cls_token", "pos_embed"):
            no_decay.append((name, p))
        else:
            decay.append((name, p))
    return decay, no_decay


# ----------------------------------------------------------------------------- fixtures


def make_vit_block(out):
    D, H, R, B, T = 16, 2, 4, 2, 5
    gen = torch.Generator().manual_seed(1001)
    blk = Block(D, H, R)
    nontrivial_init(blk, gen)
    x = torch.randn(B, T, D, generator=gen)
    dy = torch.randn(B, T, D, generator=gen)
    params32 = clone_params(blk)

    def run(dtype):
        m = Block(D, H, R).to(dtype)
        load_params(m, params32)
        xi = x.to(dtype).clone().requires_grad_(True)
        y = m(xi)
        y.backward(dy.to(dtype))
        grads = {k: p.grad.detach().clone() for k, p in m.named_parameters()}
        return y.detach(), xi.grad.detach(), grads

    y64, dx64, g64 = run(torch.float64)
    y32, dx32, g32 = run(torch.float32)

    tensors = {"x": x, "dy": dy}
    for k, v in params32.items():
        tensors["param." + k] = v
    tensors["y"] = y64.float()
    tensors["dx"] = dx64.float()
    for k, v in g64.items():
        tensors["grad." + k] = v.float()
    write_safetensors(os.path.join(out, "vit_block.safetensors"), tensors)

    max_abs = {"y": maxabs(y64), "dx": maxabs(dx64)}
    fp32_diff = {"y": maxabs(y32.double() - y64), "dx": maxabs(dx32.double() - dx64)}
    for k in g64:
        max_abs["grad." + k] = maxabs(g64[k])
        fp32_diff["grad." + k] = maxabs(g32[k].double() - g64[k])
    meta = {
        "description": "One timm ViT Block (pre-norm). y = block(x); dx and grad.* = VJP of y with upstream dy. "
        "Reference computed in float64 from the stored float32 x / dy / params, stored as F32.",
        "config": {"dim": D, "heads": H, "head_dim": D // H, "mlp_ratio": R, "mlp_hidden": D * R,
                   "batch": B, "tokens": T, "ln_eps": 1e-6, "gelu": "erf", "attn_scale": (D // H) ** -0.5},
        "param_names": list(params32.keys()),
        "param_init": "non-trivial test weights (weights ~ N(0,1/fan_in), biases ~ 0.1*N(0,1), LN weight ~ 1+0.1*N(0,1))",
        "seed": 1001,
        "max_abs": max_abs,
        "fp32_torch_vs_fp64_max_abs_diff": fp32_diff,
    }
    with open(os.path.join(out, "vit_block.json"), "w") as f:
        json.dump(meta, f, indent=1)
    return meta


def make_vit_tiny_step(out):
    gen = torch.Generator().manual_seed(2002)
    model = VisionTransformer(**TINY)
    nontrivial_init(model, gen)
    params32 = clone_params(model)
    images = torch.randn(BATCH, TINY["chans"], TINY["img"], TINY["img"], generator=gen)
    labels = torch.randint(0, TINY["classes"], (BATCH,), generator=gen)
    soft = mixup_soft_targets(labels, TINY["classes"], MIX_LAM, SMOOTH)

    def run(dtype, soft_target):
        m = VisionTransformer(**TINY).to(dtype)
        load_params(m, params32)
        logits = m(images.to(dtype))
        loss = soft_ce(logits, soft.to(dtype)) if soft_target else ce_smooth(logits, labels)
        loss.backward()
        return float(loss), logits.detach(), {k: p.grad.detach().clone() for k, p in m.named_parameters()}

    loss64, logits64, g64 = run(torch.float64, False)
    sloss64, _, sg64 = run(torch.float64, True)
    loss32, logits32, g32 = run(torch.float32, False)
    sloss32, _, sg32 = run(torch.float32, True)

    tensors = {"images": images, "labels": labels, "soft_targets": soft}
    for k, v in params32.items():
        tensors["param." + k] = v
    tensors["logits"] = logits64.float()
    for k, v in g64.items():
        tensors["grad." + k] = v.float()
    for k, v in sg64.items():
        tensors["soft_grad." + k] = v.float()
    write_safetensors(os.path.join(out, "vit_tiny_step.safetensors"), tensors)

    max_abs = {"logits": maxabs(logits64)}
    diff = {"logits": maxabs(logits32.double() - logits64), "loss": abs(loss32 - loss64),
            "soft_loss": abs(sloss32 - sloss64)}
    for k in g64:
        max_abs["grad." + k] = maxabs(g64[k])
        max_abs["soft_grad." + k] = maxabs(sg64[k])
        diff["grad." + k] = maxabs(g32[k].double() - g64[k])
        diff["soft_grad." + k] = maxabs(sg32[k].double() - sg64[k])
    meta = {
        "description": "Whole tiny ViT, one forward/backward. loss = CE(label_smoothing=0.1, mean) on labels; "
        "soft_loss = mean(sum(-soft_targets * log_softmax(logits))) with soft_targets = mixup (lam 0.7, "
        "partner = labels.flip(0)) of label-smoothed (0.1) one-hots. grad.* = d loss / d param, "
        "soft_grad.* = d soft_loss / d param. Reference in float64 from the float32 inputs, stored as F32.",
        "config": dict(TINY, batch=BATCH, ln_eps=1e-6, gelu="erf", tokens=(TINY["img"] // TINY["patch"]) ** 2 + 1),
        "label_smoothing": SMOOTH,
        "mixup": {"lam": MIX_LAM, "partner": "labels.flip(0)", "off_value": SMOOTH / 10,
                  "on_value": 1 - SMOOTH + SMOOTH / 10},
        "param_names": list(params32.keys()),
        "param_shapes": {k: list(v.shape) for k, v in params32.items()},
        "param_init": "non-trivial test weights (weights ~ N(0,1/fan_in), biases ~ 0.1*N(0,1), LN weight ~ "
        "1+0.1*N(0,1), cls_token/pos_embed ~ 0.5*N(0,1)); NOT the timm init used by the training fixtures",
        "seed": 2002,
        "loss": loss64,
        "soft_loss": sloss64,
        "loss_fp32_torch": loss32,
        "soft_loss_fp32_torch": sloss32,
        "max_abs": max_abs,
        "fp32_torch_vs_fp64_max_abs_diff": diff,
    }
    with open(os.path.join(out, "vit_tiny_step.json"), "w") as f:
        json.dump(meta, f, indent=1)
    return meta


def training_data(n_steps, seed):
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    init = clone_params(VisionTransformer(**TINY))  # timm-style init, global RNG seeded above
    # learnable data: image = class prototype + noise, so a correct trainer shows a falling loss
    protos = torch.randn(TINY["classes"], TINY["chans"], TINY["img"], TINY["img"], generator=gen)
    labels = torch.randint(0, TINY["classes"], (n_steps, BATCH), generator=gen)
    noise = torch.randn(n_steps, BATCH, TINY["chans"], TINY["img"], TINY["img"], generator=gen)
    images = protos[labels] + 0.5 * noise
    return init, images.contiguous(), labels


def train_adamw(init, images, labels, dtype, lr, clip):
    m = VisionTransformer(**TINY).to(dtype)
    load_params(m, init)
    decay, no_decay = decay_groups(m)
    opt = torch.optim.AdamW(
        [{"params": [p for _, p in decay], "weight_decay": 0.05},
         {"params": [p for _, p in no_decay], "weight_decay": 0.0}],
        lr=lr, betas=(0.9, 0.999), eps=1e-8, foreach=False,
    )
    losses, norms = [], []
    for k in range(images.shape[0]):
        opt.zero_grad(set_to_none=True)
        loss = ce_smooth(m(images[k].to(dtype)), labels[k])
        loss.backward()
        losses.append(float(loss))
        if clip is not None:
            norms.append(float(torch.nn.utils.clip_grad_norm_(m.parameters(), clip)))
        opt.step()
    return losses, norms, clone_params(m)


@torch.no_grad()
def lamb_step(groups, state, lr, betas=(0.9, 0.999), eps=1e-6, max_grad_norm=1.0):
    """timm.optim.Lamb step (see header). groups: list of (weight_decay, [params]). Returns global grad norm."""
    b1, b2 = betas
    grads = [p.grad for _, ps in groups for p in ps]
    gn = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    clip = torch.clamp(gn / max_grad_norm, min=1.0)
    state["step"] = state.get("step", 0) + 1
    t = state["step"]
    bc1 = 1 - b1 ** t
    bc2 = 1 - b2 ** t
    for wd, ps in groups:
        for p in ps:
            g = p.grad / clip
            st = state.setdefault(id(p), {"m": torch.zeros_like(p), "v": torch.zeros_like(p)})
            st["m"].mul_(b1).add_(g, alpha=1 - b1)
            st["v"].mul_(b2).addcmul_(g, g, value=1 - b2)
            denom = (st["v"].sqrt() / math.sqrt(bc2)).add_(eps)
            u = (st["m"] / bc1).div_(denom)
            if wd != 0:
                u.add_(p, alpha=wd)
                w_norm = p.norm(2.0)
                u_norm = u.norm(2.0)
                one = torch.ones((), dtype=p.dtype)
                r = torch.where(w_norm > 0, torch.where(u_norm > 0, w_norm / u_norm, one), one)
                u.mul_(r)
            p.add_(u, alpha=-lr)
    return float(gn)


def train_lamb(init, images, labels, dtype, lr):
    m = VisionTransformer(**TINY).to(dtype)
    load_params(m, init)
    decay, no_decay = decay_groups(m)
    groups = [(0.05, [p for _, p in decay]), (0.0, [p for _, p in no_decay])]
    state = {}
    losses, norms = [], []
    for k in range(images.shape[0]):
        m.zero_grad(set_to_none=True)
        loss = ce_smooth(m(images[k].to(dtype)), labels[k])
        loss.backward()
        losses.append(float(loss))
        norms.append(lamb_step(groups, state, lr))
    return losses, norms, clone_params(m)


def make_training(out, name, kind, n_steps, lr, clip, seed):
    init, images, labels = training_data(20, seed)
    images, labels = images[:n_steps], labels[:n_steps]
    if kind == "adamw":
        l32, n32, p32 = train_adamw(init, images, labels, torch.float32, lr, clip)
        l64, n64, p64 = train_adamw(init, images, labels, torch.float64, lr, clip)
    else:
        l32, n32, p32 = train_lamb(init, images, labels, torch.float32, lr)
        l64, n64, p64 = train_lamb(init, images, labels, torch.float64, lr)

    tensors = {"images": images, "labels": labels}
    for k, v in init.items():
        tensors["init." + k] = v
    for k, v in p32.items():
        tensors["final." + k] = v.float()
    write_safetensors(os.path.join(out, name + ".safetensors"), tensors)

    m = VisionTransformer(**TINY)
    decay, no_decay = decay_groups(m)
    meta = {
        "config": dict(TINY, batch=BATCH, ln_eps=1e-6, gelu="erf"),
        "loss": "cross_entropy(label_smoothing=0.1), mean over batch",
        "steps": n_steps,
        "batch_for_step_k": "images[k], labels[k]",
        "dtype": "float32 (torch CPU)",
        "seed": seed,
        "param_init": "timm-style: trunc_normal(std .02) weights/cls_token/pos_embed, zero biases, unit LN weights",
        "param_names": list(init.keys()),
        "decay_params": [n for n, _ in decay],
        "no_decay_params": [n for n, _ in no_decay],
        "losses": l32,
        "losses_note": "losses[k] = loss of the forward on batch k with the params before update k",
        "losses_fp64": l64,
        "data": "images[k,b] = prototype[labels[k,b]] + 0.5 * N(0,1); 10 fixed N(0,1) prototypes [3,8,8]",
        "final_fp32_vs_fp64_max_abs_diff": max(maxabs(p32[k].double() - p64[k]) for k in p32),
        "final_fp32_vs_fp64_max_abs_diff_per_tensor": {k: maxabs(p32[k].double() - p64[k]) for k in p32},
        "final_fp32_vs_fp64_max_abs_diff_excl_k_bias": max(
            maxabs(drop_k_bias(k, p32[k].double() - p64[k])) for k in p32),
        "k_bias_note": "blocks.i.attn.qkv.bias[D:2D] (the key bias, D=32) has an exactly-zero true gradient "
        "(softmax is shift-invariant per query row); Adam/LAMB normalise the fp rounding noise into real steps, "
        "so these 32 entries per block depend on the implementation's rounding. Mask them (or compare them "
        "only loosely, <= steps*lr) when comparing final params.",
        "final_minus_init_max_abs": max(maxabs(p32[k] - init[k]) for k in p32),
    }
    if kind == "adamw":
        meta["optimizer"] = {"type": "torch.optim.AdamW", "torch_version": torch.__version__, "lr": lr,
                             "betas": [0.9, 0.999], "eps": 1e-8,
                             "weight_decay": {"decay_params": 0.05, "no_decay_params": 0.0},
                             "lr_schedule": "constant"}
        if clip is not None:
            meta["grad_clip"] = {"fn": "torch.nn.utils.clip_grad_norm_", "max_norm": clip, "norm_type": 2,
                                 "rule": "coef = max_norm / (total_norm + 1e-6); grads *= coef if coef < 1"}
            meta["grad_norms_before_clip"] = n32
            meta["grad_norms_before_clip_fp64"] = n64
            meta["steps_where_clipping_binds"] = sum(1 for n in n32 if n > clip)
    else:
        meta["optimizer"] = {"type": "LAMB (timm.optim.Lamb semantics, re-implemented)", "lr": lr,
                             "betas": [0.9, 0.999], "eps": 1e-6, "bias_correction": True,
                             "grad_averaging": True, "max_grad_norm": 1.0, "trust_clip": False,
                             "always_adapt": False, "decoupled_decay": False,
                             "weight_decay": {"decay_params": 0.05, "no_decay_params": 0.0},
                             "trust_ratio": "applied only to the decay group (wd != 0): ||p||/||u|| if both > 0 "
                             "else 1; the no-decay group takes an unscaled Adam step",
                             "grad_clip": "built in: grads divided by max(global_grad_norm / 1.0, 1) before "
                             "the moments (global norm over all params of both groups)"}
        meta["global_grad_norms"] = n32
        meta["global_grad_norms_fp64"] = n64
    with open(os.path.join(out, name + ".json"), "w") as f:
        json.dump(meta, f, indent=1)
    return meta


def self_checks():
    """Cheap consistency checks of the reference itself (raise on failure)."""
    gen = torch.Generator().manual_seed(7)
    m = VisionTransformer(**TINY).double()
    nontrivial_init(m, gen)
    x = torch.randn(2, 3, 8, 8, generator=gen, dtype=torch.float64)
    # patch embed == unfold in (c, ph, pw) order, row-major grid, times weight.reshape(D, C*p*p)
    p, C, D = TINY["patch"], TINY["chans"], TINY["dim"]
    patches = x.reshape(2, C, 2, p, 2, p).permute(0, 2, 4, 1, 3, 5).reshape(2, 4, C * p * p)
    ref = patches @ m.patch_embed.proj.weight.reshape(D, -1).T + m.patch_embed.proj.bias
    assert torch.allclose(m.patch_embed(x), ref, atol=1e-12), "patch embed layout"
    # state-dict names are exactly timm's
    names = list(dict(m.named_parameters()).keys())
    assert names[:4] == ["cls_token", "pos_embed", "patch_embed.proj.weight", "patch_embed.proj.bias"], names[:4]
    assert "blocks.1.attn.qkv.weight" in names and names[-2:] == ["head.weight", "head.bias"]
    # LAMB: a decay-group tensor moves by exactly lr * ||p|| (trust ratio), no-decay ones do not
    decay, no_decay = decay_groups(m)
    before = {n: q.detach().clone() for n, q in m.named_parameters()}
    ce_smooth(m(x), torch.tensor([1, 2])).backward()
    lamb_step([(0.05, [q for _, q in decay]), (0.0, [q for _, q in no_decay])], {}, lr=1e-2)
    for n, q in decay:
        step = (q.detach() - before[n]).norm()
        assert abs(step - 1e-2 * before[n].norm()) < 1e-9, n


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "..", "test", "fixtures"))
    args = ap.parse_args()
    out = os.path.normpath(args.out)
    os.makedirs(out, exist_ok=True)
    print("torch", torch.__version__, "threads", torch.get_num_threads(), "->", out, file=sys.stderr)

    self_checks()
    make_vit_block(out)
    make_vit_tiny_step(out)
    make_training(out, "vit_tiny_adamw20", "adamw", 20, 1e-3, None, 3003)
    make_training(out, "vit_tiny_adamw20_clip", "adamw", 20, 5e-3, 1.0, 3003)
    make_training(out, "vit_tiny_lamb", "lamb", 5, 1e-2, None, 3003)
    make_twins(out, write_safetensors)
    make_data_parity(out, write_safetensors)

    # self-check: the files read back bit-exactly
    total = 0
    for fn in sorted(os.listdir(out)):
        p = os.path.join(out, fn)
        total += os.path.getsize(p)
        if fn.endswith(".safetensors"):
            ts = read_safetensors(p)
            print(f"{fn}: {len(ts)} tensors, {os.path.getsize(p)} bytes", file=sys.stderr)
    print(f"total {total} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
