"""Imported only by the multiprocessing fork server of DataLoader workers (its preload list).

On Linux the kernel then kills the fork server when its parent, the trainer, dies (however it
dies), so the server cannot keep the workers' process tree alive. Do not import it elsewhere:
it ties the importing process's life to its parent's.
"""

from __future__ import annotations

import sys

if sys.platform.startswith("linux"):
    import ctypes
    import signal

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass

# The workers fork from this server: numba and the jitter's resize kernels load here once, not
# in every worker (≈ 1 s each before the first batch otherwise).
from pix2pix.resample import warm_up  # noqa: E402

try:
    warm_up()
except Exception:  # noqa: BLE001 - a server that cannot preload must still serve; workers load it
    pass
