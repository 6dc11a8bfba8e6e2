"""Studies: files and folders become trees of images with display and model-input pipelines."""
