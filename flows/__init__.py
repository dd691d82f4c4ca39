"""Prefect adapters over the `pix2pix` library: the `build-dataset` and `train` flows and their serving.

    python -m flows.build_dataset data/samples data/demo --op edges   # one run, no server needed
    python -m flows.serve                                            # serve the deployments

See docs/flows.md for the whole sequence (server, serving, running a deployment, Dask).
"""
