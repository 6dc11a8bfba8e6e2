"""Models: cards, safe loaders, output adapters, preprocessing and layer discovery."""
