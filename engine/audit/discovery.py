"""Shortcut discovery without regions: spectral clustering of an audit's heatmaps (SpRAy).

Lapuschkin et al. (2019, "Unmasking Clever Hans predictors") cluster the heatmaps of one class
and look at what each cluster's members have in common. Here, per class (an image's label,
else the model's prediction), the stored maps are streamed from the audit's store,
downsampled, scaled to unit mass and reduced by incremental PCA; a symmetric k-nearest-neighbour
graph of the reduced maps is the sparse affinity. The eigengap of its normalised Laplacian
suggests the number of clusters (the user may set it), and scikit-learn's
``SpectralClustering(affinity="precomputed")`` assigns the clusters. A second pass over the
store sums each cluster's maps at the stored resolution. Memory stays bounded: one batch file
of maps is open at a time, and what is kept per image is a short vector.

``clusters.json`` (contract; the audit view reads it)
---------------------------------------------------------
::

    {
      "version": 1,
      "method": "spectral clustering of heatmaps (SpRAy)",
      "map_size": 16,            # side of the maps as clustered
      "mean_map_size": 64,       # side of every "mean_map" below (the stored maps' side)
      "neighbours": 10,          # k of the nearest-neighbour affinity
      "components": 32,          # PCA dimensions the neighbours are found in
      "correction": "benjamini-hochberg",   # of the p-values, within each class
      "alpha": 0.05,             # adjusted p below which an enrichment is "significant"
      "identifiers": "removed",  # or "kept": then exemplars carry "path" too
      "figure": "clusters.png",
      "outside_body": {          # share of saliency outside the body (ROI-free), per image
        "overall": SUMMARY,
        "by_group": {"site=B": SUMMARY, ...},
        "by_class": {"nodule": SUMMARY, ...}
      },
      "classes": [
        {
          "class": "nodule",
          "n": 200,                      # images of the class with a map
          "k": 3,                        # clusters made
          "k_suggested": 3,              # what the eigengap suggests
          "k_source": "eigengap",        # or "user"
          "eigenvalues": [0.0, ...],     # smallest eigenvalues of the normalised Laplacian
          "mean_map": [[...], ...],      # the class's typical map, peak 1
          "note": "...",                 # only when the class was not clustered (too few)
          "clusters": [
            {
              "id": 0,                   # 0 is the largest cluster of the class
              "size": 120,
              "share": 0.6,              # of the class
              "mean_map": [[...], ...],  # mean_map_size × mean_map_size, peak 1
              "difference": {            # against the class's mean map, both at unit mass
                "correlation": 0.42,     # Pearson r of the two maps
                "moved": 0.31,           # total variation: share of mass that sits elsewhere
                "excess_peak": [0.08, 0.91],  # (row, column) as fractions of the side, where
                                              # the cluster has most more mass than the class
                "excess_box": [0.8, 0.0, 1.0, 0.2]  # x0 y0 x1 y1 fractions: where the excess
                                                    # is above half its peak
              },
              "outside_body": SUMMARY,
              "exemplars": {
                "central":  [{"case": "case-012", "distance": 0.01}, ...],
                "atypical": [{"case": "case-140", "distance": 0.20}, ...]
              },
              "members": ["case-001", ...],   # every member, in manifest order
              "enriched": [               # over-represented metadata, smallest p first
                {
                  "attribute": "site",    # a manifest column or a DICOM keyword
                  "source": "manifest",   # or "dicom"
                  "value": "B",
                  "in_cluster": 110,      # members with the value
                  "cluster_size": 120,
                  "in_class": 130,        # images of the class with the value
                  "class_size": 200,
                  "enrichment": 1.41,     # (110/120) / (130/200)
                  "odds_ratio": 12.5,     # scipy.stats.fisher_exact's
                  "p": 1.2e-12,           # Fisher's exact test, one-sided (over-represented)
                  "p_adjusted": 3.4e-11,
                  "significant": true
                }
              ]
            }
          ]
        }
      ]
    }

``SUMMARY`` is ``{"n": int, "mean": float, "ci95": [lo, hi]}`` (bootstrap, as in
``audit.json``). Images are named by their ``case`` pseudonym, as in ``audit.json``; a path is
listed only when the audit kept identifiers. Every test of one class (each cluster against
the rest of the class, for each value of each attribute) is one family for the
Benjamini–Hochberg correction.
"""
