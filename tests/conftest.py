import pytest


@pytest.fixture(scope="session")
def quick_cache(tmp_path_factory):
    """An mmia cache root holding the miniature testbeds, built once per test session."""
    from mmia.testbeds.base import list_testbeds
    from mmia.testbeds.build import build_testbed

    root = tmp_path_factory.mktemp("mmia-cache")
    for spec in list_testbeds():
        if spec.in_demo:
            build_testbed(spec.name, seed=0, quick=True, cache_dir=root)
    return root
