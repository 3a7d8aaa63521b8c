"""Package a training run as a model folder in the layout model hubs use, with its model card.

    python tools/ship_model.py RUN_DIR pretrained/faces

writes into the output folder: ``model.safetensors`` (the run's newest parameters, its config in
the metadata), ``config.json`` (the same config), ``history.json`` (the run's curves, at most
``MAX_STEP_RECORDS`` of its step records), the figures
of ``evaluate.py``, ``interpolate.py`` and ``plots.py`` under ``figures/``, ``metrics.json`` and
``disentanglement.json`` (``metrics.py`` and ``disentangle.py`` on the shipped file), and
``README.md``, the model card: what it was trained on, the command, the time and hardware, the
test metrics beside the baselines, the disentanglement scores and the licence. Every number in
the card is read from those files.
"""
import argparse
import json
import os
import platform
import shutil
from pathlib import Path

import jax

import disentangle
import evaluate
import interpolate
import metrics
import plots
from model import save_params
from training import RunDir, load_run

MAX_STEP_RECORDS = 1000  # of the shipped history: its curves, not the run's every logged step


def cpu_name() -> str:
    """The CPU's model name and its widest vector ISA, from /proc/cpuinfo."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "?")
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), [])
    isa = next((i for i in ("amx_bf16", "avx512f", "avx2") if i in flags), "")
    return f"{name} ({isa.replace('_', '-').upper()})" if isa else name


def thinned(history: dict, most: int = MAX_STEP_RECORDS) -> dict:
    """``history`` with at most ``most`` step records, evenly spaced, the last one kept; every epoch kept."""
    steps = history.get("steps") or []
    stride = max(1, -(-len(steps) // most))
    return dict(history, steps=[s for i, s in enumerate(steps) if (len(steps) - 1 - i) % stride == 0])


def write_card(out: Path, run: RunDir) -> None:
    """README.md of the folder, from its config, history, metrics and disentanglement scores."""
    config = json.loads((out / "config.json").read_text())
    history = json.loads((out / "history.json").read_text())
    m = json.loads((out / "metrics.json").read_text())
    d = json.loads((out / "disentanglement.json").read_text())
    epochs, steps = history["epochs"], history["steps"]
    minutes = epochs[-1]["wall_time"] / 60
    data, arch, hp, runopts = config["data"], config["model"], config["hparams"], config["run"]
    base = m["baselines"]
    rows = [("SSIM (Wang et al. 2004, 11×11 Gaussian window)", "ssim", ".4f"),
            ("PSNR (dB, mean of per-image)", "psnr", ".2f"),
            ("reconstruction loss (Σ squared error per image)", "recon_loss", ".2f"),
            ("global SSIM (the seed's single-window definition)", "ssim_global", ".4f")]
    table = "\n".join(f"| {label} | {m[k]:{spec}} | {base['mean_image'][k]:{spec}} | {base['black'][k]:{spec}} |"
                      for label, k, spec in rows)
    commands = "\n".join(history.get("commands") or ["(not recorded)"])
    card = f"""---
license: mit
library_name: bvaex
tags: [beta-vae, vae, jax, safetensors]
---

# bvaex β-VAE, trained on the embedded faces

The seed architecture of [bvaex](../../README.md) (three stride-2 convolutions, a
{arch['latent_dim']}-dimensional Gaussian latent, three transposed convolutions; β = {hp['beta']:g}),
every gradient written by hand in JAX, trained on the procedural cartoon faces that bvaex
generates itself (`imagedata/faces.py`, eleven known factors; [docs/faces.md](../../docs/faces.md)).
No third-party images were used, so the weights carry the repository's MIT licence.

| file | what |
|---|---|
| `model.safetensors` | the parameters, named and shaped like a PyTorch `state_dict`; the run's config in the metadata |
| `config.json` | the run's config (data, architecture, hyperparameters, run options) |
| `history.json` | every logged step and epoch of the run |
| `metrics.json`, `disentanglement.json` | the scores below |
| `figures/` | reconstructions, samples, traversals, interpolations, loss curves |

## How it was made

```bash
{commands}
python tools/ship_model.py {run.root} pretrained/faces
```

{len(epochs)} epochs of {data['limit']:,} training faces, batch {runopts['batch_size']}
({steps[-1]['step']:,} steps), AdamW lr {hp['lr']:g} with a {runopts['lr_schedule']} schedule, weight decay
{hp['weight_decay']:g}, seed {runopts['seed']}: {minutes:.0f} minutes of training on {cpu_name()},
{os.cpu_count()} cores, jax {jax.__version__}.

## Test metrics

`python metrics.py --weights pretrained/faces` on the first {m['num_images']:,} test faces (held
out: their factor combinations never occur in training), beside two outputs that ignore the input:

| metric | model | mean training image | black |
|---|---|---|---|
{table}

KL per image {m['kl']:.2f} nats; {m['active_units']} of {m['latent_dim']} latent units active
(Var μ > {m['active_threshold']:g}).

## Disentanglement

`python disentangle.py --weights pretrained/faces`: β-VAE metric (Higgins et al. 2017)
{100 * d['beta_vae']['test_accuracy']:.1f} % (chance {100 * d['beta_vae']['chance']:.1f} %), MIG (Chen et al. 2018)
{d['mig']['mig']:.3f}. At β = {hp['beta']:g} the code is far from disentangled: it is a model for
reconstructions, not for factor discovery.

## Figures

![reconstructions](figures/reconstruction_grid.png)
![samples](figures/generated_faces.png)
![traversals](figures/latent_traversals.png)
![interpolation](figures/latent_interpolation.png)
![loss curves](figures/loss_curves.png)

## Using it

With bvaex: `python evaluate.py`, `metrics.py`, `interpolate.py` and `plots.py` use this model
when no run of your own is in `weights/`; `--weights pretrained/faces` names it anywhere, and
`python train.py --dataset faces --init-from pretrained/faces` fine-tunes it. In PyTorch:
`model.load_state_dict(safetensors.torch.load_file("model.safetensors"), strict=True)` with the
module of [docs/pytorch.md](../../docs/pytorch.md).
"""
    (out / "README.md").write_text(card)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="the training run's folder (its newest epoch_N/ is shipped)")
    parser.add_argument("out", help="the model folder to write (replaced)")
    args = parser.parse_args(argv)
    run, out = RunDir(args.run), Path(args.out)
    params, config = load_run(weights_dir=run.root)
    shutil.rmtree(out, ignore_errors=True)
    (out / "figures").mkdir(parents=True)
    save_params(out / RunDir.PARAMS_FILE, params, config.as_dict())
    (out / "config.json").write_text(json.dumps(config.as_dict(), indent=2) + "\n")
    (out / RunDir.HISTORY_FILE).write_text(json.dumps(thinned(json.loads(run.history.read_text()))))
    weights = ["--weights", str(out)]
    for script, extra in ((evaluate, ["--out-dir", str(out / "figures")]),
                          (interpolate, ["--out-dir", str(out / "figures")]),
                          (metrics, ["--out-dir", str(out)]), (disentangle, ["--out-dir", str(out)])):
        assert script.main(weights + extra) == 0, script.__name__
    assert plots.main(["--history", str(out / RunDir.HISTORY_FILE), "--out-dir", str(out / "figures"), "--log"]) == 0
    write_card(out, run)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
