"""Prefect adapters over the `pix2pix` library: one flow per stage (build-dataset, train, evaluate,
translate), the `pipeline` of them, `dvc-repro`, and their serving.

    python -m flows.build_dataset data/samples data/demo --op edges   # one run, no server needed
    python -m flows.serve                                            # serve the deployments

See docs/flows.md for the whole sequence (server, serving, running a deployment, Dask).
"""
