"""Twin fixtures: Deep Incubation stage by stage in plain PyTorch (no timm, no code of ours).

Imported by make_fixtures.py. From one set of initial weights and one set of batches it runs
every stage of the method for 20 steps each and records the trajectory:

    pretrain    the meta model (one block per module) end to end
    modular_i   the hybrid of MT job i for the first, a middle and the last module: the meta
                model (PT's final weights, frozen, requires_grad False) with stage i replaced
                by target module i; only module i is in the optimizer; gradients reach it
                through the frozen meta blocks after it
    assembled   stage i of the target from MT job i (embeddings from module 0, norm + head
                from module K-1), nothing from the meta model
    finetune    the assembled model end to end, gradient clipping 1.0, no warmup
    e2e         the target end to end from its own initial weights

Recipe (the official code's, scaled to 20 steps): AdamW (betas .9/.999, eps 1e-8), weight decay
0.05 except on 1-D tensors (biases, LayerNorms) and cls_token / pos_embed; peak lr
baseLr * batch / 512 with linear warmup over round(warmup_fraction * steps) steps, then cosine to
min_lr; label smoothing 0.1; stochastic depth linspace(0, rate, depth) over the network's own
depth (the hybrid's in MT), active in the frozen meta blocks too, drawn independently for the
attention and the MLP branch of every block (timm's DropPath is called once per branch). The
draws (0/1 per sample) are written so the engine can replay them. Augmentation is off: the
batches are the network's inputs.
"""
import copy
import json
import math
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

STEPS = 20
BATCH = 4
CFG = dict(img=8, patch=4, chans=3, classes=10, dim=16, heads=2, mlp_ratio=4.0)
TARGET_DEPTH = 4
SPLIT = [2, 1, 1]  # K = 3: module 0 has two blocks (the engine's default split of 4 into 3)
RECIPE = dict(
    name="deit",
    baseLr=0.256,  # peak 0.256 * 4 / 512 = 2e-3
    minLr=1e-5,
    warmupFraction=0.2,  # 4 warmup steps (FT: none)
    # 10x the recipe's 0.05 so that a tensor put in the wrong group shows over 20 steps (at 0.05 a
    # decayed cls_token moves < 6e-5, below what fp32 can tell apart from the Adam step).
    weightDecay=0.5,
    batchSize=BATCH,
    labelSmoothing=0.1,
    mixup=0,
    cutmix=0,
    augment={},
    dropPath=dict(pretrain=0, modular=0.1, finetune=0.1, e2e=0.1),
    clipGradNorm=dict(pretrain=0, modular=0, finetune=1.0, e2e=0),
    steps=dict(pretrain=STEPS, modular=STEPS, finetune=STEPS, e2e=STEPS),
)


# ----------------------------------------------------------------------------- the network


class DropPath(nn.Module):
    """timm DropPath: x * bernoulli(keep) / keep per sample; the draws are logged for replay."""

    def __init__(self, rate, log):
        super().__init__()
        self.rate = rate
        self.log = log

    def forward(self, x):
        b = x.shape[0]
        if self.rate == 0 or not self.training:
            self.log.append(torch.ones(b))
            return x
        keep = 1.0 - self.rate
        draw = torch.bernoulli(torch.full((b,), keep), generator=self.log.gen)
        self.log.append(draw)
        return x * (draw / keep).to(x.dtype).view(b, 1, 1)


class DrawLog(list):
    def __init__(self, gen):
        super().__init__()
        self.gen = gen


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, t, d = x.shape
        hd = d // self.heads
        q, k, v = self.qkv(x).reshape(b, t, 3, self.heads, hd).permute(2, 0, 3, 1, 4)
        a = torch.softmax((q @ k.transpose(-2, -1)) / math.sqrt(hd), dim=-1)
        return self.proj((a @ v).transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    def __init__(self, dim, heads, mlp_ratio):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential()
        self.mlp.fc1 = nn.Linear(dim, hidden)
        self.mlp.act = nn.GELU()
        self.mlp.fc2 = nn.Linear(hidden, dim)
        self.drop_path1 = None  # set by the network that runs the block (its position's rate)
        self.drop_path2 = None

    def forward(self, x):
        x = x + self.drop_path1(self.attn(self.norm1(x)))
        return x + self.drop_path2(self.mlp(self.norm2(x)))


class Vit(nn.Module):
    """timm VisionTransformer (cls token, pre-norm); parameter names as timm's state dict."""

    def __init__(self, depth, **cfg):
        super().__init__()
        d, p, c = cfg["dim"], cfg["patch"], cfg["chans"]
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(c, d, kernel_size=p, stride=p)
        n = (cfg["img"] // p) ** 2
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embed = nn.Parameter(torch.zeros(1, n + 1, d))
        self.blocks = nn.ModuleList([Block(d, cfg["heads"], cfg["mlp_ratio"]) for _ in range(depth)])
        self.norm = nn.LayerNorm(d, eps=1e-6)
        self.head = nn.Linear(d, cfg["classes"])
        self.timm_init()

    @torch.no_grad()
    def timm_init(self):
        """As the official code's timm VisionTransformer: pos_embed and cls_token trunc_normal(.02),
        Linear trunc_normal(.02) with zero bias, LayerNorm ones / zeros, the patch Conv2d left at
        PyTorch's default (kaiming_uniform_(a=sqrt(5)) and its bias init)."""
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)


class Network(nn.Module):
    """Embedding, a sequence of blocks, norm + head, each possibly from a different model.

    A plain ViT is Network(vit, vit.blocks, vit); MT job i's hybrid takes the embedding from
    module 0's owner, block j from the meta model or the target, and the head from module K-1's.
    """

    def __init__(self, embed_from, blocks, head_from, drop_rate, log):
        super().__init__()
        self.embed_from = embed_from
        self.seq = list(blocks)
        self.head_from = head_from
        depth = len(self.seq)
        rates = [float(r) for r in torch.linspace(0, drop_rate, depth)]
        for blk, r in zip(self.seq, rates):
            blk.drop_path1 = DropPath(r, log)
            blk.drop_path2 = DropPath(r, log)
        self.depth = depth

    def forward(self, images):
        e = self.embed_from
        x = e.patch_embed.proj(images).flatten(2).transpose(1, 2)
        x = torch.cat([e.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + e.pos_embed
        for blk in self.seq:
            x = blk(x)
        h = self.head_from
        return h.head(h.norm(x)[:, 0])


# ----------------------------------------------------------------------------- the recipe


def lr_at(step, steps, warmup, peak, min_lr):
    """Linear warmup to peak over `warmup` steps (step k uses (k+1)/warmup), then cosine to min_lr."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return min_lr + 0.5 * (peak - min_lr) * (1 + math.cos(math.pi * progress))


def param_groups(named):
    """The recipe's AdamW groups: no decay on 1-D tensors and cls_token / pos_embed."""
    decay, no_decay = [], []
    for name, p in named:
        (no_decay if p.ndim <= 1 or name.endswith(("cls_token", "pos_embed")) else decay).append(p)
    return [{"params": decay, "weight_decay": RECIPE["weightDecay"]}, {"params": no_decay, "weight_decay": 0.0}]


def train(net, trainable, phase, images, labels):
    """20 steps of the recipe's phase: losses, lrs, drop-path draws [S, depth, 2, B], per-step parameter
    norms and (with clipping) the gradient norms before clipping."""
    steps = RECIPE["steps"][phase]
    peak = RECIPE["baseLr"] * RECIPE["batchSize"] / 512
    warmup = 0 if phase == "finetune" else round(RECIPE["warmupFraction"] * steps)
    clip = RECIPE["clipGradNorm"][phase]
    opt = torch.optim.AdamW(param_groups(trainable), lr=peak, betas=(0.9, 0.999), eps=1e-8, foreach=False)
    net.train()
    losses, draws, lrs, norms, grad_norms = [], [], [], [], []
    log = net.seq[0].drop_path1.log
    for k in range(steps):
        lr = lr_at(k, steps, warmup, peak, RECIPE["minLr"])
        for g in opt.param_groups:
            g["lr"] = lr
        lrs.append(lr)
        opt.zero_grad(set_to_none=True)
        log.clear()
        dtype = next(net.embed_from.parameters()).dtype
        loss = F.cross_entropy(net(images[k].to(dtype)), labels[k], label_smoothing=RECIPE["labelSmoothing"])
        loss.backward()
        if clip > 0:
            grad_norms.append(float(torch.nn.utils.clip_grad_norm_([p for _, p in trainable], clip)))
        opt.step()
        losses.append(float(loss))
        draws.append(torch.stack(list(log)).view(net.depth, 2, -1))
        norms.append([tensor_norm(n, p) for n, p in trainable])
    if clip > 0:  # clipping must bind on most steps, or the fixture would not test it
        assert sum(n > clip for n in grad_norms) >= steps // 2, grad_norms
    return dict(losses=losses, draws=torch.stack(draws), lrs=lrs, norms=norms, grad_norms=grad_norms)


def tensor_norm(name, p):
    """L2 norm of a parameter, without the key bias (its true gradient is exactly 0, see README)."""
    t = p.detach().double().flatten()
    if name.endswith("attn.qkv.bias"):
        d = t.shape[0] // 3
        t = torch.cat([t[:d], t[2 * d:]])
    return float(t.norm())


# ----------------------------------------------------------------------------- the stages


def state(module, prefix=""):
    return {prefix + k: v.detach().clone() for k, v in module.named_parameters()}


def load(module, values, dtype):
    module.to(dtype)
    with torch.no_grad():
        for k, p in module.named_parameters():
            p.copy_(values[k].to(dtype))
    return module


def module_blocks(index):
    start = sum(SPLIT[:index])
    return list(range(start, start + SPLIT[index]))


def module_names(index, names):
    """The target parameter names module `index` owns."""
    k = len(SPLIT)
    owned = [f"blocks.{b}." for b in module_blocks(index)]
    out = []
    for n in names:
        if any(n.startswith(o) for o in owned):
            out.append(n)
        elif index == 0 and (n.startswith("patch_embed.") or n in ("cls_token", "pos_embed")):
            out.append(n)
        elif index == k - 1 and (n.startswith("norm.") or n.startswith("head.")):
            out.append(n)
    return out


def run_plain(depth, init, phase, data, dtype, seed):
    vit = load(Vit(depth, **CFG), init, dtype)
    log = DrawLog(torch.Generator().manual_seed(seed))
    net = Network(vit, vit.blocks, vit, RECIPE["dropPath"][phase], log)
    run = train(net, list(vit.named_parameters()), phase, *data)
    return dict(run, final=state(vit), names=[n for n, _ in vit.named_parameters()])


def run_modular(index, meta_values, target_init, data, dtype, seed):
    k = len(SPLIT)
    meta = load(Vit(k, **CFG), meta_values, dtype)
    for p in meta.parameters():
        p.requires_grad_(False)
    target = load(Vit(TARGET_DEPTH, **CFG), target_init, dtype)
    owned = module_names(index, [n for n, _ in target.named_parameters()])
    named = dict(target.named_parameters())
    for n, p in named.items():
        p.requires_grad_(n in owned)
    blocks = []
    for j in range(k):
        blocks += [target.blocks[b] for b in module_blocks(j)] if j == index else [meta.blocks[j]]
    log = DrawLog(torch.Generator().manual_seed(seed))
    net = Network(target if index == 0 else meta, blocks, target if index == k - 1 else meta,
                  RECIPE["dropPath"]["modular"], log)
    trainable = [(n, named[n]) for n in owned]
    run = train(net, trainable, "modular", *data)
    final = {n: named[n].detach().clone() for n in owned}
    frozen_moved = max(float((p.detach() - meta_values[n].to(dtype)).abs().max()) for n, p in meta.named_parameters())
    assert frozen_moved == 0.0, f"a frozen meta parameter moved by {frozen_moved}"
    # module i alone moved among the target's parameters
    for n, p in named.items():
        if n not in owned:
            assert torch.equal(p.detach(), target_init[n].to(dtype)), n
    return dict(run, final=final, names=owned)


def assemble(module_finals):
    out = {}
    for i, final in enumerate(module_finals):
        for n, v in final.items():
            assert n not in out, n
            out[n] = v
    return out


def learnable_data(seed):
    gen = torch.Generator().manual_seed(seed)
    c, s = CFG["chans"], CFG["img"]
    protos = torch.randn(CFG["classes"], c, s, s, generator=gen)
    labels = torch.randint(0, CFG["classes"], (STEPS, BATCH), generator=gen)
    images = protos[labels] + 0.5 * torch.randn(STEPS, BATCH, c, s, s, generator=gen)
    return images.contiguous(), labels


def maxabs(t):
    return float(t.detach().abs().max()) if t.numel() else 0.0


def drift(a, b):
    """Largest fp32-vs-fp64 difference over tensors, key bias excluded."""
    worst = 0.0
    for n in a:
        d = (a[n].double() - b[n].double()).flatten()
        if n.endswith("attn.qkv.bias"):
            m = d.shape[0] // 3
            d = torch.cat([d[:m], d[2 * m:]])
        worst = max(worst, maxabs(d))
    return worst


def make_twins(out, write_safetensors):
    torch.manual_seed(4004)
    target_init = state(Vit(TARGET_DEPTH, **CFG))
    meta_init = state(Vit(len(SPLIT), **CFG))
    data = learnable_data(4005)

    stages = {}

    def both(fn, *args):
        r32 = fn(*args, torch.float32)
        r64 = fn(*args, torch.float64)
        r32["fp64_losses"] = r64["losses"]
        r32["fp64_drift"] = drift(r32["final"], r64["final"])
        assert torch.equal(r32["draws"], r64["draws"])
        return r32, r64

    pt, pt64 = both(lambda dt: run_plain(len(SPLIT), meta_init, "pretrain", data, dt, 11))
    stages["pretrain"] = pt
    mt, mt64 = [], []
    for i in range(len(SPLIT)):
        r, r64 = both(lambda dt, i=i: run_modular(i, pt["final"] if dt == torch.float32 else pt64["final"],
                                                   target_init, data, dt, 20 + i))
        stages[f"modular_{i}"] = r
        mt.append(r["final"])
        mt64.append(r64["final"])
    assembled = assemble(mt)
    assembled64 = assemble(mt64)
    ft, _ = both(lambda dt: run_plain(TARGET_DEPTH, assembled if dt == torch.float32 else assembled64,
                                      "finetune", data, dt, 30))
    stages["finetune"] = ft
    e2e, _ = both(lambda dt: run_plain(TARGET_DEPTH, target_init, "e2e", data, dt, 40))
    stages["e2e"] = e2e

    tensors = {"images": data[0], "labels": data[1]}
    for n, v in meta_init.items():
        tensors["meta_init." + n] = v
    for n, v in target_init.items():
        tensors["target_init." + n] = v
    for n, v in assembled.items():
        tensors["assembled." + n] = v
    for name, r in stages.items():
        tensors[f"{name}.draws"] = r["draws"].float()
        for n, v in r["final"].items():
            tensors[f"{name}.final.{n}"] = v.float()
    write_safetensors(os.path.join(out, "twins.safetensors"), tensors)

    meta = {
        "description": "Deep Incubation stage by stage in plain PyTorch (scripts/reference/twins.py): "
        "PT, MT for modules 0..K-1, assembly, FT with clipping, E2E; 20 steps each from the stored "
        "initial weights on the stored batches.",
        "torch_version": torch.__version__,
        "config": dict(CFG, target_depth=TARGET_DEPTH, split=SPLIT, batch=BATCH, ln_eps=1e-6, gelu="erf"),
        "recipe": RECIPE,
        "steps": STEPS,
        "stages": {},
        "tensors": "images [S,B,C,H,W], labels [S,B]; meta_init.*, target_init.*, assembled.*; "
        "<stage>.final.* (trainable parameters after 20 steps, timm names); <stage>.draws [S, depth, 2, B] "
        "(drop-path bernoulli draws, 0 or 1: block j's attention branch [.., j, 0, ..], MLP branch [.., j, 1, ..])",
        "k_bias_note": "blocks.i.attn.qkv.bias[D:2D] has an exactly-zero true gradient; masked in finals and norms",
    }
    for name, r in stages.items():
        meta["stages"][name] = {
            "trainable": r["names"],
            "losses": r["losses"],
            "losses_fp64": r["fp64_losses"],
            "lrs": r["lrs"],
            "param_norms_after_step": r["norms"],
            "final_fp32_vs_fp64_max_abs_diff": r["fp64_drift"],
            "drop_path_depth": int(r["draws"].shape[1]),
            **({"grad_norms_before_clip": r["grad_norms"]} if r["grad_norms"] else {}),
        }
    with open(os.path.join(out, "twins.json"), "w") as f:
        json.dump(meta, f, indent=1)
    return meta
