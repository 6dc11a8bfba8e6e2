# %% [markdown]
# # Lucida in a notebook
#
# Open a study, load a model, explain the decision with two methods, check whether the map
# deserves trust, and draw a figure. Run it cell by cell in Jupyter (any editor that reads
# `# %%` cells), or as a script: `python docs/notebook_example.py`. The test suite runs it.

# %%
from engine import api
from engine.core.resources import DEMO_STUDY

image = api.open_image(DEMO_STUDY / "phantom_0001.dcm")
model = api.load_model("demo", device="cpu")
print(image.shape, model.classes)

# %% The decision and two explanations of it
result = api.explain(image, model, methods=["gradcam", "occlusion"], target="nodule",
                     params={"occlusion": {"patch": 16, "stride": 8}})
print(result.prediction, result.provenance["intended_use"]["status"])
heat = result.maps["gradcam", "features"]  # numpy, image geometry, 0..1
print(heat.shape, float(heat.max()))

# %% Is the Grad-CAM map faithful, and does it point at the lesion?
trust = api.metrics(result, "gradcam", "features", roi=(72, 40, 100, 68))
print(trust["summary"])
print({k: round(trust[k], 3) for k in ("deletion_auc", "insertion_auc", "sanity_spearman")})

# %% A figure for the paper (a PIL image: Jupyter shows it)
fig = api.figure(result, method="gradcam", layer="features", dpi=100)
print(fig.size)

# %% The same model, contrastive: what makes it say nodule rather than normal?
contrast = api.explain(image, model, methods="gradcam", target="nodule", versus="normal")
print(contrast.provenance["versus"], float(contrast.maps["gradcam", "features"].max()))
