"""LeGrad: each block's own prediction differentiated with respect to its attention."""

from __future__ import annotations

from engine.explain.api import Explainer, ExplainerUnavailable, Param, patch_map


class LeGrad(Explainer):
    """LeGrad (Bousselham et al. 2024), as torch-cam 0.5 defines it.

    For every block l used, the block's own score ``s_l`` is the target logit the model's final
    norm and classifier give to the mean of the block's output tokens; ``G_l = ds_l/dA_l`` is its
    gradient with respect to that block's attention probabilities only. The block's map is
    ``mean over heads and queries of ReLU(G_l)`` over the patch keys; the maps of the used
    blocks are averaged. Attention values are not multiplied into the gradients.
    """

    name = "legrad"
    title = "LeGrad"
    description = ("How sensitive each block's own prediction is to the attention paid to each "
                   "patch, averaged over blocks (class-specific).")
    citation = ("Bousselham W, Boggust A, Chaybouti S, Strobelt H, Kuehne H. LeGrad: An "
                "Explainability Method for Vision Transformers via Feature Formation "
                "Sensitivity. arXiv:2404.03214 (2024)")
    caveats = ("Positive gradients only, averaged over heads and queries: on the demo ViT the "
               "map changes little when the classifier is re-initialised, so read it as where "
               "the blocks look. Not for windowed transformers (Swin).")
    needs = frozenset({"attentions", "readout_gradients"})
    batched = True
    units = "score gradient"
    params = (
        Param("last_blocks", "int", 0, range=(0, 1000),
              help="use only the last N blocks (0: every block)"),
    )

    def explain(self, capture, target, layers, params, progress, cancel):
        """Return the (N, h, w) LeGrad map averaged over the used blocks."""
        gradients = capture.readout_gradients
        if not gradients:
            raise ExplainerUnavailable(
                "LeGrad needs the model's final norm and classifier to score each block, and "
                "this model's head cannot be read that way; use attention relevance instead")
        used = gradients[-params["last_blocks"]:] if params["last_blocks"] else gradients
        total = None
        for i, grad in enumerate(used):
            cancel.check()
            per_key = grad.float().clamp(min=0).mean(dim=(1, 2))
            total = per_key if total is None else total + per_key
            progress((i + 1) / len(used), f"{self.title}: block {i + 1}")
        return {"input": patch_map(capture, total / len(used))}


EXPLAINERS = (LeGrad,)
