#!/usr/bin/env python3
"""Generate a tiny, random-weights checkpoint laid out like Stable Diffusion 1.5.

ComfyUI's CheckpointLoaderSimple accepts it as an SD1.5 model, so the standard
text-to-image graph (CheckpointLoaderSimple -> CLIPTextEncode -> KSampler ->
VAEDecode -> SaveImage) runs end to end on a CPU in about a second. The
pictures are noise; only the plumbing is real.

Run it with the python of the ComfyUI venv:

    venv/bin/python make_tiny_checkpoint.py --comfyui COMFY_TREE --out FILE

How the parts are sized (ComfyUI reads most of the shape from the weights):

* UNet, keys ``model.diffusion_model.*``: ComfyUI only calls a UNet SD1.5 when
  model_channels is 320 and the cross-attention context is 768 wide, with no
  linear proj_in and no ADM input. Everything else is cut down: one resolution
  level, one res block with one transformer block, no middle block.
* VAE, keys ``first_stage_model.*``: a TAESD encoder/decoder. ComfyUI switches
  its VAE class to TAESD when it sees ``taesd_decoder.1.weight``; a full KL
  autoencoder would be 83 M parameters.
* Text encoder, keys ``cond_stage_model.transformer.text_model.*``: the SD1
  CLIP-L config is fixed inside ComfyUI, so all of CLIP-L has to be present. It
  is stored in fp16 (default) or fp8 to keep the file small.

All models are built with ComfyUI's own classes so the key names and shapes
are exactly what its loader expects. Weights come from one seeded generator,
so the same seed gives a byte-identical file.
"""

import argparse
import json
import os
import sys
import time

CLIP_DTYPES = ("fp16", "fp8", "fp32")


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--comfyui", required=True, help="ComfyUI source tree (holds main.py and comfy/)")
    p.add_argument("--out", required=True, help="where to write the .safetensors file")
    p.add_argument("--seed", type=int, default=1234, help="seed for the random weights (default 1234)")
    p.add_argument("--clip-dtype", choices=CLIP_DTYPES, default="fp16",
                   help="storage type of the text encoder (default fp16; fp8 roughly halves the file)")
    return p.parse_args(argv)


def load_comfy(tree):
    """Import the ComfyUI modules we need, forced onto the CPU."""
    tree = os.path.abspath(tree)
    if not os.path.isfile(os.path.join(tree, "comfy", "sd1_clip_config.json")):
        sys.exit(f"make_tiny_checkpoint: {tree} does not look like a ComfyUI tree")
    sys.path.insert(0, tree)
    # comfy.model_management picks its device at import time; say "cpu" first.
    from comfy.cli_args import args as comfy_cli
    comfy_cli.cpu = True
    import comfy.ops
    from comfy.clip_model import CLIPTextModel
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel
    from comfy.taesd.taesd import TAESD
    return tree, comfy.ops.disable_weight_init, UNetModel, CLIPTextModel, TAESD


def build_models(tree, ops, UNetModel, CLIPTextModel, TAESD, torch):
    unet = UNetModel(
        image_size=32,
        in_channels=4,
        out_channels=4,
        model_channels=320,          # SD1.5 detection needs 320 ...
        context_dim=768,             # ... and a 768-wide context
        num_res_blocks=[1],
        channel_mult=[1],            # a single level: no down/up sampling
        transformer_depth=[1],
        transformer_depth_output=[0, 0],
        transformer_depth_middle=-2,  # -2: no middle block at all
        num_heads=8,
        use_spatial_transformer=True,
        use_linear_in_transformer=False,
        legacy=False,
        adm_in_channels=None,
        dtype=torch.float32,
        device="cpu",
        operations=ops,
    )
    with open(os.path.join(tree, "comfy", "sd1_clip_config.json")) as f:
        clip_config = json.load(f)
    clip = CLIPTextModel(clip_config, torch.float32, "cpu", ops)
    vae = TAESD(latent_channels=4)
    return unet, clip, vae


def randomize(state_dict, gen, std, torch):
    """Fresh tensors with the same shapes: norms scale 1, biases 0, the rest N(0, std)."""
    out = {}
    for name, ref in state_dict.items():
        if not torch.is_floating_point(ref):
            out[name] = ref.detach().clone()
            continue
        if name.endswith(".bias"):
            t = torch.zeros(ref.shape, dtype=torch.float32)
        elif ref.dim() == 1 and "norm" in name:
            t = torch.ones(ref.shape, dtype=torch.float32)
        else:
            t = torch.randn(ref.shape, generator=gen, dtype=torch.float32) * std
        out[name] = t
    return out


def main(argv):
    opts = parse_args(argv)
    started = time.time()
    tree, ops, UNetModel, CLIPTextModel, TAESD = load_comfy(opts.comfyui)
    import torch
    from safetensors.torch import save_file

    unet, clip, vae = build_models(tree, ops, UNetModel, CLIPTextModel, TAESD, torch)
    gen = torch.Generator().manual_seed(opts.seed)
    clip_dtype = {"fp16": torch.float16, "fp8": torch.float8_e4m3fn, "fp32": torch.float32}[opts.clip_dtype]

    tensors = {}
    for name, t in randomize(unet.state_dict(), gen, 0.02, torch).items():
        tensors["model.diffusion_model." + name] = t.to(torch.float16)
    for name, t in randomize(clip.state_dict(), gen, 0.02, torch).items():
        if name.startswith("text_projection"):
            continue  # SD1.5 checkpoints carry no projection for the text encoder
        tensors["cond_stage_model.transformer." + name] = t.to(clip_dtype)
    vae_sd = randomize(vae.state_dict(), gen, 0.05, torch)
    vae_sd["vae_scale"] = torch.tensor(1.0)
    vae_sd["vae_shift"] = torch.tensor(0.0)
    for name, t in vae_sd.items():
        tensors["first_stage_model." + name] = t.to(torch.float16)

    out = os.path.abspath(opts.out)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    tmp = out + ".partial"
    save_file({k: v.contiguous() for k, v in tensors.items()}, tmp,
              # One key only: safetensors writes its metadata map in an arbitrary order, and
              # several keys would make otherwise identical files differ byte for byte.
              metadata={"darkroom": f"tiny random-weights SD1.5-layout test checkpoint; "
                                    f"seed={opts.seed} clip_dtype={opts.clip_dtype}"})
    os.replace(tmp, out)

    def count(prefix):
        return sum(v.numel() for k, v in tensors.items() if k.startswith(prefix)) / 1e6

    print(f"wrote {out} ({os.path.getsize(out) / 1e6:.1f} MB) in {time.time() - started:.1f} s: "
          f"unet {count('model.'):.1f}M, clip {count('cond_stage_model.'):.1f}M, "
          f"vae {count('first_stage_model.'):.2f}M params")


if __name__ == "__main__":
    main(sys.argv[1:])
