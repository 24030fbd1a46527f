"""The results page's views: for each benchmark the book knows, a sentence or two of commentary,
short tables that fit the text column, and a plot, all drawn from its JSON file.

``VIEWS`` maps a result file's stem to a function ``view(data) -> list of Markdown lines``. A file
without a view is shown by ``minit2i_book.render_result``'s generic tables. Each view reads only
what the file holds (plus the preset's targets, ``CPU_TARGETS`` in ``benchmarks/common.py``), so
the page says what was measured and nothing else. Plots are PNGs embedded in the page (no file is
written into the repository, nothing is fetched).
"""

from __future__ import annotations

import base64
import html
import importlib.util
import io
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def cpu_targets() -> dict:
    """The cpu preset's targets, from ``benchmarks/common.py`` (one place for them)."""
    spec = importlib.util.spec_from_file_location("_benchmarks_common",
                                                  ROOT / "benchmarks" / "common.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.CPU_TARGETS


# ---------------------------------------------------------------------------------------------
# Small pieces: numbers, tables, figures
# ---------------------------------------------------------------------------------------------

def pct(x) -> str:
    return "–" if x is None else f"{100 * float(x):.0f} %"


def num(x, digits: int = 2) -> str:
    return "–" if x is None else f"{float(x):.{digits}f}"


def seconds(x) -> str:
    if x is None:
        return "–"
    x = float(x)
    return f"{x:.0f} s" if x < 120 else f"{x / 60:.1f} min"


def table(header: list[str], rows: list[list]) -> list[str]:
    """A Markdown table of already formatted cells."""
    def cell(v) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")
    return (["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            + ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows] + [""])


def figure(fig, alt: str) -> list[str]:
    """A matplotlib figure as an embedded PNG that never overflows the column."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return [f'<img class="minit2i-result-plot" alt="{html.escape(alt)}" '
            f'src="data:image/png;base64,{data}">', ""]


def new_figure(width: float, height: float):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(width, height))
    ax.spines[["top", "right"]].set_visible(False)
    return fig, ax


def bars_with_targets(labels: list[str], measured: list[float], targets: list[float | None],
                      title: str, xlabel: str = "judged right"):
    """Horizontal bars of the measured fractions, a black tick at each target."""
    fig, ax = new_figure(7.0, 0.42 * len(labels) + 0.9)
    y = list(range(len(labels)))[::-1]
    ax.barh(y, measured, color="#4c72b0", height=0.6, label="measured")
    for yi, m in zip(y, measured):
        ax.text(m + 0.01, yi, f"{100 * m:.0f} %", va="center", fontsize=8)
    ticks = [(yi, t) for yi, t in zip(y, targets) if t is not None]
    if ticks:
        ax.scatter([t for _, t in ticks], [yi for yi, _ in ticks], marker="|", s=400,
                   color="black", label="target", zorder=3)
    ax.set(yticks=y, yticklabels=labels, xlim=(0, 1.05), xlabel=xlabel, title=title)
    ax.legend(loc="lower right", fontsize=8, frameon=False)
    return fig


# ---------------------------------------------------------------------------------------------
# One view per benchmark
# ---------------------------------------------------------------------------------------------

DALLE_TASKS = [("single object", "one_object", "single_object", "single_object"),
               ("colour", "one_object", "colour", "colour"),
               ("position", "one_object", "position", "position"),
               ("two objects", "two_objects", "two_objects", "two_objects"),
               ("colour attribution", "two_objects", "colour_attribution", "colour_attribution"),
               ("held-out colour×shape pairs", "heldout_pairs", "colour", "heldout_pairs")]


def view_dalle(data: dict) -> list[str]:
    targets = cpu_targets()["dalle"]
    scores = data.get("scores", {})
    s = data.get("sampling", {})
    rows, measured, wanted = [], [], []
    for label, group, key, target_key in DALLE_TASKS:
        value = scores.get(group, {}).get(key)
        if value is None:
            continue
        rows.append([label, pct(targets.get(target_key)), pct(value)])
        measured.append(float(value))
        wanted.append(targets.get(target_key))
    train = data.get("pipeline_train_seconds", {})
    lines = [f"Chapter 6's mini DALL-E, {data.get('n_prompts_each', '?')} prompts per task, one "
             f"image each, sampled at temperature {s.get('temperature')}, guidance "
             f"{s.get('guidance')}, plausibility cut {s.get('plausible')} (the recipe's "
             "setting), judged by `minit2i.eval`. Each figure is the fraction of prompts drawn "
             "right, beside the cpu preset's target.", ""]
    lines += table(["task", "target", "measured"], rows)
    if measured:
        lines += figure(bars_with_targets([r[0] for r in rows], measured, wanted,
                                          "mini DALL-E, cpu preset"),
                        "bar chart of the mini DALL-E's judged scores against their targets")
    laptop = data.get("pipeline_laptop_seconds", {})
    readings = data.get("pipeline_train_readings", {})
    if train:
        parts = ", ".join(f"{k} {seconds(v)}" for k, v in train.items() if k != "total")
        total = seconds(train.get("total"))
        lines += [f"Training from nothing, tokenizers and transformer: {total}"
                  f" ({parts}; target {seconds(targets.get('pipeline_train_seconds'))}).", ""]
        slower = {k: r for k, r in readings.items() if r}
        if laptop and slower:
            where = ", ".join(f"{k} on a machine reading {num(r, 0)} GFLOP/s"
                              for k, r in slower.items())
            lines += [f"Not every part trained on the same machine ({where}; the others on the "
                      "budget's laptop). Scaled to the laptop by that reading "
                      "(`minit2i.budget.laptop_seconds`), the pipeline takes "
                      f"{seconds(laptop.get('total'))}.", ""]
    found = data.get("objects_found", {}).get("two_objects")
    if found:
        counts = ", ".join(f"{v} with {k} object{'s' if k != '1' else ''}"
                           for k, v in found.items())
        w = data.get("two_drawn_but_wrong", {})
        lines += [f"What the two-object drawings are, by the judge: {counts}."
                  + (f" {w['wrong']} of those with two objects do not have the prompt's two "
                     f"shapes: {w.get('one_shape_right')} have one of them, "
                     f"{w.get('no_shape_right')} neither; {w.get('same_shape_twice')} of the "
                     f"{w['wrong']} draw one shape twice where the prompt asks for two."
                     if "wrong" in w else ""), ""]
    by_size = data.get("object_found_by_size", {})
    if by_size:
        rows = [[{"one_object": "one object", "two_objects": "two objects",
                  "heldout_pairs": "held-out pairs"}.get(group, group)]
                + [f"{pct(v.get(size, {}).get('found'))} of {v.get(size, {}).get('asked', '–')}"
                   for size in ("small", "large")] for group, v in by_size.items()]
        lines += ["How often an object the prompt asks for is in the image (its shape in its "
                  "colour, anywhere), small and large objects apart:", ""]
        lines += table(["prompts", "small objects", "large objects"], rows)
    if data.get("images_per_s"):
        on = (f" on a machine reading {num(data['matmul_gflops'], 0)} GFLOP/s"
              if data.get("matmul_gflops") else "")
        lines += [f"It samples {num(data.get('images_per_s'), 0)} images per second{on}.", ""]
    return lines


def view_dalle_rerank(data: dict) -> list[str]:
    tasks = data.get("tasks", {})
    one, two = tasks.get("one_object", {}), tasks.get("two_objects", {})
    targets = cpu_targets()["dalle"]
    names = [k for k in one if k != "seconds"]
    rows = [[name, pct(one.get(name)), pct(two.get(name))] for name in names]
    rows.append(["target (best of 8 by CLIP)", pct(targets.get("best_of_8_single")),
                 pct(targets.get("best_of_8_two"))])
    clips = data.get("clips", {})
    made = "; ".join(f"`{k}`: " + (", ".join(f"{a} = {b}" for a, b in v["changes"].items())
                                    if v.get("changes") else "chapter 4's recipe")
                     + f", zero-shot shape accuracy {pct(v.get('zero_shot_shape'))}"
                     for k, v in clips.items())
    return ([f"Best of {data.get('candidates', 8)}, re-ranked by whom? "
             "(`benchmarks/dalle_rerank.py`) Chapter 6's DALL-E draws "
             f"{data.get('candidates', 8)} samples for each of {data.get('n_prompts_each', '?')} "
             "one-object and two-object prompts with the recipe's sampling; the judge marks each "
             "sample, and each re-ranker keeps one per prompt. The oracle counts a prompt right "
             "when any of its samples is: the most a re-ranker could keep. Each figure is the "
             "fraction of prompts whose kept sample the judge finds right.", ""]
            + table(["re-ranker", "one object", "two objects"], rows)
            + ([f"The CLIPs (their shape accuracy is on clean renders of one-object scenes): "
                f"{made}.", ""] if made else []))


def view_dalle_levers(data: dict) -> list[str]:
    variants = data.get("variants", {})
    lines = ["What each choice buys the mini DALL-E (`benchmarks/dalle_levers.py`): "
             f"{data.get('n_prompts_each', '?')} prompts per task, one image each. "
             + str(data.get("commentary", "")), ""]
    zoo = variants.get("zoo", {})
    if zoo.get("sampling"):
        lines += ["**Sampling chapter 6's model.** Temperature, top-k, classifier-free guidance "
                  "and the plausibility cut, on the one trained model:", ""]
        rows = [[name, pct(v.get("single_object")), pct(v.get("two_objects")),
                 pct(v.get("heldout_pairs"))] for name, v in zoo["sampling"].items()]
        if zoo.get("best_of_8"):
            rows.append(["best sampling, best of 8 by CLIP", pct(zoo["best_of_8"]["single_object"]),
                         pct(zoo["best_of_8"]["two_objects"]), "–"])
        lines += table(["sampling", "single object", "two objects", "held-out pairs"], rows)
        drawn = zoo.get("two_object_prompts_drawn_with", {})
        if drawn:
            lines += [f"How many objects the judge finds in the drawings of the "
                      f"{data.get('n_prompts_each', '?')} two-object prompts, by sampling:", ""]
            lines += table(["sampling", "none", "one", "two", "three or more"],
                           [[k, v.get("none"), v.get("one object"), v.get("two"),
                             v.get("three or more")] for k, v in drawn.items()])
    trained = {k: v for k, v in variants.items() if k != "zoo"}
    if trained:
        lines += ["**Training choices at equal compute.** Each variant is trained with the same "
                  "FLOPs (except the \"... compute\" rows, trained with more) and "
                  "drawn with its best sampling; the validation loss is the image "
                  "tokens' cross-entropy (lower is better).", ""]
        rows, names, single, two, held = [], [], [], [], []
        for name, v in trained.items():
            best = v.get("sampling", {}).get(v.get("best_sampling"), {})
            rows.append([name, v.get("train", {}).get("lr", "–"),
                         num(v.get("val_image_loss"), 3), pct(best.get("single_object")),
                         pct(best.get("two_objects")), pct(best.get("heldout_pairs"))])
            names.append(name)
            single.append(best.get("single_object") or 0)
            two.append(best.get("two_objects") or 0)
            held.append(best.get("heldout_pairs") or 0)
        lines += table(["variant", "lr", "val loss", "single", "two", "held-out"], rows)
        fig, ax = new_figure(7.0, 0.55 * len(names) + 1.0)
        y = range(len(names))[::-1]
        for k, (values, label) in enumerate([(single, "single object"), (two, "two objects"),
                                             (held, "held-out pairs")]):
            ax.barh([yi + 0.25 * (1 - k) for yi in y], values, height=0.24, label=label)
        ax.set(yticks=list(y), yticklabels=names, xlim=(0, 1), xlabel="judged right",
               title="mini DALL-E variants at equal compute")
        ax.legend(fontsize=8, frameon=False, loc="lower right")
        lines += figure(fig, "bar chart of each DALL-E variant's judged scores")
    return lines + ["Every setting and figure of the run is in `dalle_levers.json`.", ""]


def view_vqgan_clip_levers(data: dict) -> list[str]:
    variants = data.get("variants", {})
    lines = [f"What each choice buys VQGAN+CLIP (`benchmarks/vqgan_clip_levers.py`): "
             f"{data.get('n_prompts', '?')} one-object prompts, one search each. The CLIP columns "
             "are mean cosines with the prompts: of the CLIP the search climbed, and of one that "
             "took no part, each for the search's results and for real renders of the same "
             "prompts. A search that lifts the climbed CLIP to the renders' cosine while the "
             "independent one stays far below has fooled the CLIP it climbed, not drawn the "
             "prompt. The last column is the climbed CLIP's zero-shot shape accuracy on real "
             "one-object scenes (chapter 4), where it was recorded."
             + (f" {data['tokenizer_note']}" if data.get("tokenizer_note") else ""), ""]
    rows, names, guided, independent = [], [], [], []
    for name, v in variants.items():
        g, i = v.get("guide_cosine", {}), v.get("independent_cosine", {})
        rows.append([name, pct(v.get("judge", {}).get("single_object")),
                     f"{num(g.get('results'))} / {num(g.get('real_renders'))}",
                     f"{num(i.get('results'))} / {num(i.get('real_renders'))}",
                     pct(v.get("guide_zero_shot", {}).get("zero_shot_shape"))])
        names.append(name)
        guided.append(g.get("results") or 0)
        independent.append(i.get("results") or 0)
    lines += table(["variant", "judge: single", "climbed CLIP: results / renders",
                    "independent CLIP: results / renders", "climbed CLIP reads shapes"], rows)
    if names:
        fig, ax = new_figure(7.0, 0.4 * len(names) + 1.0)
        y = list(range(len(names)))[::-1]
        ax.scatter(guided, y, label="climbed CLIP", color="#dd8452", zorder=3)
        ax.scatter(independent, y, label="independent CLIP", color="#4c72b0", zorder=3)
        for yi, a, b in zip(y, guided, independent):
            ax.plot([a, b], [yi, yi], color="#999999", lw=1)
        renders = [v.get("independent_cosine", {}).get("real_renders") for v in variants.values()]
        renders = [r for r in renders if r is not None]
        if renders:
            ax.axvline(sum(renders) / len(renders), color="#4c72b0", ls=":",
                       label="real renders (independent CLIP)")
        ax.set(yticks=y, yticklabels=names, xlim=(0, 1.05), xlabel="cosine with the prompt",
               title="where the search ends, by each CLIP")
        ax.legend(fontsize=8, frameon=False, loc="lower left")
        lines += figure(fig, "each VQGAN+CLIP variant's cosine under the climbed and the "
                             "independent CLIP")
    return lines + ["Every setting and figure of the run is in `vqgan_clip_levers.json`.", ""]


def view_vqgan_clip(data: dict) -> list[str]:
    targets = cpu_targets()["vqgan_clip"]
    rows = [["single object (judge)", pct(targets.get("single_object")),
             pct(data.get("judge_single_object"))],
            ["colour (judge)", pct(targets.get("colour")), pct(data.get("judge_colour"))],
            ["seconds per image", f"≤ {targets.get('seconds_per_image')} s",
             f"{num(data.get('seconds_per_image'), 1)} s"],
            ["independent CLIP: right prompt first among the prompts", "–",
             pct(data.get("clip_b_R@1_among_prompts"))]]
    return ([f"Chapter 7's search in its recipe's settings, {data.get('n_images', '?')} one-object "
             "prompts, one image each, judged by `minit2i.eval` and ranked by the CLIP the "
             "search did not climb (`clip_b`).", ""]
            + table(["measure", "target", "measured"], rows))


def view_tokenizer_ceiling(data: dict) -> list[str]:
    targets = cpu_targets()["tokenizer_ceiling"]
    rows, misreads = [], []
    for name, v in data.get("results", {}).items():
        before = (f"{pct(v['unquantised_colour'])} / {pct(v['unquantised_colour_attribution'])}"
                  if "unquantised_colour" in v else "–")
        rows.append([name, num(v.get("psnr"), 1), pct(v.get("single_object")),
                     pct(v.get("two_objects")), pct(v.get("colour_attribution")), before])
        common = sorted((v.get("misread_1") or {}).items(), key=lambda kv: -kv[1])[:3]
        if common:
            misreads.append(f"{name}: " + ", ".join(f"{k} ({n})" for k, n in common))
    lines = ["The ceiling the image tokenizer sets: the judge on its reconstructions of real "
             "validation scenes (a text-to-image model that writes these codes can draw no "
             f"better). Targets: one object {pct(targets.get('single_object'))}, two objects "
             f"{pct(targets.get('two_objects'))}.", ""]
    lines += table(["tokenizer", "PSNR (dB)", "one object", "two objects", "colour attribution",
                    "without the codebook"], rows)
    lines += ["\"Without the codebook\": the same decoder on the encoder's latent before it is "
              "quantised, judged for shape and colour (one object / two objects with their "
              "colours); what is lost between it and the columns before is the codebook's "
              "share.", ""]
    if misreads:
        lines += ["The commonest misreadings of one-object reconstructions (the true shape, then "
                  "what the judge read, and how many of 256): " + "; ".join(misreads) + ".", ""]
    return lines


def view_judge_accuracy(data: dict) -> list[str]:
    rows = []
    for name, v in data.get("results", {}).items():
        a = v.get("attributes", {})
        rows.append([name.replace("_", ", "), pct(a.get("shape")), pct(a.get("color")),
                     pct(a.get("size")), pct(a.get("position")), pct(v.get("object_count"))])
    return ([f"The judge on {data.get('n_scenes', '?')} rendered scenes whose truth is known, "
             f"clean and degraded ({data.get('degradation', '')}), at the book's 64 px and at "
             "32 px.", ""]
            + table(["renders", "shape", "colour", "size", "position", "object count"], rows))


def view_judge_audit(data: dict) -> list[str]:
    rows = [[r.get("set"), r.get("images"), pct(r.get("count")), pct(r.get("shape")),
             pct(r.get("colour"))] for r in data.get("summary", [])]
    return ([str(data.get("commentary", "")), ""]
            + table(["images", "how many", "count agrees", "shape agrees", "colour agrees"],
                    rows))


def view_clip(data: dict) -> list[str]:
    keys = [("zero-shot colour", "zero_shot_color"), ("zero-shot shape", "zero_shot_shape"),
            ("zero-shot size", "zero_shot_size"), ("zero-shot position", "zero_shot_position"),
            ("text → image R@1 (val)", "val_t2i_R@1"), ("image → text R@1 (val)", "val_i2t_R@1"),
            ("text → image R@1 (held-out pairs)", "heldout_t2i_R@1"),
            ("image → text R@1 (held-out pairs)", "heldout_i2t_R@1")]
    rows = [[label, pct(data[k])] for label, k in keys if k in data]
    return ([f"Chapter 4's CLIP (`{data.get('model', 'clip')}`): zero-shot classification of "
             "one-object scenes and retrieval among distinct scenes; trained in "
             f"{seconds(data.get('train_seconds'))}, learned scale {num(data.get('scale'), 1)}.",
             ""] + table(["measure", "measured"], rows))


def view_vq(data: dict) -> list[str]:
    rows = [[name, num(v.get("psnr"), 1), pct(v.get("usage")), num(v.get("perplexity"), 0),
             num(v.get("sharpness"), 2), seconds(v.get("seconds"))]
            for name, v in data.get("models", {}).items()]
    met = data.get("targets", {})
    return (["The two image tokenizers on validation scenes: reconstruction PSNR, the fraction "
             "of the codebook in use, its perplexity, edge sharpness against the originals' (1 "
             "is as sharp), and the training time.", ""]
            + table(["tokenizer", "PSNR (dB)", "codes used", "perplexity", "sharpness",
                     "trained in"], rows)
            + (["Checks: " + ", ".join(f"{k.replace('_', ' ')}: {'yes' if v else 'no'}"
                                      for k, v in met.items()) + ".", ""] if met else []))


def view_comparison(data: dict) -> list[str]:
    rows = []
    for name, v in data.get("methods", {}).items():
        s = v.get("scores", {})
        rows.append([name, pct(s.get("single_object")), pct(s.get("two_objects")),
                     num(v.get("pixel_diversity"), 3), pct(v.get("distinct_scenes")),
                     f"{num(v.get('seconds_per_image'), 3)} s"])
    return ([f"Chapter 8's comparison: {data.get('prompts', '?')} prompts, "
             f"{data.get('per_prompt', '?')} images each, the same judge for both systems. "
             "Diversity is the mean pixel distance between the images of one prompt; distinct "
             "scenes, the fraction of images the judge reads as different scenes.", ""]
            + table(["system", "one object", "two objects", "pixel diversity", "distinct scenes",
                     "per image"], rows))


def view_shapes_speed(data: dict) -> list[str]:
    rows = [["render 64 px", f"{num(data.get('render_64_images_per_s'), 0)} /s"],
            ["sample a scene and render it",
             f"{num(data.get('sample_and_render_64_per_s'), 0)} /s"],
            ["dataset items", f"{num(data.get('dataset_items_per_s'), 0)} /s"],
            ["dataset as tensors", f"{num(data.get('dataset_tensors_items_per_s'), 0)} /s"]]
    return ([f"How fast the Shapes world draws its scenes on {data.get('device', '?')} (target "
             f"{data.get('target_images_per_s', '?')} renders per second: "
             f"{'met' if data.get('meets_target') else 'not met'}).", ""]
            + table(["what", "rate"], rows))


VIEWS = {"dalle": view_dalle, "dalle_levers": view_dalle_levers, "dalle_rerank": view_dalle_rerank,
         "vqgan_clip": view_vqgan_clip, "vqgan_clip_levers": view_vqgan_clip_levers,
         "tokenizer_ceiling": view_tokenizer_ceiling, "judge_accuracy": view_judge_accuracy,
         "judge_audit": view_judge_audit, "clip": view_clip, "vq": view_vq,
         "comparison": view_comparison, "shapes_speed": view_shapes_speed}
