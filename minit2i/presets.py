"""The one place that says how big each model is and how long it trains, per preset.

``RECIPES[name][preset]`` is a dict with ``model`` (the model's config fields) and ``train``
(steps, batch size, learning rate, ...). ``smoke`` must run in seconds on a CPU (CI), ``cpu`` in
minutes on a laptop (a chapter in at most about 20 on two cores: the text-to-image chapters need
tokenizers good enough to draw small shapes), ``full`` in minutes on one GPU. Read it with
``recipe(name, preset)``.
"""

from __future__ import annotations

import copy

from .config import PRESETS, preset_name

RECIPES: dict[str, dict[str, dict]] = {
    # A tiny model used by the tests of train-or-load.
    "toy": {
        "smoke": {"model": {"width": 8}, "train": {"steps": 5, "lr": 1e-2}},
        "cpu": {"model": {"width": 16}, "train": {"steps": 50, "lr": 1e-2}},
        "full": {"model": {"width": 32}, "train": {"steps": 500, "lr": 1e-2}},
    },
    # --- chapter 1: gan.py ---------------------------------------------------------------
    "shapes_gan": {
        "smoke": {"model": {"z_dim": 16, "width": 8},
                  "train": {"steps": 30, "batch_size": 32, "lr": 2e-4, "n_images": 256,
                            "log_every": 5}},
        "cpu": {"model": {"z_dim": 64, "width": 16},
                "train": {"steps": 1500, "batch_size": 64, "lr": 5e-4, "n_images": 5000}},
        "full": {"model": {"z_dim": 100, "width": 64},
                 "train": {"steps": 8000, "batch_size": 128, "lr": 2e-4, "n_images": 50000}},
    },
    # --- chapter 2: transformer.py ------------------------------------------------------
    # The chapter's two tiny experiments: a patch transformer that reads colour, shape and
    # position off a Shapes image, and a caption language model (with and without the mask).
    "shapes_vit": {
        "smoke": {"model": {"dim": 32, "depth": 1, "n_heads": 2, "patch": 8},
                  "train": {"steps": 40, "batch_size": 32, "n_train": 512, "n_val": 256,
                            "lr": 1e-3}},
        "cpu": {"model": {"dim": 64, "depth": 2, "n_heads": 4, "patch": 8},
                "train": {"steps": 1500, "batch_size": 64, "n_train": 6000, "n_val": 1000,
                          "lr": 1e-3}},
        "full": {"model": {"dim": 128, "depth": 4, "n_heads": 4, "patch": 8},
                 "train": {"steps": 3000, "batch_size": 256, "n_train": 20000, "n_val": 2000,
                           "lr": 1e-3}},
    },
    "caption_lm": {
        "smoke": {"model": {"dim": 32, "depth": 1, "n_heads": 2},
                  "train": {"steps": 40, "batch_size": 32, "n_train": 512, "lr": 3e-3}},
        "cpu": {"model": {"dim": 64, "depth": 2, "n_heads": 4},
                "train": {"steps": 400, "batch_size": 64, "n_train": 4000, "lr": 3e-3}},
        "full": {"model": {"dim": 128, "depth": 2, "n_heads": 4},
                 "train": {"steps": 1500, "batch_size": 128, "n_train": 10000, "lr": 2e-3}},
    },
    # --- chapter 3: vq.py ----------------------------------------------------------------
    # 512 codes of dimension 16 on an 8 x 8 grid; the image tokenizer of chapter 6 when no
    # VQGAN is trained. lr 1e-3 with warmup: much higher and it collapses to the background.
    # fg_weight 9: pixels near objects count ten times (minit2i.vq.reconstruction_loss). What
    # the judge makes of cpu reconstructions (benchmarks/tokenizer_ceiling.py, one object right):
    # 800 steps plain 0.38; 2400 steps plain 0.86, weighted 0.90. Length matters most; the
    # weight makes the objects come early (chapter 3: 600 steps, 0.32 plain, 0.47 weighted).
    "vqvae": {
        "smoke": {"model": {"channels": 16, "num_codes": 512},
                  "train": {"steps": 20, "batch_size": 16, "n_train": 256, "lr": 1e-3,
                            "warmup": 5, "restart_every": 10, "fg_weight": 9.0}},
        "cpu": {"model": {"channels": 16, "num_codes": 512},
                "train": {"steps": 2400, "batch_size": 32, "n_train": 8000, "lr": 1e-3,
                          "warmup": 50, "restart_every": 100, "fg_weight": 9.0}},
        "full": {"model": {"channels": 64, "num_codes": 512},
                 "train": {"steps": 6000, "batch_size": 256, "n_train": 50000, "lr": 1e-3,
                           "warmup": 200, "restart_every": 250, "fg_weight": 9.0}},
    },
    # Chapter 3's trap: a plain VQ-VAE trained briefly at a sane and at a too-high learning rate.
    "vq_lr_trap": {
        "smoke": {"model": {}, "train": {"steps": 3, "n_train": 64, "lrs": [1e-3, 3e-2]}},
        "cpu": {"model": {}, "train": {"steps": 300, "n_train": 2000, "lrs": [1e-3, 3e-2]}},
        "full": {"model": {}, "train": {"steps": 600, "n_train": 10000, "lrs": [1e-3, 3e-2]}},
    },
    # Chapter 3's comparison: the vqvae recipe, shortened, with and without object weighting.
    "vq_fg_weight": {
        "smoke": {"model": {}, "train": {"steps": 3, "n_train": 64, "fg_weights": [0.0, 9.0],
                                         "n_judge": 16}},
        "cpu": {"model": {}, "train": {"steps": 600, "n_train": 8000, "fg_weights": [0.0, 9.0],
                                       "n_judge": 256}},
        "full": {"model": {}, "train": {"steps": 1500, "n_train": 50000,
                                        "fg_weights": [0.0, 9.0], "n_judge": 512}},
    },
    # --- chapter 4: clip.py --------------------------------------------------------------
    # "clip_b" is the same recipe with another seed: the second, independent CLIP that scores
    # chapter 7's images (a model is never judged by the CLIP it was optimised against).
    # Augmented views (random_crops) slow learning down too much for the cpu preset's 800 steps.
    **{name: {
        "smoke": {"model": {"embed_dim": 32, "text_dim": 32, "text_depth": 1, "text_heads": 2,
                            "image_width": 8},
                  "train": {"steps": 30, "batch_size": 32, "n_train": 512, "lr": 2e-3,
                            "warmup": 5, "log_every": 5, "n_eval": 100, "augment": True,
                            "seed": seed}},
        "cpu": {"model": {"embed_dim": 64, "text_dim": 64, "text_depth": 2, "text_heads": 4,
                          "image_width": 16},
                "train": {"steps": 800, "batch_size": 128, "n_train": 20000, "lr": 1e-3,
                          "warmup": 50, "augment": False, "seed": seed}},
        "full": {"model": {"embed_dim": 128, "text_dim": 128, "text_depth": 4, "text_heads": 4,
                           "image_width": 64},
                 "train": {"steps": 5000, "batch_size": 512, "n_train": 200000, "lr": 1e-3,
                           "warmup": 200, "augment": True, "seed": seed}},
    } for name, seed in (("clip", 0), ("clip_b", 1))},
    # Chapter 4's temperature experiment: small CLIPs trained with a fixed or a learned scale.
    "clip_temperature": {
        "smoke": {"model": {"embed_dim": 32, "text_dim": 32, "text_depth": 1, "text_heads": 2,
                            "image_width": 8},
                  "train": {"steps": 15, "batch_size": 32, "n_train": 512, "lr": 2e-3}},
        "cpu": {"model": {"embed_dim": 32, "text_dim": 32, "text_depth": 1, "text_heads": 2,
                          "image_width": 8},
                "train": {"steps": 400, "batch_size": 64, "n_train": 5000, "lr": 3e-3}},
        "full": {"model": {"embed_dim": 64, "text_dim": 64, "text_depth": 2, "text_heads": 4,
                           "image_width": 16},
                 "train": {"steps": 1500, "batch_size": 256, "n_train": 50000, "lr": 1e-3}},
    },
    # --- chapter 5: vqgan.py -------------------------------------------------------------
    # Chapter 3's trained VQ-VAE (init_from) fine-tuned with a patch discriminator: it trains
    # alone for disc_warmup steps, then its adaptively weighted verdict reaches the generator.
    # The model settings must equal the vqvae recipe's (512 codes, 8x8).
    "vqgan": {
        "smoke": {"model": {"channels": 16, "num_codes": 512},
                  "train": {"init_from": "vqvae", "steps": 20, "batch_size": 16, "n_train": 256,
                            "lr": 2e-4, "warmup": 5, "disc_start": 0, "disc_warmup": 10,
                            "disc_weight": 0.5, "disc_channels": 16, "fg_weight": 9.0,
                            "restart_every": 10, "log_every": 5}},
        "cpu": {"model": {"channels": 16, "num_codes": 512},
                "train": {"init_from": "vqvae", "steps": 800, "batch_size": 32, "n_train": 8000,
                          "lr": 2e-4, "warmup": 20, "disc_start": 0, "disc_warmup": 200,
                          "disc_weight": 0.5, "disc_channels": 16, "fg_weight": 9.0,
                          "restart_every": 100}},
        "full": {"model": {"channels": 64, "num_codes": 512},
                 "train": {"init_from": "vqvae", "steps": 2000, "batch_size": 128,
                           "n_train": 50000, "lr": 2e-4, "warmup": 100, "disc_start": 0,
                           "disc_warmup": 500, "disc_weight": 0.5, "disc_channels": 64,
                           "fg_weight": 9.0, "restart_every": 250}},
    },
    # Chapter 5's failure: the discriminator on from step 0 with a large constant weight ("bad")
    # against the delayed, adaptively weighted recipe ("good"), trained briefly.
    "vqgan_failure": {p: {"model": {}, "train": {
        "steps": steps, "n_train": n_train,
        "good": {"lr": 5e-4, "warmup": 10, "disc_start": steps // 2, "disc_weight": 0.5,
                 "adaptive": True, "restart_every": 50},
        "bad": {"disc_start": 0, "disc_weight": 2.0, "adaptive": False}}}
        for p, steps, n_train in (("smoke", 4, 64), ("cpu", 200, 2000), ("full", 1000, 10000))},
    # --- chapter 6: dalle.py -------------------------------------------------------------
    # num_codes and grid must equal the image tokenizer's (vqgan, else vqvae) in each preset;
    # tests/test_dalle.py checks it. n_judge: prompts drawn and judged at each evaluation.
    "dalle": {
        "smoke": {"model": {"num_codes": 512, "grid": 8, "dim": 32, "depth": 1, "n_heads": 2},
                  "train": {"steps": 30, "batch_size": 16, "n_train": 256, "n_val": 64,
                            "lr": 3e-3, "eval_every": 15, "log_every": 5, "n_judge": 8}},
        "cpu": {"model": {"num_codes": 512, "grid": 8, "dim": 128, "depth": 4, "n_heads": 4},
                "train": {"steps": 3000, "batch_size": 64, "n_train": 20000, "n_val": 256,
                          "lr": 1e-3, "eval_every": 500, "n_judge": 32, "patience": 4}},
        "full": {"model": {"num_codes": 512, "grid": 8, "dim": 256, "depth": 8, "n_heads": 8},
                 "train": {"steps": 8000, "batch_size": 256, "n_train": 100000, "n_val": 1024,
                           "lr": 6e-4, "warmup": 400, "eval_every": 500, "n_judge": 128,
                           "patience": 6}},
    },
    # --- chapter 7: vqgan_clip.py --------------------------------------------------------
    # Not a trained model: the optimisation's settings (lr in codebook standard deviations).
    "vqgan_clip": {
        "smoke": {"model": {}, "train": {"steps": 8, "lr": 0.1, "n_cutouts": 4}},
        "cpu": {"model": {}, "train": {"steps": 150, "lr": 0.1, "n_cutouts": 16}},
        "full": {"model": {}, "train": {"steps": 300, "lr": 0.1, "n_cutouts": 32}},
    },
}


def recipe(name: str, preset: str | None = None) -> dict:
    """A copy of ``RECIPES[name][preset]`` (preset as in ``config.preset_name``)."""
    if name not in RECIPES:
        raise ValueError(f"no recipe for model {name!r}; known models: {', '.join(RECIPES)}")
    preset = preset_name(preset)
    missing = [p for p in PRESETS if p not in RECIPES[name]]
    if missing:
        raise ValueError(f"recipe {name!r} lacks presets {missing}")
    return copy.deepcopy(RECIPES[name][preset])
