__version__ = "0.1.0"


def _private_numba_cache() -> None:
    """Give this process its own numba cache folder, unless the user chose one.

    librosa (and PyOD) compile with numba's cache=True, which writes beside their code in
    site-packages; processes that compile at once (the demo's workers, a test beside them) read
    each other's half-written cache files, and a compiled function loaded from such a file
    crashes the process (seen in CI: a segfault in librosa's localmax). A folder per process
    costs a compilation per process, a few seconds, and can never be read half-written."""
    import atexit
    import os
    import shutil
    import sys
    import tempfile

    # A folder set by mmia in a parent process (children inherit the variable) is not this one's.
    if os.environ.get("NUMBA_CACHE_DIR") and os.environ.get("MMIA_NUMBA_CACHE_OF") is None:
        return  # the user's choice
    if os.environ.get("MMIA_NUMBA_CACHE_OF") == str(os.getpid()):
        return
    folder = tempfile.mkdtemp(prefix="mmia-numba-")
    os.environ["MMIA_NUMBA_CACHE_OF"] = str(os.getpid())
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    os.environ["NUMBA_CACHE_DIR"] = folder  # read by numba when it is imported
    config = getattr(sys.modules.get("numba"), "config", None)
    if config is not None:  # numba imported already: its functions compiled from now on use the folder
        config.CACHE_DIR = folder


_private_numba_cache()
